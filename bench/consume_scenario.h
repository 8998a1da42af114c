// consume_scenario: `nagare-bench consume` — fill a stream with N messages
// (the publish scenario: producers × projects × message size, msg_ids),
// then one or more subscribers read them from the start with explicit acks
// (or none) and the consume rate is reported beside the fill's publish rate
// of the same run, with their ratio and issue 5's goal for it.
//
// The fill publishes to a subject of its own, `<prefix>consume-<run>`, and
// the subscribers filter on it, so a broker reused across runs hands them
// this run's messages only. Subscribers: subscriber_options (receiver.h):
// --durable ones share one consumer (N deliveries expected in all), else
// each has its own (N each, C × N in all).
//
// Measured interval: from the end of the warm-up (the first warmup_percent %
// of the expected deliveries) to the last delivery; the acks of the last
// window are written after it, then checked (every subscription's acks must
// be written within ack_drain_wait). Every message is accounted: a message
// never delivered is lost (an error), one delivered twice a duplicate. A
// run ends with an error when nothing arrived for receive_idle_max.
//
// Threads: run_consume is called from one thread and returns once every
// producer thread has ended and every subscription is closed.
#pragma once

#include <expected>
#include <string>

#include "bench/measure.h"
#include "bench/publish_scenario.h"
#include "bench/receiver.h"
#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

struct consume_scenario_options {
    publish_scenario_options fill;  // a --messages run (duration_ms 0)
    subscriber_options subscribers;
};

// issue 5: explicit-ack consume of 128-byte messages reaches at least this
// fraction of the publish rate of the same run.
inline constexpr double consume_to_publish_goal = 0.50;
inline constexpr std::size_t consume_goal_message_bytes = 128;

[[nodiscard]] std::expected<void, std::string> validate(const consume_scenario_options& options);

// Runs the fill, then the consume. Fails, with nothing measured, when the
// stream, a connection or a subscription cannot be set up; failed publishes,
// lost or repeated deliveries and stalls are counted in the result.
[[nodiscard]] std::expected<run_result, std::string> run_consume(
    target& into, const consume_scenario_options& options, const server_probe* server);

}  // namespace nagare::bench
