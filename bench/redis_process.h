// redis_process: a real `redis-server` started by nagare-bench
// (--target redis --start-broker) on a free loopback port with its own
// directory, AOF on with the appendfsync setting that matches the run's
// durability (redis_appendfsync), no RDB snapshots; and what /proc says
// about it: CPU seconds (utime + stime) and peak resident memory (VmHWM).
//
// appendfsync is a setting of the whole server, so one started server
// serves one durability.
//
// Invariants: while running, pid() > 0 and the server answered PING once.
// The destructor stops a running server (SIGTERM, then SIGKILL after
// stop_wait) and removes the directory it created. One thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <sys/types.h>

#include "bench/target.h"

namespace nagare::bench {

struct redis_process_options {
    std::filesystem::path binary = "/usr/bin/redis-server";
    std::filesystem::path data_parent;  // a fresh directory is made under it; empty: $TMPDIR
    durability mode = durability::fsync;
    std::chrono::milliseconds start_wait{10'000};  // until PING answers
    std::chrono::milliseconds stop_wait{10'000};   // after SIGTERM, before SIGKILL
};

class redis_process {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<redis_process>, std::string> start(
        const redis_process_options& options);
    ~redis_process();
    redis_process(const redis_process&) = delete;
    redis_process& operator=(const redis_process&) = delete;

    // redis://127.0.0.1:<port>
    [[nodiscard]] std::string url() const;
    [[nodiscard]] pid_t pid() const noexcept { return _pid; }
    [[nodiscard]] std::uint16_t port() const noexcept { return _port; }
    [[nodiscard]] const std::filesystem::path& data_dir() const noexcept { return _data; }

    // utime + stime so far, in seconds; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<double> cpu_s() const;
    // VmHWM in KiB; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<std::uint64_t> peak_rss_kib() const;

    // SIGTERM and wait for the exit; its status (negative: killed by that
    // signal), or an error if it had to be killed after stop_wait.
    [[nodiscard]] std::expected<int, std::string> stop();

private:
    redis_process(pid_t pid, std::uint16_t port, std::filesystem::path data,
                  std::chrono::milliseconds stop_wait)
        : _pid(pid), _port(port), _data(std::move(data)), _stop_wait(stop_wait) {}

    pid_t _pid;
    std::uint16_t _port;
    std::filesystem::path _data;
    std::chrono::milliseconds _stop_wait;
};

}  // namespace nagare::bench
