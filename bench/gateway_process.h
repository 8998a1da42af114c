// gateway_process: a real `nagare-gateway` started by nagare-bench
// (fanout --start-gateway) in front of a broker, on a kernel-chosen
// loopback port (`--listen 127.0.0.1:0 --no-auth`), serving one stream; and
// what /proc says about it (CPU seconds, peak resident memory).
//
// The gateway prints `nagare-gateway: listening on http://HOST:PORT [...]`
// on stdout (docs/gateway.md): start() reads its stdout until that line (other
// lines go to stderr), then a thread keeps forwarding it to stderr.
//
// Invariants: while running, pid() > 0 and url() is the announced base URL.
// The destructor stops a running gateway (SIGTERM, then SIGKILL after
// gateway_stop_wait). One thread.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <sys/types.h>

namespace nagare::bench {

struct gateway_process_options {
    std::filesystem::path binary;    // nagare-gateway
    std::string broker_url;          // --broker
    std::string stream;              // --stream
    std::vector<std::string> extra;  // more flags, passed as they are
};

// <dir>/nagare-gateway or <dir>/../tools/gateway/nagare-gateway next to the
// running binary in a build tree, or nullopt.
[[nodiscard]] std::optional<std::filesystem::path> find_gateway_near_self();

// The announced URL in a line of the gateway's stdout, or nullopt.
[[nodiscard]] std::optional<std::string> listening_url(std::string_view line);

class gateway_process {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<gateway_process>, std::string> start(
        const gateway_process_options& options);
    ~gateway_process();
    gateway_process(const gateway_process&) = delete;
    gateway_process& operator=(const gateway_process&) = delete;

    [[nodiscard]] const std::string& url() const noexcept { return _url; }
    [[nodiscard]] pid_t pid() const noexcept { return _pid; }
    [[nodiscard]] std::optional<double> cpu_s() const;
    [[nodiscard]] std::optional<std::uint64_t> peak_rss_kib() const;

    // SIGTERM and wait for the exit; its status, or an error if killed.
    [[nodiscard]] std::expected<int, std::string> stop();

private:
    gateway_process(pid_t pid, int stdout_fd) : _pid(pid), _stdout_fd(stdout_fd) {}

    pid_t _pid;
    int _stdout_fd;  // the read end of the gateway's stdout
    std::string _url;
    std::jthread _forwarder;
};

}  // namespace nagare::bench
