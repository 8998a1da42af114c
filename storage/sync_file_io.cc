#include "storage/sync_file_io.h"

#include <cerrno>

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "protocol/assert.h"
#include "storage/posix_file.h"

namespace nagare::storage {

sync_file_io::sync_file_io(std::size_t queue_max) : _ring(queue_max) {
    NG_ASSERT(queue_max > 0, "a queue holds at least one operation");
}

sync_file_io::operation& sync_file_io::push(kind what, int fd, io_completion& done) noexcept {
    NG_ASSERT(_count < _ring.size(), "sync_file_io queue full: raise queue_max");
    operation& op = _ring[(_head + _count) % _ring.size()];
    ++_count;
    op = operation{};
    op.what = what;
    op.fd = fd;
    op.done = &done;
    return op;
}

void sync_file_io::write(int fd, std::span<const std::byte> bytes, std::uint64_t position,
                         bool datasync, io_completion& done) noexcept {
    operation& op = push(kind::write, fd, done);
    op.bytes = bytes;
    op.position = position;
    op.datasync = datasync;
}

void sync_file_io::datasync(int fd, io_completion& done) noexcept {
    (void)push(kind::datasync, fd, done);
}

void sync_file_io::fsync(int fd, io_completion& done) noexcept {
    (void)push(kind::fsync, fd, done);
}

void sync_file_io::open_at(int dir_fd, const char* name, int flags, unsigned mode,
                           io_completion& done) noexcept {
    operation& op = push(kind::open, dir_fd, done);
    op.name = name;
    op.flags = flags;
    op.mode = mode;
}

void sync_file_io::close(int fd, io_completion& done) noexcept {
    (void)push(kind::close, fd, done);
}

void sync_file_io::rename_at(int dir_fd, const char* from, const char* to,
                             io_completion& done) noexcept {
    operation& op = push(kind::rename, dir_fd, done);
    op.name = from;
    op.new_name = to;
}

int sync_file_io::perform(const operation& op) noexcept {
    int result = 0;
    switch (op.what) {
        case kind::write:
            result = pwrite_all(op.fd, op.bytes, op.position);
            if (result == 0 && op.datasync) result = fdatasync_fd(op.fd);
            return result < 0 ? result : static_cast<int>(op.bytes.size());
        case kind::datasync:
            return fdatasync_fd(op.fd);
        case kind::fsync:
            do {
                result = ::fsync(op.fd);
            } while (result != 0 && errno == EINTR);
            break;
        case kind::open:
            do {
                result = ::openat(op.fd, op.name, op.flags, op.mode);
            } while (result < 0 && errno == EINTR);
            return result < 0 ? -errno : result;
        case kind::close:
            result = ::close(op.fd);
            break;  // never retried: the fd is gone
        case kind::rename:
            result = ::renameat(op.fd, op.name, op.fd, op.new_name);
            break;
    }
    return result == 0 ? 0 : -errno;
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
