// The write path's I/O interface. The partition log queues writes and syncs
// here, the consumer state store (storage/consumer_state.h) its whole save
// (open, write + fdatasync, close, renames, directory fsync), and both learn
// of each end through an io_completion; two backends:
//  - sync_file_io (storage/sync_file_io.h): the plain system calls,
//    performed in poll(); for tests and tools.
//  - the broker's io_uring backend (broker/io/), which the shard drives:
//    a write and its fdatasync go out as linked SQEs in one submission; the
//    other operations are one SQE each (IORING_OP_OPENAT, _CLOSE, _RENAMEAT,
//    _FSYNC), so a shard never blocks in a file system call.
//
// Owned by one thread; every call and every completion happens on it.
// Reads stay synchronous (pread) in the log: they hit the page cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace nagare::storage {

// Implemented by whoever waits for an operation. Must stay alive until
// io_done is called.
class io_completion {
public:
    // result: bytes written for a write (a backend finishes short writes; a
    // count below the size asked for is taken as a failed write), the new
    // descriptor for an open_at, 0 for a sync, close or rename, or -errno of
    // the first failure (the write's or its fdatasync's).
    virtual void io_done(int result) noexcept = 0;

protected:
    ~io_completion() = default;
};

class file_io {
public:
    virtual ~file_io() = default;

    // Queues a write of `bytes` at `position` of `fd`, followed when
    // `datasync` by an fdatasync of `fd` that starts only after the write.
    // done.io_done is called once, after both.
    // REQUIRES: `bytes` stays valid and unchanged until done.io_done.
    virtual void write(int fd, std::span<const std::byte> bytes, std::uint64_t position,
                       bool datasync, io_completion& done) noexcept = 0;

    // Queues an fdatasync of `fd`.
    virtual void datasync(int fd, io_completion& done) noexcept = 0;

    // Queues an fsync of `fd` (metadata too: what a directory needs after
    // entries were created, renamed or removed in it).
    virtual void fsync(int fd, io_completion& done) noexcept = 0;

    // Queues openat(dir_fd, name, flags, mode); the result is the descriptor,
    // which the caller owns (O_CLOEXEC is the caller's to pass).
    // REQUIRES: `name` stays valid and unchanged until done.io_done.
    virtual void open_at(int dir_fd, const char* name, int flags, unsigned mode,
                         io_completion& done) noexcept = 0;

    // Queues close(fd). `fd` must not be used once this is called.
    virtual void close(int fd, io_completion& done) noexcept = 0;

    // Queues renameat(dir_fd, from, dir_fd, to): `to` is replaced atomically.
    // REQUIRES: `from` and `to` stay valid and unchanged until done.io_done.
    virtual void rename_at(int dir_fd, const char* from, const char* to,
                           io_completion& done) noexcept = 0;

    // Makes progress and delivers completions; returns how many were
    // delivered. With `wait`, blocks until at least one is (if any is queued).
    virtual std::size_t poll(bool wait) noexcept = 0;

    // Operations queued or in flight.
    [[nodiscard]] virtual std::size_t pending() const noexcept = 0;
};

}  // namespace nagare::storage
