#include "bench/nats_process.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/child_process.h"

namespace nagare::bench {

namespace fs = std::filesystem;

namespace {

constexpr auto poll_step = std::chrono::milliseconds(20);

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A loopback port the kernel considered free just now, or 0.
std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    auto a = loopback(0);
    socklen_t len = sizeof a;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
}

bool accepts(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const auto a = loopback(port);
    const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

std::expected<fs::path, std::string> make_data_dir(const fs::path& parent) {
    std::error_code ec;
    const auto base = parent.empty() ? fs::temp_directory_path(ec) : parent;
    if (ec) return std::unexpected("no temp directory: " + ec.message());
    fs::create_directories(base, ec);
    if (ec) return std::unexpected("cannot create " + base.string() + ": " + ec.message());
    std::string pattern = (base / "nagare-bench-nats-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
        return std::unexpected("cannot create a directory in " + base.string() + ": " +
                               std::strerror(errno));
    }
    return fs::path(pattern);
}

}  // namespace

std::optional<fs::path> find_nats_server() {
    std::error_code ec;
    for (const char* candidate :
         {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
        if (fs::is_regular_file(candidate, ec)) return fs::path(candidate);
    }
    return std::nullopt;
}

std::expected<std::unique_ptr<nats_process>, std::string> nats_process::start(
    nats_process_options options) {
    std::error_code ec;
    if (options.binary.empty()) {
        auto found = find_nats_server();
        if (!found) return std::unexpected("no nats-server in /usr/sbin, /usr/bin, /usr/local/bin");
        options.binary = *found;
    }
    if (!fs::is_regular_file(options.binary, ec)) {
        return std::unexpected("no nats-server at '" + options.binary.string() + "'");
    }
    const std::uint16_t port = free_port();
    if (port == 0) return std::unexpected("no free loopback port");
    auto data = make_data_dir(options.data_parent);
    if (!data) return std::unexpected(data.error());
    // JetStream with file storage under the data dir; its log there too, so
    // nagare-bench's stderr keeps its own lines.
    const pid_t pid = spawn_child({options.binary.string(), "-js", "-a", "127.0.0.1", "-p",
                                   std::to_string(port), "-sd", (*data / "jetstream").string(),
                                   "-l", (*data / "nats-server.log").string()});
    if (pid < 0) {
        fs::remove_all(*data, ec);
        return std::unexpected(std::string("fork: ") + std::strerror(errno));
    }
    std::unique_ptr<nats_process> server(new nats_process(pid, port, *data, options.stop_wait));
    const auto deadline = std::chrono::steady_clock::now() + options.start_wait;
    while (!accepts(port)) {
        int status = 0;
        if (::waitpid(pid, &status, WNOHANG) == pid) {
            server->_pid = -1;
            return std::unexpected("nats-server " + exit_text(status) + " before accepting");
        }
        if (std::chrono::steady_clock::now() > deadline) {
            return std::unexpected("nats-server does not accept on port " + std::to_string(port));
        }
        std::this_thread::sleep_for(poll_step);
    }
    return server;
}

nats_process::~nats_process() {
    if (_pid > 0) (void)stop();
    std::error_code ec;
    fs::remove_all(_data, ec);
}

std::string nats_process::url() const { return "nats://127.0.0.1:" + std::to_string(_port); }

std::optional<double> nats_process::cpu_s() const { return child_cpu_s(_pid); }

std::optional<std::uint64_t> nats_process::peak_rss_kib() const {
    return child_peak_rss_kib(_pid);
}

std::expected<int, std::string> nats_process::stop() {
    if (_pid <= 0) return std::unexpected("nats-server is not running");
    const auto pid = std::exchange(_pid, -1);
    return stop_child(pid, _stop_wait, "nats-server", SIGINT);  // SIGTERM makes it exit 1
}

}  // namespace nagare::bench
