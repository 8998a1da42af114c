// tail_cache: the most recently durable record batches of one partition, in
// memory, so that live subscribers are served without touching disk
// (DESIGN.md section 4, "Tail cache"; docs/storage.md).
//
// Memory is allocated once, by the constructor: a byte ring of
// capacity_bytes and an index ring of batches_max entries
// {base_offset, end_offset, position, bytes}. A batch is stored whole,
// never split: when it does not fit before the end of the byte ring it goes
// to the start (the end's bytes stay unused until the ring comes round).
// The oldest batches are evicted to make room, in bytes or in index entries.
//
// Positions are counted in a byte stream that never wraps (u64), the ring
// being that stream modulo capacity_bytes; live batches lie in the last
// capacity_bytes of the stream, so they never overlap in the ring.
//
// Invariants: cached batches hold dense offsets [first_offset(),
// end_offset()), each starting where the one before ended; their stream
// positions increase and all lie within capacity_bytes of the write position.
// empty() iff first_offset() == end_offset().
//
// Owned by one thread (in the broker: the shard that owns the partition);
// not thread-safe. A span returned by find() is valid until the next
// append() or clear().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>

#include "protocol/types.h"
#include "storage/limits.h"

namespace nagare::storage {

class tail_cache {
public:
    // capacity_bytes 0: disabled (append keeps nothing, find finds nothing).
    // The index holds batches_max_for(capacity_bytes) entries.
    // REQUIRES: capacity_bytes <= tail_cache_bytes_max.
    explicit tail_cache(std::size_t capacity_bytes);
    tail_cache(const tail_cache&) = delete;
    tail_cache& operator=(const tail_cache&) = delete;

    // Index entries for a cache of `capacity_bytes`: room for batches that
    // average tail_cache_batch_bytes_min (a power of two, at least 2; 0 for 0).
    [[nodiscard]] static std::size_t batches_max_for(std::size_t capacity_bytes) noexcept;

    // Adds one whole verified batch. It should continue end_offset(); one that
    // does not (a gap, or an overlap) clears the cache first. Evicts the oldest
    // batches to make room; a batch larger than capacity_bytes() clears the
    // cache and is not kept. No allocation.
    // REQUIRES: `batch` is exactly one batch (its header's batch_bytes ==
    // batch.size(), record_count >= 1).
    void append(std::span<const std::byte> batch) noexcept;

    // Drops the batches that start below `first` (retention removed them).
    void drop_before(offset first) noexcept;
    void clear() noexcept;

    [[nodiscard]] offset first_offset() const noexcept { return _first_offset; }
    [[nodiscard]] offset end_offset() const noexcept { return _end_offset; }
    [[nodiscard]] bool empty() const noexcept { return _count == 0; }
    [[nodiscard]] bool contains(offset o) const noexcept {
        return _first_offset <= o && o < _end_offset;
    }
    [[nodiscard]] std::size_t batch_count() const noexcept { return _count; }
    [[nodiscard]] std::size_t batches_max() const noexcept { return _batches_max; }
    [[nodiscard]] std::size_t capacity_bytes() const noexcept { return _capacity_bytes; }
    // Bytes of the cached batches (not counting the unused end of the ring).
    [[nodiscard]] std::size_t cached_bytes() const noexcept { return _cached_bytes; }

    // The bytes of the batch holding `o`; empty when o is outside
    // [first_offset(), end_offset()). O(log batch_count()).
    [[nodiscard]] std::span<const std::byte> find(offset o) const noexcept;

    struct copy_result {
        std::size_t bytes = 0;  // whole batches copied to the start of the buffer
        offset next_offset{};   // one past their last record
    };
    // Copies the batch holding `from` and those after it that start below
    // `end`, as many whole ones as fit in `buffer`. Nothing ({0, from}) when
    // `from` is not cached or its batch does not fit.
    [[nodiscard]] copy_result copy(offset from, offset end,
                                   std::span<std::byte> buffer) const noexcept;

private:
    // Plain integers, no initializers: the index is allocated without being
    // written, so a quiet partition's cache takes pages only as batches come.
    struct entry {
        std::uint64_t base_offset;
        std::uint64_t end_offset;
        std::uint64_t position;  // in the never-wrapping byte stream
        std::uint32_t bytes;
    };
    static_assert(std::is_trivially_default_constructible_v<entry>);

    [[nodiscard]] const entry& at(std::size_t i) const noexcept {
        return _index[(_oldest + i) & _index_mask];
    }
    [[nodiscard]] std::span<const std::byte> bytes_of(const entry& e) const noexcept;
    // The position in the index of the batch holding o. REQUIRES: o is cached.
    [[nodiscard]] std::size_t locate(offset o) const noexcept;
    void evict_oldest() noexcept;

    std::size_t _capacity_bytes;
    std::unique_ptr<std::byte[]> _ring;
    std::unique_ptr<entry[]> _index;
    std::size_t _batches_max;
    std::size_t _index_mask;
    std::size_t _oldest = 0;  // index slot of the oldest batch
    std::size_t _count = 0;
    std::size_t _cached_bytes = 0;
    std::uint64_t _write_position = 0;  // stream position after the newest batch
    offset _first_offset{};
    offset _end_offset{};
};

}  // namespace nagare::storage
