// storage::file_io on a shard's io_uring: a write and its fdatasync go out
// as two linked SQEs in one submission; the caller's io_completion runs
// after both CQEs. A short write is continued from where it stopped.
//
// Operations come from a fixed pool sized at construction (no allocation
// per write). Owned by the shard that owns the ring.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "broker/io/ring.h"
#include "storage/file_io.h"

namespace nagare::broker::io {

// Writes in flight at once on one shard: a partition log keeps at most one
// write and one sync in flight, so this bounds partitions per shard × 2.
inline constexpr std::size_t file_ops_max_default = 4096;

class uring_file_io final : public storage::file_io {
public:
    explicit uring_file_io(ring& r, std::size_t ops_max = file_ops_max_default);

    void write(int fd, std::span<const std::byte> bytes, std::uint64_t position, bool datasync,
               storage::io_completion& done) noexcept override;
    void datasync(int fd, storage::io_completion& done) noexcept override;
    // Submits and dispatches on the ring (the broker's loop normally does this).
    std::size_t poll(bool wait) noexcept override;
    [[nodiscard]] std::size_t pending() const noexcept override { return _in_use; }

private:
    struct alignas(8) op final : completion_handler {
        uring_file_io* owner = nullptr;
        int fd = -1;
        std::span<const std::byte> bytes;
        std::uint64_t position = 0;
        std::size_t written = 0;
        bool sync = false;
        unsigned cqes_left = 0;
        int error = 0;
        storage::io_completion* done = nullptr;
        op* next_free = nullptr;

        void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    };

    static constexpr unsigned tag_write = 0;
    static constexpr unsigned tag_sync = 1;

    op& acquire(int fd, storage::io_completion& done) noexcept;
    void release(op& o) noexcept;
    void submit(op& o) noexcept;  // the rest of the write, then the sync if asked
    void finish(op& o) noexcept;

    ring& _ring;
    std::unique_ptr<op[]> _ops;
    op* _free = nullptr;
    std::size_t _in_use = 0;
    std::size_t _delivered = 0;  // completions delivered during the current poll
};

}  // namespace nagare::broker::io
