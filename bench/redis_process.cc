#include "bench/redis_process.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/child_process.h"
#include "bench/redis_target.h"

namespace nagare::bench {

namespace fs = std::filesystem;

namespace {

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

// A free loopback port, or 0. Starts elsewhere than broker_process's search
// so a nagared and a redis-server started by one process do not collide.
std::uint16_t free_port() {
    for (int attempt = 0; attempt < port_search_attempts; ++attempt) {
        const auto port = static_cast<std::uint16_t>(
            port_search_low + (::getpid() * 53 + attempt * 307 + 7919) % port_search_span);
        if (port_free(port)) return port;
    }
    return 0;
}

// True when a PING on `port` is answered +PONG within a second.
bool answers_ping(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const timeval wait{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        constexpr std::string_view ping = "PING\r\n";
        if (::send(fd, ping.data(), ping.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(ping.size())) {
            char reply[16] = {};
            const auto n = ::recv(fd, reply, sizeof reply - 1, 0);
            ok = n > 0 && std::string_view(reply, static_cast<std::size_t>(n)).starts_with("+PONG");
        }
    }
    ::close(fd);
    return ok;
}

std::expected<fs::path, std::string> make_data_dir(const fs::path& parent) {
    std::error_code ec;
    const auto base = parent.empty() ? fs::temp_directory_path(ec) : parent;
    if (ec) return std::unexpected("no temp directory: " + ec.message());
    fs::create_directories(base, ec);
    if (ec) return std::unexpected("cannot create " + base.string() + ": " + ec.message());
    std::string pattern = (base / "nagare-bench-redis-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return std::unexpected("cannot create a directory in " + base.string() + ": " +
                               std::strerror(errno));
    }
    return fs::path(pattern);
}

}  // namespace

std::expected<std::unique_ptr<redis_process>, std::string> redis_process::start(
    const redis_process_options& options) {
    std::error_code ec;
    if (!fs::is_regular_file(options.binary, ec)) {
        return std::unexpected("no redis-server at '" + options.binary.string() + "'");
    }
    const std::uint16_t port = free_port();
    if (port == 0) return std::unexpected("no free loopback port");
    auto data = make_data_dir(options.data_parent);
    if (!data) return std::unexpected(data.error());
    const pid_t pid =
        spawn_child({options.binary.string(), "--port", std::to_string(port), "--bind", "127.0.0.1",
                     "--dir", data->string(), "--appendonly", "yes", "--appendfsync",
                     std::string(redis_appendfsync(options.mode)), "--save", "", "--daemonize",
                     "no", "--loglevel", "warning", "--logfile", (*data / "redis.log").string()});
    if (pid < 0) {
        fs::remove_all(*data, ec);
        return std::unexpected(std::string("fork: ") + std::strerror(errno));
    }
    std::unique_ptr<redis_process> server(new redis_process(pid, port, *data, options.stop_wait));
    const auto deadline = std::chrono::steady_clock::now() + options.start_wait;
    while (!answers_ping(port)) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            server->_pid = -1;
            return std::unexpected("redis-server " + exit_text(status) + " before answering PING");
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return std::unexpected("redis-server does not answer PING on port " +
                                   std::to_string(port));
        }
        std::this_thread::sleep_for(poll_step);
    }
    return server;
}

redis_process::~redis_process() {
    if (_pid > 0) (void)stop();
    std::error_code ec;
    fs::remove_all(_data, ec);
}

std::string redis_process::url() const { return "redis://127.0.0.1:" + std::to_string(_port); }

std::optional<double> redis_process::cpu_s() const { return child_cpu_s(_pid); }

std::optional<std::uint64_t> redis_process::peak_rss_kib() const {
    return child_peak_rss_kib(_pid);
}

std::expected<int, std::string> redis_process::stop() {
    if (_pid <= 0) return std::unexpected("redis-server is not running");
    const auto pid = std::exchange(_pid, -1);
    return stop_child(pid, _stop_wait, "redis-server");
}

}  // namespace nagare::bench
