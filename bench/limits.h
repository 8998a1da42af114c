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

static_assert(warmup_percent < 100);
static_assert(batch_messages_max <= protocol::messages_per_publish_max);

}  // namespace nagare::bench
