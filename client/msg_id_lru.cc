#include "client/msg_id_lru.h"

#include <algorithm>
#include <bit>

#include <xxhash.h>

#include "client/limits.h"
#include "protocol/assert.h"

namespace nagare::client {

// The tag holds every bit a table index can have, so a slot's home is its tag's.
static_assert(std::bit_ceil(dedup_ids_limit * 2) <= std::uint64_t{1} << 32);

msg_key msg_key_of(std::string_view msg_id) noexcept {
    const auto h = XXH3_128bits(msg_id.data(), msg_id.size());
    return {h.low64, h.high64};
}

msg_id_lru::msg_id_lru(std::size_t entries_max, clock::duration window)
    : _entries_max(entries_max), _window(window) {
    NG_ASSERT(entries_max > 0 && entries_max <= dedup_ids_limit, "msg_id_lru size out of range");
    NG_ASSERT(window > clock::duration::zero(), "msg_id_lru window must be positive");
}

std::size_t msg_id_lru::home(std::uint32_t tag) const noexcept {
    return static_cast<std::size_t>(tag) & (_table.size() - 1);
}

std::size_t msg_id_lru::slot_of(const msg_key& key) const noexcept {
    const auto tag = tag_of(key);
    auto slot = home(tag);
    for (;;) {
        const auto held = _table[slot];
        if (held == empty_slot) return slot;
        if (static_cast<std::uint32_t>(held >> 32) == tag && _ring[ring_index(held)].key == key) {
            return slot;
        }
        slot = (slot + 1) & (_table.size() - 1);
    }
}

std::optional<std::uint8_t> msg_id_lru::find(const msg_key& key, clock::time_point now) noexcept {
    expire(now);
    if (_size == 0) return std::nullopt;
    const auto slot = slot_of(key);
    if (_table[slot] == empty_slot) return std::nullopt;
    return _ring[ring_index(_table[slot])].value;
}

void msg_id_lru::insert(const msg_key& key, std::uint8_t value, clock::time_point now) {
    expire(now);
    if (_size > 0 && _table[slot_of(key)] != empty_slot) return;
    if (_size == _ring.size()) {
        if (_ring.size() < _entries_max) {
            grow();
        } else {
            ++_evicted_early;
            pop_oldest();
        }
    }
    const auto index = static_cast<std::uint32_t>((_oldest + _size) % _ring.size());
    _ring[index] = {key, now, value};
    ++_size;
    place(index);
}

void msg_id_lru::place(std::uint32_t index) noexcept {
    const auto& key = _ring[index].key;
    _table[slot_of(key)] = std::uint64_t{tag_of(key)} << 32 | index;
}

void msg_id_lru::expire(clock::time_point now) noexcept {
    while (_size > 0 && now - _ring[_oldest].recorded >= _window) pop_oldest();
}

void msg_id_lru::pop_oldest() noexcept {
    NG_DEBUG_ASSERT(_size > 0, "pop from an empty msg_id_lru");
    const auto mask = _table.size() - 1;
    auto hole = slot_of(_ring[_oldest].key);
    NG_DEBUG_ASSERT(ring_index(_table[hole]) == _oldest, "the oldest entry has its slot");
    // Backward-shift deletion: pull later members of the probe run into the hole.
    for (auto next = (hole + 1) & mask; _table[next] != empty_slot; next = (next + 1) & mask) {
        const auto want = home(static_cast<std::uint32_t>(_table[next] >> 32));
        // Move it when its home is not in the cyclic range (hole, next].
        const bool stays =
            hole <= next ? (hole < want && want <= next) : (hole < want || want <= next);
        if (stays) continue;
        _table[hole] = _table[next];
        hole = next;
    }
    _table[hole] = empty_slot;
    _oldest = (_oldest + 1) % _ring.size();
    --_size;
}

void msg_id_lru::grow() {
    const auto capacity =
        std::min(_entries_max, std::max<std::size_t>(dedup_ids_initial, _ring.size() * 2));
    std::vector<entry> ring(capacity);
    for (std::size_t i = 0; i < _size; ++i) ring[i] = _ring[(_oldest + i) % _ring.size()];
    _ring = std::move(ring);
    _oldest = 0;
    _table.assign(std::bit_ceil(capacity * 2), empty_slot);
    for (std::size_t i = 0; i < _size; ++i) place(static_cast<std::uint32_t>(i));
}

}  // namespace nagare::client
