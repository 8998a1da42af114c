// e2e_scenario: `nagare-bench e2e` — publish-to-deliver latency under an
// open-loop load: a live subscriber (deliver new, explicit acks) and
// producers that publish at a fixed total rate whatever the broker does.
//
// Subscribers: subscriber_options (receiver.h), subscribed before the first
// publish with start_position::new_only on a subject of the run's own,
// `<prefix>e2e-<run>`. Message s (s = 0, 1, ...) is scheduled at t0 + s / rate and carries its
// scheduled send time and s in the first 16 bytes of its payload; producer
// p sends the messages s ≡ p (mod producers), each as soon as its time has
// come (late ones at once, one after the other). The subscriber records
// delivery time − scheduled send time: measuring from the schedule, not
// from the actual send, is the coordinated-omission correction (a stall of
// the broker or of a blocked publish counts for every message that should
// have gone out meanwhile).
//
// Measured: the messages scheduled after warmup_duration, for --duration.
// Achieved rate: those messages ÷ (the last actual send − the start of the
// measured interval): below --rate when the producers fell behind. After
// the last send the run waits for the remaining deliveries (until none came
// for receive_idle_max); a message stored and never delivered is lost (an
// error), one delivered twice a duplicate, a failed publish an error.
//
// Threads: run_e2e is called from one thread and returns once every
// producer thread has ended and the subscription is closed.
#pragma once

#include <cstdint>
#include <expected>
#include <string>

#include "bench/measure.h"
#include "bench/publish_scenario.h"
#include "bench/receiver.h"
#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

struct e2e_scenario_options {
    // producers, projects, message_bytes (at least e2e_message_bytes_min),
    // duration_ms (measured, after the warm-up; not 0), inflight, batch,
    // mode; `messages` is not used.
    publish_scenario_options load;
    std::uint64_t rate = 10'000;  // msgs/s over all producers
    subscriber_options subscribers;
};

[[nodiscard]] std::expected<void, std::string> validate(const e2e_scenario_options& options);

// Fails, with nothing measured, when the stream, a connection or the
// subscription cannot be set up; everything after that is counted.
[[nodiscard]] std::expected<run_result, std::string> run_e2e(target& into,
                                                             const e2e_scenario_options& options,
                                                             const server_probe* server);

}  // namespace nagare::bench
