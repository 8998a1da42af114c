// Every limit of broker/io in one place: the kernel's hard ones (*_max) and
// the shard's start-up defaults (*_default), which the broker's config may
// lower or raise within the maxima.
#pragma once

#include <bit>
#include <climits>
#include <cstddef>

namespace nagare::broker::io {

// Provided-buffer ring (buffer_ring.h). Buffer ids are 16-bit and a ring has
// at most 32768 entries; its count must be a power of two.
inline constexpr std::size_t buffer_ring_count_max = 32768;
inline constexpr std::size_t buffer_ring_buffer_bytes_max = std::size_t{1} << 30;
inline constexpr std::size_t buffer_ring_count_default = 512;
inline constexpr std::size_t buffer_ring_buffer_bytes_default = 16u << 10;  // 16 KiB
// 512 x 16 KiB = 8 MiB of receive buffers per shard, shared by its connections.

// Per-connection send queue (tcp_connection.h): one frame must fit whole.
inline constexpr std::size_t send_queue_bytes_default = 256u << 10;  // 256 KiB
inline constexpr std::size_t send_queue_bytes_max = 1u << 30;

// listen(2) backlog per listening socket (tcp_listener.h).
inline constexpr int listen_backlog_default = 1024;

// Rounds of submit hooks that schedule hooks within one submit (ring.h).
inline constexpr unsigned ring_hook_rounds_max = 64;

static_assert(std::has_single_bit(buffer_ring_count_default));
static_assert(buffer_ring_count_default <= buffer_ring_count_max);
static_assert(buffer_ring_buffer_bytes_default <= buffer_ring_buffer_bytes_max);
static_assert(buffer_ring_buffer_bytes_max <= UINT_MAX, "a buffer's length is a u32 in the ring");
static_assert(buffer_ring_buffer_bytes_max <= INT_MAX, "a recv's result is an int");
static_assert(send_queue_bytes_default <= send_queue_bytes_max);
static_assert(send_queue_bytes_max <= INT_MAX, "a send's result is an int");

}  // namespace nagare::broker::io
