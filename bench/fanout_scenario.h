// fanout_scenario: `nagare-bench fanout` — one publisher, many live
// subscribers of the same messages: delivered events/s summed over the
// subscribers, publish-to-receive latency, lost and repeated deliveries.
//
// The publisher is open loop (open_loop.h): message s is scheduled at
// t0 + s / rate, goes to the run's own project `fanout-<run>` and subject
// `<prefix>fanout-<run>`, and carries a JSON stamp (scheduled send time, s)
// padded to message_bytes. Receiving, one of two ways:
//
// - broker (default): `subscribers` ephemeral subscriptions (deliver new,
//   ack none, filter = the run's subject) spread round-robin over
//   `connections` subscriber connections of the target (nagare: one Client
//   each, so a connection's subscribers share its I/O thread).
// - gateway (gateway_url set): `subscribers` raw SSE clients of
//   nagare-gateway (`GET /events?project=<project>&subjects=<subject>&named=0`,
//   sse_client.h) spread over `connections` threads; the gateway must serve
//   the target's stream `bench_<durability>` (nagare-bench's --start-gateway
//   starts it so). Every client must have its welcome event before the
//   first publish.
//
// Latency: from each message's scheduled send time to its receipt by a
// subscriber (the SSE client's parse of the event), for every subscriber
// and every message scheduled after warmup_duration; one histogram per
// connection / thread (their deliveries are serial), merged at the end.
// Measured: the first deliveries of those messages, from the end of the
// warm-up to the last delivery; the figure delivered_to_offered compares
// that rate with rate × subscribers (below 1: the subscribers fell behind).
// Each subscriber must receive every stored message once: one never
// received is lost (an error), one received twice a duplicate.
//
// Threads: run_fanout is called from one thread and returns once the
// producer threads have ended and every subscription (or SSE client) is closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>

#include "bench/measure.h"
#include "bench/publish_scenario.h"
#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

struct fanout_scenario_options {
    // producers (default 1), message_bytes (at least json_stamp_bytes_min),
    // duration_ms (measured, after the warm-up; not 0), inflight, batch,
    // mode; `projects` and `messages` are not used.
    publish_scenario_options load = [] {
        publish_scenario_options o;
        o.producers = 1;
        o.duration_ms = 10'000;
        return o;
    }();
    std::uint64_t rate = 1'000;  // msgs/s published
    std::size_t subscribers = 100;
    std::size_t connections = 4;  // subscriber connections (broker) or SSE threads (gateway)
    std::chrono::milliseconds idle_max = receive_idle_max;

    // Through nagare-gateway: its base URL, `http://HOST:PORT` (empty: the broker).
    std::string gateway_url;
    std::string gateway_token;  // sent as `Authorization: Bearer`; empty: none
    // A gateway the harness started: its CPU and peak memory (reported as
    // the counters gateway_cpu_s over the measured interval, gateway_peak_rss_mib).
    std::function<std::optional<double>()> gateway_cpu_s;
    std::function<std::optional<std::uint64_t>()> gateway_peak_rss_kib;
};

[[nodiscard]] std::expected<void, std::string> validate(const fanout_scenario_options& options);

// Fails, with nothing measured, when the stream, a connection, a
// subscription or an SSE client cannot be set up; everything after that is counted.
[[nodiscard]] std::expected<run_result, std::string> run_fanout(
    target& into, const fanout_scenario_options& options, const server_probe* server);

}  // namespace nagare::bench
