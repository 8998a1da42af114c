#include "broker/publish_tracker.h"

#include "protocol/assert.h"

namespace nagare::broker {

namespace fb = protocol::fb;

publish_tracker::publish_tracker(std::size_t entries_max, std::size_t requests_max)
    : _entries(entries_max), _requests(requests_max) {
    NG_ASSERT(requests_max > 0 && (requests_max & (requests_max - 1)) == 0 &&
                  requests_max <= (std::size_t{1} << ticket_sequence_bits),
              "requests_max must be a power of two within the ticket's sequence bits");
    NG_ASSERT(entries_max >= protocol::messages_per_publish_max,
              "a maximal Publish must fit in an empty tracker");
    _scratch.reserve(protocol::messages_per_publish_max);
}

bool publish_tracker::has_room(std::uint32_t messages) const noexcept {
    return _requests_used < _requests.size() && _entries_used + messages <= _entries.size();
}

std::optional<std::uint32_t> publish_tracker::begin(std::uint64_t request_id,
                                                    std::uint32_t messages,
                                                    stream_table_ptr streams) noexcept {
    NG_ASSERT(messages <= protocol::messages_per_publish_max, "too many messages in a request");
    if (!has_room(messages)) return std::nullopt;
    const std::uint32_t sequence = _next_sequence;
    _next_sequence = (_next_sequence + 1) & ((std::uint32_t{1} << ticket_sequence_bits) - 1);
    auto& r = _requests[sequence & (_requests.size() - 1)];
    r.request_id = request_id;
    r.sequence = sequence;
    r.first_entry = static_cast<std::uint32_t>((_entries_head + _entries_used) % _entries.size());
    r.messages = messages;
    r.resolved = 0;
    r.streams = std::move(streams);
    _entries_used += messages;
    ++_requests_used;
    return sequence << ticket_index_bits;
}

bool publish_tracker::resolve(std::uint32_t ticket_index, const fb::PubAckEntry& entry) noexcept {
    const std::uint32_t sequence = ticket_index >> ticket_index_bits;
    const std::uint32_t index = ticket_index & ((std::uint32_t{1} << ticket_index_bits) - 1);
    auto& r = _requests[sequence & (_requests.size() - 1)];
    // The request must still be in flight: between oldest and next, with this sequence.
    const std::uint32_t mask = (std::uint32_t{1} << ticket_sequence_bits) - 1;
    const std::uint32_t age = (sequence - _oldest_sequence) & mask;
    if (_requests_used == 0 || age >= _requests_used || r.sequence != sequence ||
        index >= r.messages) {
        return false;
    }
    _entries[(r.first_entry + index) % _entries.size()] = entry;
    ++r.resolved;
    NG_ASSERT(r.resolved <= r.messages, "a message resolved twice");
    return true;
}

bool publish_tracker::front_ready() const noexcept {
    if (_requests_used == 0) return false;
    const auto& r = _requests[_oldest_sequence & (_requests.size() - 1)];
    return r.resolved == r.messages;
}

std::span<const std::byte> publish_tracker::encode_front(protocol::frame_encoder& encoder) {
    NG_ASSERT(front_ready(), "encode_front needs a resolved oldest request");
    const auto& r = _requests[_oldest_sequence & (_requests.size() - 1)];
    encoder.reset();
    auto& b = encoder.builder();
    _names.clear();
    if (r.streams) {
        for (const auto& s : r.streams->streams()) _names.push_back(b.CreateString(s.config.name));
    }
    const auto names = b.CreateVector(_names);
    flatbuffers::Offset<flatbuffers::Vector<const fb::PubAckEntry*>> entries;
    if (r.first_entry + r.messages <= _entries.size()) {
        entries = b.CreateVectorOfStructs(_entries.data() + r.first_entry, r.messages);
    } else {
        _scratch.clear();
        for (std::uint32_t i = 0; i < r.messages; ++i) {
            _scratch.push_back(_entries[(r.first_entry + i) % _entries.size()]);
        }
        entries = b.CreateVectorOfStructs(_scratch);
    }
    return encoder.finish(fb::CreatePubAck(b, r.request_id, names, entries));
}

void publish_tracker::reset() noexcept {
    while (_requests_used > 0) pop_front();
    // New sequences never match tickets handed out before.
    _oldest_sequence = _next_sequence;
}

void publish_tracker::pop_front() noexcept {
    NG_ASSERT(_requests_used > 0, "pop_front on an empty tracker");
    auto& r = _requests[_oldest_sequence & (_requests.size() - 1)];
    r.streams.reset();
    _entries_head = (_entries_head + r.messages) % _entries.size();
    _entries_used -= r.messages;
    --_requests_used;
    _oldest_sequence = (_oldest_sequence + 1) & ((std::uint32_t{1} << ticket_sequence_bits) - 1);
}

}  // namespace nagare::broker
