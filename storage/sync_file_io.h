// file_io backend for tests and tools: every call only queues; poll()
// performs the queued operations in order with the plain system calls
// (pwrite, whose short writes continue, fdatasync, fsync, openat, close,
// renameat; EINTR retried) and delivers each completion.
//
// The queue is bounded (queue_max); a partition log keeps at most one write
// and one sync in flight and a consumer state store one operation, so
// queue_max >= 2 x partitions + stores is enough.
// Owned by one thread; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "storage/file_io.h"
#include "storage/limits.h"

namespace nagare::storage {

class sync_file_io final : public file_io {
public:
    explicit sync_file_io(std::size_t queue_max = sync_file_io_queue_max_default);

    // REQUIRES: pending() < queue_max.
    void write(int fd, std::span<const std::byte> bytes, std::uint64_t position, bool datasync,
               io_completion& done) noexcept override;
    // REQUIRES: pending() < queue_max (for these and the ones below).
    void datasync(int fd, io_completion& done) noexcept override;
    void fsync(int fd, io_completion& done) noexcept override;
    void open_at(int dir_fd, const char* name, int flags, unsigned mode,
                 io_completion& done) noexcept override;
    void close(int fd, io_completion& done) noexcept override;
    void rename_at(int dir_fd, const char* from, const char* to,
                   io_completion& done) noexcept override;

    // Performs what was queued before the call (operations queued by its
    // completions wait for the next poll). `wait` changes nothing: it never blocks
    // on anything but the operations themselves.
    std::size_t poll(bool wait) noexcept override;

    [[nodiscard]] std::size_t pending() const noexcept override { return _count; }

private:
    enum class kind : std::uint8_t { write, datasync, fsync, open, close, rename };
    struct operation {
        kind what = kind::write;
        int fd = -1;  // the directory for open and rename
        std::span<const std::byte> bytes;
        std::uint64_t position = 0;
        bool datasync = false;           // after a write
        const char* name = nullptr;      // open, rename (from)
        const char* new_name = nullptr;  // rename (to)
        int flags = 0;                   // open
        unsigned mode = 0;               // open
        io_completion* done = nullptr;
    };

    // A queued, reset operation to fill in. REQUIRES: pending() < queue_max.
    operation& push(kind what, int fd, io_completion& done) noexcept;
    [[nodiscard]] static int perform(const operation& op) noexcept;

    std::vector<operation> _ring;
    std::size_t _head = 0;
    std::size_t _count = 0;
};

}  // namespace nagare::storage
