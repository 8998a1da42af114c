// Every limit of the client library, in one place.
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/limits.h"

namespace nagare::client {

inline constexpr std::uint16_t default_port = 4150;
inline constexpr std::size_t url_bytes_max = 1024;

// options.max_inflight_messages and options.max_batch_messages.
inline constexpr std::size_t inflight_messages_max = std::size_t{1} << 20;
inline constexpr std::size_t batch_messages_max = protocol::messages_per_publish_max;

// A node's shard count above this makes the client route everything to the
// url's port (sessions are kept in a fixed table: main + one per shard).
inline constexpr std::size_t shard_count_max = 256;
inline constexpr std::size_t sessions_max = 1 + shard_count_max;

// I/O thread: bytes asked of one recv, recvs per session per loop turn, and
// the unsent bytes a session may hold before it stops encoding new frames.
inline constexpr std::size_t read_buffer_bytes = 256u << 10;
inline constexpr std::size_t reads_per_turn_max = 16;
inline constexpr std::size_t out_buffer_high_bytes = 1u << 20;
// Longest sleep of the I/O thread when no timer is due (it is woken for work).
inline constexpr int poll_wait_ms_max = 1000;

// Upper bounds of a Publish frame's FlatBuffers overhead (wire_size.h),
// checked against real encodings in tests/client/wire_size_test.cc.
inline constexpr std::size_t frame_overhead_bytes = 256;
inline constexpr std::size_t message_overhead_bytes = 128;
inline constexpr std::size_t header_overhead_bytes = 64;

// Subscriptions: live ones per client; positions per Ack frame (16 bytes
// each on the wire); partitions whose resume offset one subscription tracks.
inline constexpr std::size_t subscriptions_max = 4096;
inline constexpr std::size_t ack_positions_per_frame_max = 4096;
inline constexpr std::size_t resume_partitions_max = 65536;
// subscribe_options::backoff: redelivery delays at most.
inline constexpr std::size_t backoff_steps_max = 64;
// subscribe_options::dedup_ids_max at most; the msg_id LRU starts this small.
inline constexpr std::size_t dedup_ids_limit = std::size_t{1} << 24;
inline constexpr std::size_t dedup_ids_initial = 1024;
// Subscription ids carry this bit, so an Error's request_id tells a
// subscription (Subscribe, Ack) from a publish request (counted from 1).
inline constexpr std::uint64_t subscription_id_bit = std::uint64_t{1} << 63;

static_assert(ack_positions_per_frame_max * 16 + frame_overhead_bytes <
                  protocol::frame_bytes_max_default / 64,
              "an Ack frame stays far below any frame limit");
static_assert(dedup_ids_initial <= dedup_ids_limit);
static_assert(dedup_ids_limit * 2 <= UINT32_MAX, "LRU table slots hold 32-bit ring indices");
static_assert(batch_messages_max <= protocol::messages_per_publish_max);
static_assert(inflight_messages_max <= UINT32_MAX, "slot indices are 32-bit");
static_assert(protocol::payload_bytes_max_default + message_overhead_bytes + frame_overhead_bytes <
                  protocol::frame_bytes_max_default,
              "a maximal message fits in a default frame");

}  // namespace nagare::client
