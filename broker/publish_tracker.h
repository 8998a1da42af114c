// The publishes of one connection that wait for their acks. Requests are
// answered in the order they arrived; within a request the entries are in
// the order of its messages (DESIGN.md section 6). Messages resolve in any
// order (partitions sync independently); a PubAck leaves only when its
// request is the oldest and every message of it is resolved.
//
// Fixed capacity, allocated at construction: `entries_max` messages and
// `requests_max` requests in flight. A ticket names its message by request
// sequence number and index, so a late outcome for a request that is gone
// (connection reset) is recognised and dropped.
//
// Owned by the shard that owns the connection.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "broker/streams.h"
#include "protocol/frame.h"

namespace nagare::broker {

inline constexpr std::uint32_t ticket_index_bits = 12;  // messages_per_publish_max = 4096
inline constexpr std::uint32_t ticket_sequence_bits = 32 - ticket_index_bits;
static_assert((std::uint32_t{1} << ticket_index_bits) >= protocol::messages_per_publish_max);

class publish_tracker {
public:
    // REQUIRES: requests_max is a power of two <= 2^ticket_sequence_bits;
    // entries_max >= messages_per_publish_max.
    publish_tracker(std::size_t entries_max, std::size_t requests_max);

    // Starts a request of `messages` messages routed with `streams`; returns
    // the ticket index base (sequence << ticket_index_bits), or nothing when
    // the tracker is full (stop reading the socket).
    [[nodiscard]] std::optional<std::uint32_t> begin(std::uint64_t request_id,
                                                     std::uint32_t messages,
                                                     stream_table_ptr streams) noexcept;

    // Records the outcome of message `ticket_index` (base | message index).
    // Returns false for a ticket of a request no longer here.
    bool resolve(std::uint32_t ticket_index, const protocol::fb::PubAckEntry& entry) noexcept;

    // The oldest request, if every message of it is resolved.
    [[nodiscard]] bool front_ready() const noexcept;
    // Encodes the oldest request's PubAck. REQUIRES: front_ready().
    [[nodiscard]] std::span<const std::byte> encode_front(protocol::frame_encoder& encoder);
    // Forgets the oldest request (after its PubAck went into the send queue).
    void pop_front() noexcept;

    // Forgets everything (the connection is gone); later resolves are refused.
    void reset() noexcept;

    [[nodiscard]] std::size_t pending_messages() const noexcept { return _entries_used; }
    [[nodiscard]] std::size_t pending_requests() const noexcept { return _requests_used; }
    [[nodiscard]] bool has_room(std::uint32_t messages) const noexcept;

private:
    struct request {
        std::uint64_t request_id = 0;
        std::uint32_t sequence = 0;
        std::uint32_t first_entry = 0;  // index into _entries (ring)
        std::uint32_t messages = 0;
        std::uint32_t resolved = 0;
        stream_table_ptr streams;
    };

    std::vector<protocol::fb::PubAckEntry> _entries;  // ring
    std::vector<request> _requests;                   // ring, indexed by sequence
    std::vector<protocol::fb::PubAckEntry> _scratch;  // a wrapped request, made contiguous
    std::vector<flatbuffers::Offset<flatbuffers::String>> _names;
    std::size_t _entries_head = 0;
    std::size_t _entries_used = 0;
    std::uint32_t _next_sequence = 0;
    std::uint32_t _oldest_sequence = 0;
    std::size_t _requests_used = 0;
};

}  // namespace nagare::broker
