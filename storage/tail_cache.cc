#include "storage/tail_cache.h"

#include <algorithm>
#include <bit>
#include <cstring>

#include "protocol/assert.h"
#include "storage/record_batch.h"

namespace nagare::storage {

std::size_t tail_cache::batches_max_for(std::size_t capacity_bytes) noexcept {
    if (capacity_bytes == 0) return 0;
    return std::bit_ceil(std::max<std::size_t>(2, capacity_bytes / tail_cache_batch_bytes_min));
}

tail_cache::tail_cache(std::size_t capacity_bytes)
    : _capacity_bytes(capacity_bytes),
      _batches_max(batches_max_for(capacity_bytes)),
      _index_mask(_batches_max == 0 ? 0 : _batches_max - 1) {
    NG_ASSERT(capacity_bytes <= tail_cache_bytes_max, "a tail cache within its limit");
    if (capacity_bytes == 0) return;
    _ring = std::make_unique_for_overwrite<std::byte[]>(capacity_bytes);
    _index = std::make_unique_for_overwrite<entry[]>(_batches_max);
}

void tail_cache::append(std::span<const std::byte> batch) noexcept {
    const auto header = peek_header(batch);
    NG_ASSERT(
        header.has_value() && header->batch_bytes == batch.size() && header->record_count >= 1,
        "the tail cache takes one whole batch");
    NG_DEBUG_ASSERT(batch_view::parse(batch).has_value(), "a verified batch");
    if (_capacity_bytes == 0) return;
    if (!empty() && header->base_offset != _end_offset) clear();  // a gap or an overlap
    if (batch.size() > _capacity_bytes) {
        clear();
        return;
    }
    // Not split: a batch that does not fit before the ring's end starts it again.
    std::uint64_t position = _write_position;
    if (position % _capacity_bytes + batch.size() > _capacity_bytes) {
        position += _capacity_bytes - position % _capacity_bytes;
    }
    const std::uint64_t end_position = position + batch.size();
    while (!empty() &&
           (_count == _batches_max || at(0).position + _capacity_bytes < end_position)) {
        evict_oldest();
    }
    std::memcpy(_ring.get() + position % _capacity_bytes, batch.data(), batch.size());
    _index[(_oldest + _count) & _index_mask] = {header->base_offset.value,
                                                header->end_offset().value, position,
                                                static_cast<std::uint32_t>(batch.size())};
    if (_count == 0) _first_offset = header->base_offset;
    ++_count;
    _cached_bytes += batch.size();
    _write_position = end_position;
    _end_offset = header->end_offset();
}

void tail_cache::evict_oldest() noexcept {
    const entry& oldest = at(0);
    _cached_bytes -= oldest.bytes;
    _oldest = (_oldest + 1) & _index_mask;
    --_count;
    _first_offset = _count == 0 ? _end_offset : offset{at(0).base_offset};
}

void tail_cache::drop_before(offset first) noexcept {
    while (!empty() && at(0).base_offset < first.value) evict_oldest();
}

void tail_cache::clear() noexcept {
    _oldest = 0;
    _count = 0;
    _cached_bytes = 0;
    _write_position = 0;
    _first_offset = _end_offset;
}

std::span<const std::byte> tail_cache::bytes_of(const entry& e) const noexcept {
    return {_ring.get() + e.position % _capacity_bytes, e.bytes};
}

std::size_t tail_cache::locate(offset o) const noexcept {
    // The last batch whose base is <= o: batches are dense, so it holds o.
    std::size_t low = 0;
    std::size_t high = _count;  // at(low).base <= o < at(high).base
    while (high - low > 1) {
        const std::size_t middle = low + (high - low) / 2;
        if (at(middle).base_offset <= o.value) {
            low = middle;
        } else {
            high = middle;
        }
    }
    NG_DEBUG_ASSERT(at(low).base_offset <= o.value && o.value < at(low).end_offset,
                    "dense batches");
    return low;
}

std::span<const std::byte> tail_cache::find(offset o) const noexcept {
    if (!contains(o)) return {};
    return bytes_of(at(locate(o)));
}

tail_cache::copy_result tail_cache::copy(offset from, offset end,
                                         std::span<std::byte> buffer) const noexcept {
    copy_result result{0, from};
    if (!contains(from)) return result;
    for (std::size_t i = locate(from); i < _count && at(i).base_offset < end.value; ++i) {
        const auto bytes = bytes_of(at(i));
        if (bytes.size() > buffer.size() - result.bytes) break;
        std::memcpy(buffer.data() + result.bytes, bytes.data(), bytes.size());
        result.bytes += bytes.size();
        result.next_offset = offset{at(i).end_offset};
    }
    return result;
}

}  // namespace nagare::storage
