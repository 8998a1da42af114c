#include "bench/broker_process.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nagare::bench {

namespace fs = std::filesystem;

namespace {

// Ports the search for a free range may try, and how many bases it tries.
constexpr int port_search_attempts = 200;
constexpr std::uint16_t port_search_low = 20000;
constexpr std::uint16_t port_search_span = 30000;
constexpr auto poll_step = std::chrono::milliseconds(20);

bool port_free(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// A base port with `count` free loopback ports from it on, or 0.
std::uint16_t free_port_range(std::uint32_t count) {
    for (int attempt = 0; attempt < port_search_attempts; ++attempt) {
        const auto base = static_cast<std::uint16_t>(
            port_search_low + (::getpid() * 37 + attempt * 211) % port_search_span);
        bool ok = true;
        for (std::uint32_t i = 0; i < count && ok; ++i)
            ok = port_free(static_cast<std::uint16_t>(base + i));
        if (ok) return base;
    }
    return 0;
}

bool accepts(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

std::expected<fs::path, std::string> make_data_dir(const fs::path& parent) {
    std::error_code ec;
    const auto base = parent.empty() ? fs::temp_directory_path(ec) : parent;
    if (ec) return std::unexpected("no temp directory: " + ec.message());
    fs::create_directories(base, ec);
    if (ec) return std::unexpected("cannot create " + base.string() + ": " + ec.message());
    std::string pattern = (base / "nagare-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return std::unexpected("cannot create a directory in " + base.string() + ": " +
                               std::strerror(errno));
    }
    return fs::path(pattern);
}

std::string exit_text(int status) {
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
    return "stopped";
}

pid_t spawn(const std::vector<std::string>& args) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    // Child: die with the benchmark; keep stdout for the benchmark's table.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(STDERR_FILENO, STDOUT_FILENO);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "nagare-bench: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
}

}  // namespace

std::optional<fs::path> find_nagared_near_self() {
    std::error_code ec;
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return std::nullopt;
    for (const auto& candidate : {self.parent_path() / "nagared",
                                  self.parent_path().parent_path() / "broker" / "nagared"}) {
        if (fs::is_regular_file(candidate, ec)) return candidate;
    }
    return std::nullopt;
}

std::expected<std::unique_ptr<broker_process>, std::string> broker_process::start(
    const broker_process_options& options) {
    std::error_code ec;
    if (!fs::is_regular_file(options.nagared, ec)) {
        return std::unexpected("no nagared at '" + options.nagared.string() +
                               "' (use --nagared PATH)");
    }
    const std::uint32_t shards =
        options.shards != 0 ? options.shards : std::max(1u, std::thread::hardware_concurrency());
    // Main port, one port per shard, the admin port.
    const std::uint16_t port = free_port_range(shards + 2);
    if (port == 0) return std::unexpected("no free loopback port range");
    const auto admin_port = static_cast<std::uint16_t>(port + shards + 1);
    auto data = make_data_dir(options.data_parent);
    if (!data) return std::unexpected(data.error());
    const pid_t pid =
        spawn({options.nagared.string(), "--data", data->string(), "--host", "127.0.0.1", "--port",
               std::to_string(port), "--shards", std::to_string(shards), "--admin-port",
               std::to_string(admin_port), "--log-level", options.log_level});
    if (pid < 0) {
        fs::remove_all(*data, ec);
        return std::unexpected(std::string("fork: ") + std::strerror(errno));
    }
    std::unique_ptr<broker_process> broker(
        new broker_process(pid, port, shards, *data, options.stop_wait));
    const auto deadline = std::chrono::steady_clock::now() + options.start_wait;
    while (!accepts(port)) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            broker->_pid = -1;
            return std::unexpected("nagared " + exit_text(status) + " before accepting");
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return std::unexpected("nagared does not accept on port " + std::to_string(port));
        }
        std::this_thread::sleep_for(poll_step);
    }
    return broker;
}

broker_process::~broker_process() {
    if (_pid > 0) (void)stop();
    std::error_code ec;
    fs::remove_all(_data, ec);
}

std::string broker_process::url() const { return "nagare://127.0.0.1:" + std::to_string(_port); }

std::optional<double> broker_process::cpu_s() const {
    if (_pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(_pid) + "/stat");
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

std::optional<std::uint64_t> broker_process::peak_rss_kib() const {
    if (_pid <= 0) return std::nullopt;
    std::ifstream in("/proc/" + std::to_string(_pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("VmHWM:")) return std::stoull(line.substr(6));
    }
    return std::nullopt;
}

std::expected<int, std::string> broker_process::stop() {
    if (_pid <= 0) return std::unexpected("nagared is not running");
    ::kill(_pid, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + _stop_wait;
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (::waitpid(_pid, &status, WNOHANG) == _pid) {
            _pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(_pid, SIGKILL);
    int status = 0;
    ::waitpid(_pid, &status, 0);
    _pid = -1;
    return std::unexpected("nagared did not exit within " + std::to_string(_stop_wait.count()) +
                           " ms of SIGTERM; killed");
}

}  // namespace nagare::bench
