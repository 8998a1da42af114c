// A provided-buffer ring: `count` buffers of `buffer_bytes` each that the
// kernel picks from when a recv carries IOSQE_BUFFER_SELECT and this ring's
// buffer_group_id. One per shard, shared by every connection of the shard.
//
// A buffer the kernel filled is named by the CQE (IORING_CQE_F_BUFFER, id in
// the upper 16 bits); it is the reader's until recycle(id) hands it back.
// Memory (ring entries and buffers) is allocated once, at create().
//
// Invariant: each buffer id is either in the kernel's ring or lent to
// exactly one reader; never both.
// Owned by the shard that owns the ring; destroy it before the ring and only
// after every recv that selects from it has completed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>

#include "broker/io/limits.h"
#include "broker/io/ring.h"

namespace nagare::broker::io {

class buffer_ring {
public:
    // errno on failure: EINVAL for a bad shape, else mmap's or the kernel's.
    // REQUIRES: count is a power of two in [1, buffer_ring_count_max];
    //           buffer_bytes in [1, buffer_ring_buffer_bytes_max];
    //           buffer_group_id unique among this ring's buffer rings.
    [[nodiscard]] static std::expected<std::unique_ptr<buffer_ring>, int> create(
        ring& r, std::uint16_t buffer_group_id, std::size_t count, std::size_t buffer_bytes);
    ~buffer_ring();
    buffer_ring(const buffer_ring&) = delete;
    buffer_ring& operator=(const buffer_ring&) = delete;

    // The first `bytes` of buffer `buffer_id`, as the kernel filled it.
    // REQUIRES: buffer_id < count(), bytes <= buffer_bytes(), the buffer is
    //           lent (named by a CQE and not yet recycled).
    [[nodiscard]] std::span<const std::byte> view(std::uint16_t buffer_id,
                                                  std::size_t bytes) const noexcept;

    // Hands buffer `buffer_id` back to the kernel.
    // REQUIRES: buffer_id < count(), the buffer is lent.
    void recycle(std::uint16_t buffer_id) noexcept;

    [[nodiscard]] std::uint16_t buffer_group_id() const noexcept { return _buffer_group_id; }
    [[nodiscard]] std::size_t count() const noexcept { return _count; }
    [[nodiscard]] std::size_t buffer_bytes() const noexcept { return _buffer_bytes; }
    // Buffers recycled since creation (a counter for tests and metrics).
    [[nodiscard]] std::uint64_t recycled_count() const noexcept { return _recycled_count; }

private:
    buffer_ring(ring& r, std::uint16_t buffer_group_id, std::size_t count,
                std::size_t buffer_bytes) noexcept;
    [[nodiscard]] std::byte* buffer_address(std::uint16_t buffer_id) const noexcept;
    void add(std::uint16_t buffer_id, int offset) noexcept;

    ring& _ring;
    std::uint16_t _buffer_group_id;
    std::size_t _count;
    std::size_t _buffer_bytes;
    int _mask;
    void* _mapping = nullptr;  // ring entries (page-aligned) followed by the buffers
    std::size_t _mapping_bytes = 0;
    io_uring_buf_ring* _entries = nullptr;
    std::byte* _buffers = nullptr;
    bool _registered = false;
    std::uint64_t _recycled_count = 0;
};

}  // namespace nagare::broker::io
