// dedup_window: one partition's memory of recently stored msg_ids
// (DESIGN.md section 3, point 3). It maps the 128-bit XXH3 hash of a msg_id
// to the offset of the record that first stored it, for `window_ns` after
// that record's timestamp. The age is fixed from the first store: a repeat
// lookup does not extend it.
//
// Layout, all allocated in the constructor (nothing is allocated, freed or
// resized by any other call):
//  - a ring of max_entries entries {hash, offset, stored_ns}, 32 bytes each,
//    in insertion order, so in non-decreasing time and increasing offset
//    order; expiry and early eviction pop its head;
//  - an open-addressing table of u32 slots (power-of-two count, at least 1.5x
//    max_entries) pointing into the ring; Robin Hood linear probing with
//    backward-shift deletion (no tombstones). A slot packs the ring index,
//    the probe distance (saturating, then read from the ring) and a few hash
//    bits that skip most ring reads on a mismatch.
// 40.4 bytes per entry at the default 1,000,000; 44 at worst (memory_bytes()).
//
// Pending entries: the ids of a batch that waits for its fsync go in with
// insert_pending() and are visible to lookup() at once (whatever the time),
// so a second copy in flight is caught. They form the newest suffix of the
// ring. After the fsync, commit_through(last offset of the batch) turns them
// into normal entries, which then expire `window_ns` after their stored_ns;
// if the write failed, abort_from(first offset of the batch) removes them.
//
// Invariants:
//  - ring entries have non-decreasing stored_ns and increasing offsets;
//  - pending entries are the newest pending_count() entries of the ring;
//  - each hash is in the table at most once, pointing at its newest ring
//    entry; size() <= ring entries <= max_entries.
//
// An insert of a hash already present (rebuild from a log that stored an id
// twice, after an early eviction or an expiry) replaces it: lookups report
// the newest offset. The older ring entry stays, dead, until it leaves the
// ring (it is not counted as an early eviction then). If the newer entry was
// pending and is aborted, the id is gone: the broker inserts only ids that
// lookup() did not report, so this does not happen on its path.
//
// expire() is optional housekeeping: inserts first drop what has expired at
// their time, and lookups never report an expired entry.
//
// Rebuild after restart: a fresh window (or clear()) with the same options,
// then insert() the records whose timestamp is at or after
// rebuild_from_ns(newest record time), in offset order. At any `now` from
// the newest record time on, the rebuilt window answers exactly like the
// original, except that it may hold more: entries the original evicted early
// to make room for pending entries that were then aborted stay.
//
// Owned by one thread (the shard that owns the partition); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "protocol/types.h"

namespace nagare::storage {

// Slots keep the ring index in 24 bits at most (and 4 bits of probe distance).
inline constexpr std::size_t dedup_max_entries_limit = (std::size_t{1} << 24) - 1;
inline constexpr std::size_t dedup_max_entries_default = 1'000'000;
inline constexpr std::uint64_t dedup_window_ns_default = 30'000'000'000;  // 30 s
inline constexpr std::size_t dedup_entry_bytes_max = 48;                  // all-inclusive

// XXH3-128 of a msg_id.
struct msg_id_hash {
    std::uint64_t low = 0;
    std::uint64_t high = 0;

    friend constexpr bool operator==(const msg_id_hash&, const msg_id_hash&) = default;
};

// A duplicate: the offset of the record that stored the id first, and
// whether that record still waits for its fsync (its ack must wait too).
struct dedup_hit {
    offset original;
    bool pending = false;
};

struct dedup_counters {
    std::uint64_t hits = 0;             // lookups that found a live entry
    std::uint64_t inserts = 0;          // insert() and insert_pending() calls
    std::uint64_t expired = 0;          // entries dropped at the end of their window
    std::uint64_t early_evictions = 0;  // live entries dropped before it, to make room
    std::uint64_t aborted = 0;          // pending entries removed by abort_from()
};

class dedup_window {
public:
    struct options {
        std::uint64_t window_ns = dedup_window_ns_default;
        std::size_t max_entries = dedup_max_entries_default;
    };

    // Allocates everything. Throws std::invalid_argument (start-up only)
    // unless window_ns > 0 and 0 < max_entries <= dedup_max_entries_limit.
    // `table_seed` salts the table's choice of slot, so that ids crafted to
    // share a slot do not pile up; the first form draws it from
    // std::random_device. Answers never depend on it.
    explicit dedup_window(const options& opts);
    dedup_window(const options& opts, std::uint64_t table_seed);

    dedup_window(const dedup_window&) = delete;
    dedup_window& operator=(const dedup_window&) = delete;
    // A moved-from window may only be destroyed or assigned to.
    dedup_window(dedup_window&&) noexcept = default;
    dedup_window& operator=(dedup_window&&) noexcept = default;
    ~dedup_window();

    [[nodiscard]] static msg_id_hash hash_msg_id(std::string_view msg_id) noexcept;

    // The entry for `hash` if it is pending, or was stored less than
    // window_ns before `now_ns` (or after it). Counts a hit.
    [[nodiscard]] std::optional<dedup_hit> lookup(const msg_id_hash& hash,
                                                  std::uint64_t now_ns) noexcept;

    // Adds a stored record's id. First drops entries expired at stored_ns;
    // when max_entries remain, evicts the oldest early.
    // REQUIRES: pending_count() == 0 (asserted).
    // REQUIRES: stored_ns >= and record_offset > those of the newest entry
    //           (asserted; the log's timestamps never decrease).
    void insert(const msg_id_hash& hash, offset record_offset, std::uint64_t stored_ns) noexcept;

    // As insert(), for a record that waits for its fsync: visible to lookup
    // until commit_through() or abort_from() decides its fate. May evict
    // the oldest entry early, even a pending one, when max_entries are held.
    // REQUIRES: stored_ns >= and record_offset > those of the newest entry
    //           (asserted).
    void insert_pending(const msg_id_hash& hash, offset record_offset,
                        std::uint64_t stored_ns) noexcept;

    // The records up to `last` are durable: their pending entries become
    // normal ones. Returns how many did.
    std::size_t commit_through(offset last) noexcept;

    // The records from `first` on were not stored (the write failed): removes
    // their pending entries. Returns how many. Committed entries stay.
    std::size_t abort_from(offset first) noexcept;

    // Drops the committed entries expired at now_ns. Returns how many ids
    // left (not counting dead entries of ids stored again).
    std::size_t expire(std::uint64_t now_ns) noexcept;

    // Drops every entry (pending ones too). Counters are kept.
    void clear() noexcept;

    // Records older than this cannot be live any more once the newest record
    // has time newest_ns; a rebuild inserts from here on.
    [[nodiscard]] std::uint64_t rebuild_from_ns(std::uint64_t newest_ns) const noexcept;

    // Distinct ids held (pending ones included, expired ones not yet dropped too).
    [[nodiscard]] std::size_t size() const noexcept { return _table_used; }
    [[nodiscard]] std::size_t pending_count() const noexcept { return _pending; }
    [[nodiscard]] const dedup_counters& counters() const noexcept { return _counters; }
    [[nodiscard]] std::uint64_t window_ns() const noexcept { return _window_ns; }
    [[nodiscard]] std::size_t max_entries() const noexcept { return _ring_capacity; }
    [[nodiscard]] std::size_t table_slots() const noexcept { return _table_mask + 1; }
    // Everything this object holds: itself, the ring and the table.
    [[nodiscard]] std::size_t memory_bytes() const noexcept;

private:
    struct ring_entry {
        msg_id_hash hash;
        std::uint64_t record_offset = 0;
        std::uint64_t stored_ns = 0;
    };
    static_assert(sizeof(ring_entry) == 32);

    // One table slot: 0 when empty, else (low to high bits) ring index + 1,
    // 4 bits of probe distance (15: look it up), then the top hash bits.
    using slot = std::uint32_t;
    static constexpr std::size_t not_found = ~std::size_t{0};

    void push(const msg_id_hash& hash, offset record_offset, std::uint64_t stored_ns) noexcept;
    // Each returns whether the dropped entry was live (its id still in the table).
    bool drop_head() noexcept;
    bool drop_tail() noexcept;
    bool unlink(std::size_t index) noexcept;
    [[nodiscard]] bool expired_at(const ring_entry& entry, std::uint64_t now_ns) const noexcept;
    [[nodiscard]] bool is_pending(std::size_t index) const noexcept;
    [[nodiscard]] std::size_t ring_at(std::size_t age) const noexcept;

    // Table.
    [[nodiscard]] std::size_t find(const msg_id_hash& hash) const noexcept;
    void table_insert(const msg_id_hash& hash, std::size_t index) noexcept;
    void table_erase(std::size_t position) noexcept;
    [[nodiscard]] std::size_t home(const msg_id_hash& hash) const noexcept;
    [[nodiscard]] std::uint32_t tag(const msg_id_hash& hash) const noexcept;
    [[nodiscard]] slot make_slot(std::size_t index, std::size_t distance,
                                 std::uint32_t hash_tag) const noexcept;
    [[nodiscard]] std::size_t slot_index(slot s) const noexcept;
    [[nodiscard]] std::uint32_t slot_tag(slot s) const noexcept;
    [[nodiscard]] std::size_t slot_distance(std::size_t position, slot s) const noexcept;

    std::uint64_t _window_ns;
    std::uint64_t _seed;
    std::unique_ptr<ring_entry[]> _ring;
    std::size_t _ring_capacity;
    std::size_t _head = 0;     // ring index of the oldest entry
    std::size_t _count = 0;    // ring entries, dead ones included
    std::size_t _pending = 0;  // the newest _pending ring entries are pending
    std::unique_ptr<slot[]> _table;
    std::size_t _table_mask;
    std::size_t _table_used = 0;
    unsigned _home_shift;  // 64 - log2(table slots)
    unsigned _index_bits;  // bits of a slot holding ring index + 1
    unsigned _tag_shift;   // 64 - tag bits: the hash's top bits form the tag
    dedup_counters _counters;
};

}  // namespace nagare::storage
