// file_io backend for tests and tools: write() and datasync() only queue;
// poll() performs the queued operations in order with pwrite (short writes
// continue) and fdatasync, and delivers each completion.
//
// The queue is bounded (queue_max); a partition log keeps at most one write
// and one sync in flight, so queue_max >= 2 x partitions is enough.
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
    // REQUIRES: pending() < queue_max.
    void datasync(int fd, io_completion& done) noexcept override;

    // Performs what was queued before the call (operations queued by its
    // completions wait for the next poll). `wait` changes nothing: it never blocks
    // on anything but the operations themselves.
    std::size_t poll(bool wait) noexcept override;

    [[nodiscard]] std::size_t pending() const noexcept override { return _count; }

private:
    struct operation {
        int fd = -1;
        std::span<const std::byte> bytes;
        std::uint64_t position = 0;
        bool write = false;
        bool datasync = false;
        io_completion* done = nullptr;
    };

    void push(const operation& op) noexcept;
    [[nodiscard]] static int perform(const operation& op) noexcept;

    std::vector<operation> _ring;
    std::size_t _head = 0;
    std::size_t _count = 0;
};

}  // namespace nagare::storage
