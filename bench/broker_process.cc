#include "bench/broker_process.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/child_process.h"

namespace nagare::bench {

namespace fs = std::filesystem;

namespace {

// Ports the search for a free range may try, and how many bases it tries.
constexpr int port_search_attempts = 200;
constexpr std::uint16_t port_search_low = 20000;
constexpr std::uint16_t port_search_span = 30000;
constexpr auto poll_step = std::chrono::milliseconds(20);
constexpr std::size_t metrics_bytes_max = 1u << 20;

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

// A connected loopback socket, or -1.
int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool accepts(std::uint16_t port) {
    const int fd = connect_loopback(port);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
}

// The body of GET `path` (HTTP/1.0, the server closes), or empty.
std::string http_get(std::uint16_t port, std::string_view path) {
    const int fd = connect_loopback(port);
    if (fd < 0) return {};
    const timeval wait{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    const std::string request = "GET " + std::string(path) + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    std::string reply;
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
        char chunk[16384];
        while (reply.size() < metrics_bytes_max) {
            const auto n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) break;
            reply.append(chunk, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    const auto body = reply.find("\r\n\r\n");
    if (!reply.starts_with("HTTP/1.1 200") || body == std::string::npos) return {};
    return reply.substr(body + 4);
}

// Prometheus sample names summed over shards, and the short names reported.
constexpr std::pair<std::string_view, std::string_view> reported_metrics[] = {
    {"nagare_publishes_total", "publishes"},
    {"nagare_publish_errors_total", "publish_errors"},
    {"nagare_dedup_hits_total", "dedup_hits"},
    {"nagare_forwards_sent_total", "forwards_sent"},
    {"nagare_loop_turns_total", "loop_turns"},
    {"nagare_loop_busy_seconds_total", "loop_busy_s"},
    {"nagare_stalls_total", "stalls"},
    {"nagare_deliver_frames_total", "deliver_frames"},
    {"nagare_acks_total", "acks"},
    // Sampled: only writes started while none was in flight (broker/partition.cc).
    {"nagare_fsync_latency_seconds_count", "fsync_latency_samples"},
    {"nagare_fsync_latency_seconds_sum", "fsync_latency_sum_s"},
};

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
        spawn_child({options.nagared.string(), "--data", data->string(), "--host", "127.0.0.1",
                     "--port", std::to_string(port), "--shards", std::to_string(shards),
                     "--admin-port", std::to_string(admin_port), "--log-level", options.log_level});
    if (pid < 0) {
        fs::remove_all(*data, ec);
        return std::unexpected(std::string("fork: ") + std::strerror(errno));
    }
    std::unique_ptr<broker_process> broker(
        new broker_process(pid, port, admin_port, shards, *data, options.stop_wait));
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

std::optional<double> broker_process::cpu_s() const { return child_cpu_s(_pid); }

std::optional<std::uint64_t> broker_process::peak_rss_kib() const {
    return child_peak_rss_kib(_pid);
}

std::vector<std::pair<std::string, double>> broker_process::counters() const {
    std::vector<std::pair<std::string, double>> sums;
    if (_pid <= 0) return sums;
    const auto text = http_get(_admin_port, "/metrics");
    if (text.empty()) return sums;
    for (const auto& [metric, name] : reported_metrics) sums.emplace_back(std::string(name), 0.0);
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        const auto name_end = line.find_first_of("{ ");
        const auto value_at = line.rfind(' ');
        if (line.starts_with('#') || name_end == std::string::npos || value_at == std::string::npos)
            continue;
        const std::string_view sample(line.data(), name_end);
        for (std::size_t i = 0; i < std::size(reported_metrics); ++i) {
            if (sample == reported_metrics[i].first)
                sums[i].second += std::strtod(line.c_str() + value_at + 1, nullptr);
        }
    }
    return sums;
}

std::expected<int, std::string> broker_process::stop() {
    if (_pid <= 0) return std::unexpected("nagared is not running");
    const auto pid = std::exchange(_pid, -1);
    return stop_child(pid, _stop_wait, "nagared");
}

}  // namespace nagare::bench
