// storage::file_io on a shard's io_uring: a write and its fdatasync go out
// as two linked SQEs in one submission; the caller's io_completion runs
// after both CQEs. A short write is continued from where it stopped.
// fsync, open_at, close and rename_at are one SQE each (IORING_OP_FSYNC,
// _OPENAT, _CLOSE, _RENAMEAT: kernel 5.11 or later, see supported()); the
// kernel copies the names when it takes the SQE, but callers keep them
// until the completion all the same (file_io.h).
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

// Operations in flight at once on one shard: a partition log keeps at most
// one write and one sync in flight, a consumer state store one operation, so
// this bounds partitions per shard × 2 + state saves in flight.
inline constexpr std::size_t file_ops_max_default = 4096;

class uring_file_io final : public storage::file_io {
public:
    explicit uring_file_io(ring& r, std::size_t ops_max = file_ops_max_default);

    // Whether the ring's kernel has every operation this class submits.
    [[nodiscard]] static bool supported(ring& r) noexcept;

    void write(int fd, std::span<const std::byte> bytes, std::uint64_t position, bool datasync,
               storage::io_completion& done) noexcept override;
    void datasync(int fd, storage::io_completion& done) noexcept override;
    void fsync(int fd, storage::io_completion& done) noexcept override;
    void open_at(int dir_fd, const char* name, int flags, unsigned mode,
                 storage::io_completion& done) noexcept override;
    void close(int fd, storage::io_completion& done) noexcept override;
    void rename_at(int dir_fd, const char* from, const char* to,
                   storage::io_completion& done) noexcept override;
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
    static constexpr unsigned tag_single = 2;  // fsync, open, close, rename: res is the result

    op& acquire(int fd, storage::io_completion& done) noexcept;
    void release(op& o) noexcept;
    void submit(op& o) noexcept;  // the rest of the write, then the sync if asked
    void finish(op& o) noexcept;
    void deliver(op& o, int result) noexcept;  // releases o, then calls its completion

    ring& _ring;
    std::unique_ptr<op[]> _ops;
    op* _free = nullptr;
    std::size_t _in_use = 0;
    std::size_t _delivered = 0;  // completions delivered during the current poll
};

}  // namespace nagare::broker::io
