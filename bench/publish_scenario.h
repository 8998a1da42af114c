// publish_scenario: `nagare-bench publish` — producers × projects × message
// size × in-flight window × batch × durability against one target.
//
// Each producer is a thread with its own connection; producer p's message k
// goes to project (k * producers + p) % projects (round-robin over the
// projects), to subject `<prefix>event` of the stream prepared for the
// durability, with msg_id `<run>-<p>-<k>` (unique per run, so a broker
// reused across runs stores every message) and a fixed payload of
// message_bytes. Message k of producer p is message k * producers + p of
// the run: the indexes of a --messages run are exactly 0 .. messages - 1.
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

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/limits.h"
#include "bench/measure.h"
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
    // Set by a scenario that publishes as its first step (consume): the
    // msg_id prefix (empty: a fresh make_run_id()) and the subject's last token.
    std::string run_id;
    std::string subject_token = "event";
    // No publish resolved for this long while producers run: the run closes
    // its connections (blocked publishes return) and ends with an error.
    std::chrono::milliseconds stall_max = producer_stall_max;
};

// Checks every option against bench/limits.h; the first fault as one line.
[[nodiscard]] std::expected<void, std::string> validate(const publish_scenario_options& options);

// Prepares the stream, connects every producer, runs, and fills the result
// (parameters included). Fails, with nothing measured, when the stream or a
// connection cannot be set up; publish failures are counted, not fatal.
[[nodiscard]] std::expected<run_result, std::string> run_publish(
    target& into, const publish_scenario_options& options, const server_probe* server);

// "project-0" .. "project-<count - 1>": the projects a run publishes to.
[[nodiscard]] std::vector<std::string> project_names(std::size_t count);

// The run index (k * producers + p) of msg_id `<run_id>-<p>-<k>`; nullopt
// for an id of another run or shape, or p >= producers.
[[nodiscard]] std::optional<std::uint64_t> message_index(std::string_view msg_id,
                                                         std::string_view run_id,
                                                         std::size_t producers) noexcept;

}  // namespace nagare::bench
