// Every limit of nagare-bench, in one place.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "client/limits.h"
#include "protocol/limits.h"

namespace nagare::bench {

inline constexpr std::size_t producers_max = 256;
inline constexpr std::size_t projects_max = 1'000'000;
inline constexpr std::size_t message_bytes_max = protocol::payload_bytes_max_default;
inline constexpr std::size_t inflight_messages_max = client::inflight_messages_max;
inline constexpr std::size_t batch_messages_max = client::batch_messages_max;
inline constexpr std::uint64_t messages_max = std::uint64_t{1} << 40;
inline constexpr std::uint64_t duration_ms_max = 24ull * 3600 * 1000;

// Warm-up not counted: the first warmup_percent % of a --messages run, or
// warmup_duration of a --duration run.
inline constexpr std::uint64_t warmup_percent = 5;
inline constexpr std::chrono::milliseconds warmup_duration{500};
// How often the coordinator looks at the producers' counters.
inline constexpr std::chrono::microseconds coordinator_poll{200};
// A producer waits this long at the end for its last acknowledgements.
inline constexpr std::chrono::milliseconds final_flush_wait{60'000};
// No publish resolved for this long while producers run: the run closes its
// connections (blocked publishes return) and ends with an error.
inline constexpr std::chrono::milliseconds producer_stall_max{30'000};

// consume and e2e: subscribers, and what each may hold unacknowledged
// (nagared refuses more than broker/consumer_config.h's max_inflight_limit).
inline constexpr std::size_t consumers_max = 64;
inline constexpr std::size_t consumer_inflight_max = 16384;
// A receiver keeps one bit per message of the run: 32 MiB at most each.
inline constexpr std::uint64_t received_messages_max = std::uint64_t{1} << 28;
// A receiving run ends with an error when no message arrived for this long.
inline constexpr std::chrono::milliseconds receive_idle_max{10'000};
// After the last delivery, how long a subscription may take to write its acks.
inline constexpr std::chrono::milliseconds ack_drain_wait{10'000};

// e2e: publish rate and payload (scheduled send time and index, 8 bytes each).
inline constexpr std::uint64_t e2e_rate_max = 10'000'000;
inline constexpr std::size_t e2e_message_bytes_min = 16;

// fanout: JSON-stamped payloads (open_loop.h) need this many bytes; the
// subscribers and the connections (or SSE threads) they are spread over.
// A gateway the bench starts allows 100,000 new connections a second;
// each subscriber keeps one bit per message of the run
// (fanout_tracked_bits_max in all) and each connection one histogram.
inline constexpr std::size_t json_stamp_bytes_min = 72;
inline constexpr std::size_t fanout_subscribers_max = 20'000;
inline constexpr std::size_t fanout_connections_max = 64;
inline constexpr std::uint64_t fanout_tracked_bits_max = std::uint64_t{1} << 31;  // 256 MiB
// fanout through the gateway: an SSE line (an event's JSON) is at most this
// long; the HTTP response head too; how long connecting and the welcome
// event may take; the socket read size.
inline constexpr std::size_t sse_line_bytes_max = 64u << 10;
inline constexpr std::size_t sse_head_bytes_max = 16u << 10;
inline constexpr std::chrono::milliseconds sse_connect_wait{10'000};
inline constexpr std::size_t sse_read_bytes = 64u << 10;
// A nagare-gateway started by nagare-bench: until it prints its listening
// line; after SIGTERM, before SIGKILL.
inline constexpr std::chrono::milliseconds gateway_start_wait{10'000};
inline constexpr std::chrono::milliseconds gateway_stop_wait{10'000};

static_assert(warmup_percent < 100);
static_assert(json_stamp_bytes_min <= message_bytes_max);
static_assert(fanout_connections_max <= fanout_subscribers_max);
static_assert(e2e_message_bytes_min <= message_bytes_max);
static_assert(batch_messages_max <= protocol::messages_per_publish_max);

}  // namespace nagare::bench
