#include "storage/sync_file_io.h"

#include "protocol/assert.h"
#include "storage/posix_file.h"

namespace nagare::storage {

sync_file_io::sync_file_io(std::size_t queue_max) : _ring(queue_max) {
    NG_ASSERT(queue_max > 0, "a queue holds at least one operation");
}

void sync_file_io::push(const operation& op) noexcept {
    NG_ASSERT(_count < _ring.size(), "sync_file_io queue full: raise queue_max");
    _ring[(_head + _count) % _ring.size()] = op;
    ++_count;
}

void sync_file_io::write(int fd, std::span<const std::byte> bytes, std::uint64_t position,
                         bool datasync, io_completion& done) noexcept {
    push({fd, bytes, position, true, datasync, &done});
}

void sync_file_io::datasync(int fd, io_completion& done) noexcept {
    push({fd, {}, 0, false, true, &done});
}

int sync_file_io::perform(const operation& op) noexcept {
    if (op.write) {
        if (const int result = pwrite_all(op.fd, op.bytes, op.position); result < 0) return result;
    }
    if (op.datasync) {
        if (const int result = fdatasync_fd(op.fd); result < 0) return result;
    }
    return op.write ? static_cast<int>(op.bytes.size()) : 0;
}

std::size_t sync_file_io::poll(bool /*wait*/) noexcept {
    const auto queued = _count;
    for (std::size_t i = 0; i < queued; ++i) {
        const auto op = _ring[_head];
        _head = (_head + 1) % _ring.size();
        --_count;
        op.done->io_done(perform(op));
    }
    return queued;
}

}  // namespace nagare::storage
