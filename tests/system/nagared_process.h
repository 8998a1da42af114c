// Test support: the real nagared as a child process on free loopback ports,
// and a blocking protocol client that speaks frames over a real socket.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "protocol/frame.h"

namespace nagare::testing {

namespace fs = std::filesystem;

inline bool port_free(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

// A base port with `count` free ports after it (base, base+1, ...).
inline std::uint16_t free_port_range(std::uint16_t count) {
    for (int attempt = 0; attempt < 200; ++attempt) {
        const auto base = static_cast<std::uint16_t>(20000 + (::getpid() * 37 + attempt * 211) % 30000);
        bool ok = true;
        for (std::uint16_t i = 0; i < count && ok; ++i) ok = port_free(static_cast<std::uint16_t>(base + i));
        if (ok) return base;
    }
    return 0;
}

inline int connect_to(std::uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            const int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        ::close(fd);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
}

class nagared_process {
public:
    struct options {
        std::uint32_t shards = 2;
        std::vector<std::string> extra_args;
        std::string config_toml;  // written to <data>/../nagared.toml when not empty
    };

    explicit nagared_process(fs::path data_dir) : nagared_process(std::move(data_dir), options()) {}
    nagared_process(fs::path data_dir, options opts)
        : _data(std::move(data_dir)), _opts(std::move(opts)) {
        _port = free_port_range(static_cast<std::uint16_t>(_opts.shards + 2));
        _admin_port = static_cast<std::uint16_t>(_port + _opts.shards + 1);
    }
    ~nagared_process() { kill(SIGKILL); }

    // Starts and waits until the main port accepts. false on failure.
    bool start() {
        // NAGARE_TEST_NAGARED runs another build (a before/after measurement).
        const char* program = std::getenv("NAGARE_TEST_NAGARED");
        std::vector<std::string> args = {program != nullptr ? program : NAGARED_PATH, "--data", _data.string(), "--host", "127.0.0.1",
                                         "--port", std::to_string(_port), "--shards",
                                         std::to_string(_opts.shards), "--admin-port",
                                         std::to_string(_admin_port), "--log-level", "warn"};
        if (!_opts.config_toml.empty()) {
            const auto path = _data.parent_path() / (_data.filename().string() + ".toml");
            std::ofstream(path) << _opts.config_toml;
            args.push_back("--config");
            args.push_back(path.string());
        }
        args.insert(args.end(), _opts.extra_args.begin(), _opts.extra_args.end());
        _pid = ::fork();
        if (_pid == 0) {
            // Under ASan, freed memory waits in a quarantine of up to 256 MiB,
            // which would hide (or fake) growth in memory checks: keep it small.
            ::setenv("ASAN_OPTIONS", "quarantine_size_mb=4:thread_local_quarantine_size_kb=64", 0);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(_pid, &status, WNOHANG) == _pid) {  // it gave up
                _exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
                _pid = -1;
                return false;
            }
            const int fd = connect_to(_port, std::chrono::milliseconds(50));
            if (fd >= 0) {
                ::close(fd);
                return true;
            }
        }
        return false;
    }
    // The exit status of a start() that failed because nagared exited.
    [[nodiscard]] std::optional<int> exit_status() const { return _exit_status; }

    // Sends `signal`; for SIGTERM waits for the exit. Returns the exit status
    // (or -signal), nullopt if it did not exit within `timeout`.
    std::optional<int> stop(int signal = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        if (_pid <= 0) return std::nullopt;
        ::kill(_pid, signal);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            const pid_t r = ::waitpid(_pid, &status, WNOHANG);
            if (r == _pid) {
                _pid = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return std::nullopt;
    }
    void kill(int signal) {
        if (_pid > 0) {
            ::kill(_pid, signal);
            int status = 0;
            ::waitpid(_pid, &status, 0);
            _pid = -1;
        }
    }
    [[nodiscard]] pid_t pid() const { return _pid; }
    [[nodiscard]] std::uint16_t port() const { return _port; }
    [[nodiscard]] std::uint16_t shard_port(std::uint32_t shard) const {
        return static_cast<std::uint16_t>(_port + 1 + shard);
    }
    [[nodiscard]] std::uint16_t admin_port() const { return _admin_port; }
    // Resident memory in KiB (from /proc).
    [[nodiscard]] std::size_t rss_kib() const {
        std::ifstream status("/proc/" + std::to_string(_pid) + "/status");
        std::string line;
        while (std::getline(status, line)) {
            if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
        }
        return 0;
    }

private:
    fs::path _data;
    options _opts;
    std::uint16_t _port = 0;
    std::uint16_t _admin_port = 0;
    pid_t _pid = -1;
    std::optional<int> _exit_status;
};

// A blocking client speaking frames: for system tests, not for speed.
class raw_client {
public:
    explicit raw_client(std::uint16_t port) : _fd(connect_to(port)) {}
    ~raw_client() {
        if (_fd >= 0) ::close(_fd);
    }
    [[nodiscard]] bool connected() const { return _fd >= 0; }
    bool send_bytes(std::span<const std::byte> bytes) {
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            const auto n = ::send(_fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }
    bool hello(std::string_view token = "") { return send_bytes(_enc.hello("test", token)) && next().has_value(); }
    // The next frame, unpacked; nullopt on close or timeout.
    std::optional<std::unique_ptr<protocol::fb::FrameT>> next(
        std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (_frames.empty()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd p{_fd, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
            std::byte buffer[65536];
            const auto n = ::recv(_fd, buffer, sizeof buffer, 0);
            if (n <= 0) {
                _closed = true;
                return std::nullopt;
            }
            const auto ok = _dec.feed(std::span(buffer, static_cast<std::size_t>(n)),
                                      [&](const protocol::frame_view& f) {
                                          _frames.emplace_back(f.frame->UnPack());
                                      });
            if (!ok) return std::nullopt;
        }
        auto f = std::move(_frames.front());
        _frames.erase(_frames.begin());
        return f;
    }
    // True when the server closed the connection within `timeout`.
    bool closed_by_peer(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!_closed && std::chrono::steady_clock::now() < deadline) {
            if (!next(std::chrono::milliseconds(100)).has_value() && _closed) break;
        }
        return _closed;
    }
    protocol::frame_encoder& encoder() { return _enc; }
    [[nodiscard]] int fd() const { return _fd; }

private:
    int _fd;
    protocol::frame_encoder _enc;
    protocol::frame_decoder _dec;
    std::vector<std::unique_ptr<protocol::fb::FrameT>> _frames;
    bool _closed = false;
};

// The admin port's /metrics text.
inline std::string metrics_text(std::uint16_t admin_port) {
    raw_client http(admin_port);
    const std::string get = "GET /metrics HTTP/1.0\r\n\r\n";
    (void)http.send_bytes(std::as_bytes(std::span{get}));
    std::string text;
    char buffer[65536];
    for (;;) {
        const auto n = ::recv(http.fd(), buffer, sizeof buffer, 0);
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
}

// The sum over shards of the samples whose line starts with `prefix`.
inline std::uint64_t sum_samples(const std::string& text, std::string_view prefix) {
    std::uint64_t total = 0;
    std::size_t at = 0;
    while ((at = text.find(prefix, at)) != std::string::npos) {
        const auto space = text.find(' ', at);
        total += static_cast<std::uint64_t>(std::stod(text.substr(space + 1)));
        at = space;
    }
    return total;
}

// The sum over shards of a counter family on the admin port's /metrics.
inline std::uint64_t metric_total(std::uint16_t admin_port, std::string_view family) {
    return sum_samples(metrics_text(admin_port), std::string(family) + "{");
}

// A histogram family summed over shards: samples in all, and samples at or
// above the bucket bound `le` (as rendered, e.g. "0.001024").
struct histogram_counts {
    std::uint64_t count = 0;
    std::uint64_t at_least = 0;
};
inline histogram_counts histogram_at_least(const std::string& text, std::string_view family,
                                           std::string_view le) {
    const auto count = sum_samples(text, std::string(family) + "_count{");
    std::uint64_t below = 0;
    const std::string bucket = std::string(family) + "_bucket{";
    const std::string bound = "le=\"" + std::string(le) + "\"}";
    for (std::size_t at = 0; (at = text.find(bucket, at)) != std::string::npos;) {
        const auto end = text.find('\n', at);
        const auto line = text.substr(at, end - at);
        if (line.find(bound) != std::string::npos) below += sum_samples(line, bucket);
        at = end;
    }
    return {count, count - below};
}

inline fs::path temp_dir(const std::string& name) {
    auto dir = fs::temp_directory_path() / ("nagare-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

}  // namespace nagare::testing
