#include "broker/io/buffer_ring.h"

#include <bit>
#include <cerrno>

#include <sys/mman.h>
#include <unistd.h>

#include "protocol/assert.h"

namespace nagare::broker::io {

namespace {

std::size_t round_up(std::size_t value, std::size_t multiple) noexcept {
    return (value + multiple - 1) / multiple * multiple;
}

}  // namespace

buffer_ring::buffer_ring(ring& r, std::uint16_t buffer_group_id, std::size_t count,
                         std::size_t buffer_bytes) noexcept
    : _ring(r),
      _buffer_group_id(buffer_group_id),
      _count(count),
      _buffer_bytes(buffer_bytes),
      _mask(io_uring_buf_ring_mask(static_cast<__u32>(count))) {}

std::expected<std::unique_ptr<buffer_ring>, int> buffer_ring::create(ring& r,
                                                                     std::uint16_t buffer_group_id,
                                                                     std::size_t count,
                                                                     std::size_t buffer_bytes) {
    if (count == 0 || count > buffer_ring_count_max || !std::has_single_bit(count) ||
        buffer_bytes == 0 || buffer_bytes > buffer_ring_buffer_bytes_max) {
        return std::unexpected(EINVAL);
    }
    std::unique_ptr<buffer_ring> b(new buffer_ring(r, buffer_group_id, count, buffer_bytes));
    const auto page_bytes = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t entries_bytes = round_up(count * sizeof(io_uring_buf), page_bytes);
    b->_mapping_bytes = entries_bytes + round_up(count * buffer_bytes, page_bytes);
    void* mapping = ::mmap(nullptr, b->_mapping_bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) return std::unexpected(errno);
    b->_mapping = mapping;
    b->_entries = static_cast<io_uring_buf_ring*>(mapping);
    b->_buffers = static_cast<std::byte*>(mapping) + entries_bytes;

    io_uring_buf_ring_init(b->_entries);
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<std::uint64_t>(b->_entries);
    registration.ring_entries = static_cast<std::uint32_t>(count);
    registration.bgid = buffer_group_id;
    const int rc = r.register_buffer_ring(registration);
    if (rc < 0) return std::unexpected(-rc);
    b->_registered = true;

    for (std::size_t i = 0; i < count; ++i)
        b->add(static_cast<std::uint16_t>(i), static_cast<int>(i));
    io_uring_buf_ring_advance(b->_entries, static_cast<int>(count));
    return b;
}

buffer_ring::~buffer_ring() {
    if (_registered) {
        const int rc = _ring.unregister_buffer_ring(_buffer_group_id);
        NG_ASSERT(rc == 0, "io_uring_unregister_buf_ring failed");
    }
    if (_mapping != nullptr) ::munmap(_mapping, _mapping_bytes);
}

std::byte* buffer_ring::buffer_address(std::uint16_t buffer_id) const noexcept {
    NG_ASSERT(buffer_id < _count, "buffer id out of range");
    return _buffers + std::size_t{buffer_id} * _buffer_bytes;
}

void buffer_ring::add(std::uint16_t buffer_id, int offset) noexcept {
    io_uring_buf_ring_add(_entries, buffer_address(buffer_id), static_cast<unsigned>(_buffer_bytes),
                          buffer_id, _mask, offset);
}

std::span<const std::byte> buffer_ring::view(std::uint16_t buffer_id,
                                             std::size_t bytes) const noexcept {
    NG_ASSERT(bytes <= _buffer_bytes, "more bytes than a buffer holds");
    return {buffer_address(buffer_id), bytes};
}

void buffer_ring::recycle(std::uint16_t buffer_id) noexcept {
    add(buffer_id, 0);
    io_uring_buf_ring_advance(_entries, 1);
    ++_recycled_count;
}

}  // namespace nagare::broker::io
