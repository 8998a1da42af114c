#include "bench/child_process.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nagare::bench {

pid_t spawn_child(const std::vector<std::string>& args, int stdout_fd) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    // Child: die with the benchmark.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(stdout_fd >= 0 ? stdout_fd : STDERR_FILENO, STDOUT_FILENO);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "nagare-bench: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "stopped";
}

std::optional<double> child_cpu_s(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name may hold spaces: fields are counted after its ')'.
    const auto close_paren = text.rfind(')');
    if (close_paren == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close_paren + 2));
    // Field 3 (state) comes first here; skip 3..13, then utime (14) and stime (15).
    constexpr int fields_before_utime = 11;
    std::string field;
    for (int i = 0; i < fields_before_utime; ++i) fields >> field;
    std::uint64_t utime = 0, stime = 0;
    if (!(fields >> utime >> stime)) return std::nullopt;
    const auto ticks_per_s = ::sysconf(_SC_CLK_TCK);
    if (ticks_per_s <= 0) return std::nullopt;
    return static_cast<double>(utime + stime) / static_cast<double>(ticks_per_s);
}

std::optional<std::uint64_t> child_peak_rss_kib(pid_t pid) {
    if (pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6));
    }
    return std::nullopt;
}

std::expected<int, std::string> stop_child(pid_t pid, std::chrono::milliseconds wait,
                                           std::string_view name, int signal) {
    ::kill(pid, signal);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return std::unexpected(std::string(name) + " did not exit within " +
                           std::to_string(wait.count()) + " ms of SIGTERM; killed");
}

}  // namespace nagare::bench
