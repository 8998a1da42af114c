// nats_process: a real `nats-server -js` started by nagare-bench
// (--target nats --start-broker) on a free loopback port with JetStream file
// storage in a fresh directory, and what /proc says about it: CPU seconds
// (utime + stime) and peak resident memory (VmHWM).
//
// Invariants: while running, pid() > 0 and the server's port accepted a
// connection once. The destructor stops a running server (SIGTERM, then
// SIGKILL after stop_wait) and removes the storage directory it created.
// One thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

namespace nagare::bench {

struct nats_process_options {
    std::filesystem::path binary;  // empty: find_nats_server()
    std::filesystem::path data_parent;             // a fresh directory is made under it; empty: $TMPDIR
    std::chrono::milliseconds start_wait{10'000};  // until the port accepts
    std::chrono::milliseconds stop_wait{10'000};   // after SIGTERM, before SIGKILL
};

// nats-server in /usr/sbin (Debian), /usr/bin or /usr/local/bin, or nullopt.
[[nodiscard]] std::optional<std::filesystem::path> find_nats_server();

class nats_process {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<nats_process>, std::string> start(
        nats_process_options options);
    ~nats_process();
    nats_process(const nats_process&) = delete;
    nats_process& operator=(const nats_process&) = delete;

    // nats://127.0.0.1:<port>
    [[nodiscard]] std::string url() const;
    [[nodiscard]] pid_t pid() const noexcept { return _pid; }
    [[nodiscard]] const std::filesystem::path& data_dir() const noexcept { return _data; }

    // utime + stime so far, in seconds; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<double> cpu_s() const;
    // VmHWM in KiB; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<std::uint64_t> peak_rss_kib() const;

    // SIGTERM and wait for the exit; its status (negative: killed by that
    // signal), or an error if it had to be killed after stop_wait.
    [[nodiscard]] std::expected<int, std::string> stop();

private:
    nats_process(pid_t pid, std::uint16_t port, std::filesystem::path data,
                 std::chrono::milliseconds stop_wait)
        : _pid(pid), _port(port), _data(std::move(data)), _stop_wait(stop_wait) {}

    pid_t _pid;
    std::uint16_t _port;
    std::filesystem::path _data;
    std::chrono::milliseconds _stop_wait;
};

}  // namespace nagare::bench
