#include "bench/gateway_process.h"

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include "bench/child_process.h"
#include "bench/limits.h"

namespace nagare::bench {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view listening_prefix = "nagare-gateway: listening on ";

void to_stderr(std::string_view text) {
    while (!text.empty()) {
        const auto n = ::write(STDERR_FILENO, text.data(), text.size());
        if (n <= 0) return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Copies `fd` to stderr until end of file, then closes it.
void forward(int fd) {
    char chunk[4096];
    for (;;) {
        const auto n = ::read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        to_stderr({chunk, static_cast<std::size_t>(n)});
    }
    ::close(fd);
}

}  // namespace

std::optional<fs::path> find_gateway_near_self() {
    std::error_code ec;
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return std::nullopt;
    for (const auto& candidate :
         {self.parent_path() / "nagare-gateway",
          self.parent_path().parent_path() / "tools" / "gateway" / "nagare-gateway"}) {
        if (fs::is_regular_file(candidate, ec)) return candidate;
    }
    return std::nullopt;
}

std::optional<std::string> listening_url(std::string_view line) {
    if (!line.starts_with(listening_prefix)) return std::nullopt;
    line.remove_prefix(listening_prefix.size());
    // The URL, then maybe more words: "(broker ..., stream ...)".
    line = line.substr(0, line.find_first_of(" \t\r"));
    if (!line.starts_with("http://")) return std::nullopt;
    return std::string(line);
}

std::expected<std::unique_ptr<gateway_process>, std::string> gateway_process::start(
    const gateway_process_options& options) {
    std::error_code ec;
    if (!fs::is_regular_file(options.binary, ec)) {
        return std::unexpected("no nagare-gateway at '" + options.binary.string() +
                               "' (use --nagare-gateway PATH)");
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return std::unexpected(std::string("pipe: ") + std::strerror(errno));
    std::vector<std::string> args{
        options.binary.string(), "--broker", options.broker_url, "--stream",
        options.stream,          "--listen", "127.0.0.1:0",      "--no-auth",
        // The bench opens all its SSE clients at once.
        "--connect-rate", "100000"};
    args.insert(args.end(), options.extra.begin(), options.extra.end());
    const pid_t pid = spawn_child(args, fds[1]);
    ::close(fds[1]);
    if (pid < 0) {
        ::close(fds[0]);
        return std::unexpected(std::string("fork: ") + std::strerror(errno));
    }
    std::unique_ptr<gateway_process> gateway(new gateway_process(pid, fds[0]));
    const auto deadline = std::chrono::steady_clock::now() + gateway_start_wait;
    std::string out;
    while (gateway->_url.empty()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            return std::unexpected("nagare-gateway did not announce its port within " +
                                   std::to_string(gateway_start_wait.count()) + " ms");
        }
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char chunk[4096];
        const auto n = ::read(fds[0], chunk, sizeof chunk);
        if (n <= 0) {
            const auto stopped = gateway->stop();
            return std::unexpected("nagare-gateway ended before listening" +
                                   (stopped ? " (exit status " + std::to_string(*stopped) + ")"
                                            : ": " + stopped.error()));
        }
        out.append(chunk, static_cast<std::size_t>(n));
        for (auto nl = out.find('\n'); nl != std::string::npos; nl = out.find('\n')) {
            const std::string line = out.substr(0, nl);
            out.erase(0, nl + 1);
            if (auto url = listening_url(line); url && gateway->_url.empty()) {
                gateway->_url = *url;
            } else {
                to_stderr(line + "\n");
            }
        }
    }
    to_stderr(out);
    gateway->_forwarder = std::jthread([fd = fds[0]] { forward(fd); });
    return gateway;
}

gateway_process::~gateway_process() {
    if (_pid > 0) (void)stop();
    if (_forwarder.joinable()) {
        _forwarder.join();  // the gateway is gone: its stdout has ended
    } else {
        ::close(_stdout_fd);
    }
}

std::optional<double> gateway_process::cpu_s() const { return child_cpu_s(_pid); }

std::optional<std::uint64_t> gateway_process::peak_rss_kib() const {
    return child_peak_rss_kib(_pid);
}

std::expected<int, std::string> gateway_process::stop() {
    if (_pid <= 0) return std::unexpected("nagare-gateway is not running");
    const auto pid = std::exchange(_pid, -1);
    return stop_child(pid, gateway_stop_wait, "nagare-gateway");
}

}  // namespace nagare::bench
