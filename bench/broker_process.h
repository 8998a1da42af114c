// broker_process: a real `nagared` started by nagare-bench (--start-broker)
// on free loopback ports with its own data directory, and what /proc says
// about it: CPU seconds (utime + stime) and peak resident memory (VmHWM);
// plus a few counters from its /metrics on the admin port.
//
// Invariants: while running, pid() > 0 and the broker's main port accepted
// a connection once. The destructor stops a running broker (SIGTERM, then
// SIGKILL after stop_wait) and removes the data directory it created.
// One thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace nagare::bench {

struct broker_process_options {
    std::filesystem::path nagared;      // the binary
    std::filesystem::path data_parent;  // a fresh directory is made under it; empty: $TMPDIR
    std::uint32_t shards = 0;           // 0: one per core (passed explicitly to nagared)
    std::string log_level = "warn";
    std::chrono::milliseconds start_wait{10'000};  // until the main port accepts
    std::chrono::milliseconds stop_wait{10'000};   // after SIGTERM, before SIGKILL
};

// Where nagared sits next to the running binary in a build tree
// (<dir>/nagared or <dir>/../broker/nagared), or nullopt.
[[nodiscard]] std::optional<std::filesystem::path> find_nagared_near_self();

class broker_process {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<broker_process>, std::string> start(
        const broker_process_options& options);
    ~broker_process();
    broker_process(const broker_process&) = delete;
    broker_process& operator=(const broker_process&) = delete;

    [[nodiscard]] std::string url() const;
    [[nodiscard]] pid_t pid() const noexcept { return _pid; }
    [[nodiscard]] std::uint32_t shards() const noexcept { return _shards; }
    [[nodiscard]] const std::filesystem::path& data_dir() const noexcept { return _data; }

    // utime + stime so far, in seconds; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<double> cpu_s() const;
    // VmHWM in KiB; nullopt once stopped or unreadable.
    [[nodiscard]] std::optional<std::uint64_t> peak_rss_kib() const;

    // Sums over shards of the /metrics counters that explain a publish run
    // (publishes, forwards_sent, loop_busy_s, stalls, ...), by
    // short name; empty when the admin port does not answer.
    [[nodiscard]] std::vector<std::pair<std::string, double>> counters() const;

    // SIGTERM and wait for the exit; its status (negative: killed by that
    // signal), or an error if it had to be killed after stop_wait.
    [[nodiscard]] std::expected<int, std::string> stop();

private:
    broker_process(pid_t pid, std::uint16_t port, std::uint16_t admin_port, std::uint32_t shards,
                   std::filesystem::path data, std::chrono::milliseconds stop_wait)
        : _pid(pid),
          _port(port),
          _admin_port(admin_port),
          _shards(shards),
          _data(std::move(data)),
          _stop_wait(stop_wait) {}

    pid_t _pid;
    std::uint16_t _port;
    std::uint16_t _admin_port;
    std::uint32_t _shards;
    std::filesystem::path _data;
    std::chrono::milliseconds _stop_wait;
};

}  // namespace nagare::bench
