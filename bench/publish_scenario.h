// publish_scenario: `nagare-bench publish` — producers × projects × message
// size × in-flight window × batch × durability against one target.
//
// Each producer is a thread with its own connection; producer p's message k
// goes to project (k * producers + p) % projects (round-robin over the
// projects), to the stream prepared for the durability, with msg_id
// `<run>-<p>-<k>` (unique per run, so a broker reused across runs stores
// every message) and a fixed payload of message_bytes.
//
// Measured interval: from the end of the warm-up (the first warmup_percent %
// of the messages acknowledged, or warmup_duration of a --duration run) to
// the last acknowledgement (--messages) or the end of the duration. Rates
// are acknowledged messages within it; ack latency (publish call to
// callback) is recorded for every message published after the warm-up.
// Any failed or duplicate publish is counted (a good run has 0 of each).
//
// Threads: run_publish is called from one thread and returns once every
// producer thread has ended.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

struct publish_scenario_options {
    std::size_t producers = 4;
    std::size_t projects = 1000;
    std::size_t message_bytes = 128;
    std::uint64_t messages = 1'000'000;  // in all, over the producers; used when duration_ms == 0
    std::uint64_t duration_ms = 0;       // measure for this long (after the warm-up) instead
    std::size_t inflight = 4096;         // per producer (connection)
    std::size_t batch = 256;             // messages per request, at most
    durability mode = durability::fsync;
};

// Checks every option against bench/limits.h; the first fault as one line.
[[nodiscard]] std::expected<void, std::string> validate(const publish_scenario_options& options);

// What the scenario can read about the server process, when it started one.
struct server_probe {
    std::function<std::optional<double>()> cpu_s;
    std::function<std::optional<std::uint64_t>()> peak_rss_kib;
    // Cumulative counters; the result holds their growth over the measured interval.
    std::function<std::vector<std::pair<std::string, double>>()> counters;
};

// Prepares the stream, connects every producer, runs, and fills the result
// (parameters included). Fails, with nothing measured, when the stream or a
// connection cannot be set up; publish failures are counted, not fatal.
[[nodiscard]] std::expected<run_result, std::string> run_publish(
    target& into, const publish_scenario_options& options, const server_probe* server);

}  // namespace nagare::bench
