// measure: what every scenario reads to measure an interval — the run's
// clock, this process's CPU time, and the server probe (CPU, memory and
// counters of a broker the harness started) — and how those readings become
// the common figures of a run_result.
//
// Threads: any; a server_probe's functions from one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/report.h"

namespace nagare::bench {

using run_clock = std::chrono::steady_clock;

[[nodiscard]] std::int64_t since_ns(run_clock::time_point epoch) noexcept;
[[nodiscard]] double seconds_between(std::int64_t from_ns, std::int64_t to_ns) noexcept;
// utime + stime of this process so far.
[[nodiscard]] double process_cpu_s() noexcept;

// A token unique to this run (wall clock ^ pid, base 36: [0-9a-z]+), used
// as msg_id prefix and subject token so a broker reused across runs keeps
// runs apart.
[[nodiscard]] std::string make_run_id();

// What a scenario can read about the server process, when it started one.
struct server_probe {
    std::function<std::optional<double>()> cpu_s;
    std::function<std::optional<std::uint64_t>()> peak_rss_kib;
    // Cumulative counters; the result holds their growth over the measured interval.
    std::function<std::vector<std::pair<std::string, double>>()> counters;
};

// A snapshot of the run at one end of a measured interval.
struct mark {
    std::int64_t at_ns = 0;   // since the run's epoch
    std::uint64_t count = 0;  // the scenario's progress counter (messages acknowledged, delivered)
    std::optional<double> server_cpu_s;
    std::vector<std::pair<std::string, double>> server_counters;
    double client_cpu_s = 0;
};

[[nodiscard]] mark take_mark(run_clock::time_point epoch, std::uint64_t count,
                             const server_probe* server);

// Polls every coordinator_poll until done(), calling on_poll() first at each
// poll. Returns false, without waiting further, once progress() has not
// changed for idle_max: the caller decides what the stall means.
[[nodiscard]] bool poll_until(const std::function<bool()>& done,
                              const std::function<std::uint64_t()>& progress,
                              std::chrono::milliseconds idle_max,
                              const std::function<void()>& on_poll = {});

// Waits for the producers of a run (done()) while publishes resolve
// (resolved()); when none resolved for stall_max, calls close_all() — a
// blocked publish then returns with an error — and waits for them to end.
// False after such a stall.
[[nodiscard]] bool await_producers(const std::function<bool()>& done,
                                   const std::function<std::uint64_t()>& resolved,
                                   std::chrono::milliseconds stall_max,
                                   const std::function<void()>& close_all,
                                   const std::function<void()>& on_poll = {});

// measured_s, msgs_per_s and mb_per_s of `messages` of `message_bytes` over
// [from_ns, to_ns] (left at 0 when the interval is empty).
void fill_rates(run_result& r, std::uint64_t messages, std::size_t message_bytes,
                std::int64_t from_ns, std::int64_t to_ns);

// server_cpu_s, server_peak_rss_kib, client_cpu_s and the growth of the
// server counters both marks have (a scrape can fail).
void fill_process_figures(run_result& r, const mark& start, const mark& end,
                          const server_probe* server);

}  // namespace nagare::bench
