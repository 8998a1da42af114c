#include "broker/io/ring.h"

#include <cerrno>

#include "protocol/assert.h"

namespace nagare::broker::io {

std::expected<std::unique_ptr<ring>, int> ring::create(unsigned entries) {
    std::unique_ptr<ring> r(new ring());
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (const unsigned flags : attempts) {
        rc = io_uring_queue_init(entries, &r->_ring, flags);
        if (rc == 0) {
            r->_flags = flags;
            return r;
        }
    }
    return std::unexpected(-rc);
}

ring::~ring() { io_uring_queue_exit(&_ring); }

io_uring_sqe* ring::prep(completion_handler& handler, unsigned tag, unsigned free_needed) noexcept {
    NG_ASSERT(tag <= ring_tag_max, "ring tag out of range");
    const auto address = reinterpret_cast<std::uintptr_t>(&handler);
    NG_ASSERT((address & ring_tag_max) == 0, "completion handlers must be 8-byte aligned");
    if (io_uring_sq_space_left(&_ring) < free_needed) io_uring_submit(&_ring);
    io_uring_sqe* sqe = io_uring_get_sqe(&_ring);
    NG_ASSERT(sqe != nullptr, "submission queue full after a submit");
    io_uring_sqe_set_data64(sqe, address | tag);
    return sqe;
}

int ring::submit_and_wait(unsigned wait_nr) noexcept {
    const int rc = io_uring_submit_and_wait(&_ring, wait_nr);
    if (rc < 0 && rc != -EINTR && rc != -ETIME && rc != -EBUSY) return rc;
    return 0;
}

std::size_t ring::dispatch() noexcept {
    std::size_t delivered = 0;
    io_uring_cqe* cqe = nullptr;
    while (io_uring_peek_cqe(&_ring, &cqe) == 0) {
        const auto data = io_uring_cqe_get_data64(cqe);
        const int res = cqe->res;
        const unsigned flags = cqe->flags;
        io_uring_cqe_seen(&_ring, cqe);
        auto* handler = reinterpret_cast<completion_handler*>(data & ~std::uint64_t{ring_tag_max});
        if (handler != nullptr) {
            handler->on_cqe(static_cast<unsigned>(data & ring_tag_max), res, flags);
        }
        ++delivered;
    }
    return delivered;
}

}  // namespace nagare::broker::io
