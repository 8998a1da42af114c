// msg_id_lru: the msg_ids a subscription's handler acked (or termed) within
// the last `window`, so a redelivery of one can be dropped and acked again
// (DESIGN.md section 3, point 4: "clients deduplicate redeliveries with their
// own 30 s msg_id LRU").
//
// Ids are kept as 128-bit XXH3 hashes (a false hit would drop a message, so
// 64 bits are not enough at high rates), with the time they were recorded
// and a small value (the ack kind to repeat). Entries leave in the order they
// came: after `window`, or earlier when `entries_max` are held (counted).
// Memory grows by doubling up to entries_max and is never returned: no
// allocation per id once grown.
//
// Invariant: every held entry has exactly one table slot pointing at it, and
// lookups stop at the first empty slot (linear probing, backward-shift
// deletion, no tombstones). A slot holds the ring index and the low 32 bits
// of the key (its tag): probing compares tags and reads the ring only on a
// tag match, and deletion finds each slot's home from its tag, so neither
// walks the ring (one cache miss per lookup instead of one per probe).
//
// Not synchronised: one thread (the client's I/O thread) owns it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace nagare::client {

struct msg_key {
    std::uint64_t low = 0;
    std::uint64_t high = 0;

    friend bool operator==(const msg_key&, const msg_key&) = default;
};

// XXH3-128 of the msg_id's bytes.
[[nodiscard]] msg_key msg_key_of(std::string_view msg_id) noexcept;

class msg_id_lru {
public:
    using clock = std::chrono::steady_clock;

    // REQUIRES: entries_max > 0, window > 0.
    msg_id_lru(std::size_t entries_max, clock::duration window);

    // The value recorded for key within the window, if any.
    [[nodiscard]] std::optional<std::uint8_t> find(const msg_key& key,
                                                   clock::time_point now) noexcept;

    // Records key (a key held already keeps its first time and value).
    // REQUIRES: now is not before the previous call's.
    void insert(const msg_key& key, std::uint8_t value, clock::time_point now);

    [[nodiscard]] std::size_t size() const noexcept { return _size; }
    [[nodiscard]] std::size_t capacity() const noexcept { return _ring.size(); }
    // Entries forgotten before their window was up because the LRU was full.
    [[nodiscard]] std::uint64_t evicted_early() const noexcept { return _evicted_early; }

private:
    struct entry {
        msg_key key;
        clock::time_point recorded;
        std::uint8_t value = 0;
    };
    // A slot: tag (the key's low 32 bits) << 32 | ring index.
    static constexpr std::uint64_t empty_slot = UINT64_MAX;
    [[nodiscard]] static std::uint32_t tag_of(const msg_key& key) noexcept {
        return static_cast<std::uint32_t>(key.low);
    }
    [[nodiscard]] static std::uint32_t ring_index(std::uint64_t slot) noexcept {
        return static_cast<std::uint32_t>(slot);
    }

    void expire(clock::time_point now) noexcept;
    void pop_oldest() noexcept;
    void grow();
    [[nodiscard]] std::size_t home(std::uint32_t tag) const noexcept;
    [[nodiscard]] std::size_t slot_of(const msg_key& key) const noexcept;  // its slot, or empty one
    void place(std::uint32_t index) noexcept;

    const std::size_t _entries_max;
    const clock::duration _window;
    std::vector<entry> _ring;           // insertion order from _oldest, _size entries
    std::vector<std::uint64_t> _table;  // slots; size a power of two >= 2 * ring size
    std::size_t _oldest = 0;
    std::size_t _size = 0;
    std::uint64_t _evicted_early = 0;
};

}  // namespace nagare::client
