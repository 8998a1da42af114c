// One io_uring per shard: the only place the broker touches liburing.
//
// Every SQE carries a completion_handler pointer in its user_data with a
// small tag in the low bits, so one dispatch loop serves files, sockets and
// timers alike. Set up with SINGLE_ISSUER | DEFER_TASKRUN when the kernel
// has them, else COOP_TASKRUN, else plain.
//
// Owned by one thread (its shard); every call is made on it.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <expected>
#include <memory>

namespace nagare::broker::io {

class completion_handler {
public:
    // tag: the value given to ring::prep's caller; res and flags from the CQE.
    virtual void on_cqe(unsigned tag, int res, unsigned flags) noexcept = 0;

protected:
    ~completion_handler() = default;
};

inline constexpr unsigned ring_tag_bits = 3;
inline constexpr unsigned ring_tag_max = (1u << ring_tag_bits) - 1;

class ring {
public:
    // errno of io_uring_queue_init on failure.
    [[nodiscard]] static std::expected<std::unique_ptr<ring>, int> create(unsigned entries);
    ~ring();
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;

    // A free SQE tagged for `handler`; submits queued SQEs first when fewer
    // than `free_needed` slots are left (so a linked chain is never split).
    // REQUIRES: alignof(handler) > ring_tag_max, tag <= ring_tag_max.
    [[nodiscard]] io_uring_sqe* prep(completion_handler& handler, unsigned tag,
                                     unsigned free_needed = 1) noexcept;

    // Submits queued SQEs and waits for `wait_nr` completions. Returns -errno
    // (other than EINTR/ETIME, which count as no error).
    int submit_and_wait(unsigned wait_nr) noexcept;

    // Delivers every CQE ready to its handler; returns how many.
    std::size_t dispatch() noexcept;

    [[nodiscard]] unsigned setup_flags() const noexcept { return _flags; }
    [[nodiscard]] int fd() const noexcept { return _ring.ring_fd; }

private:
    ring() = default;

    io_uring _ring{};
    unsigned _flags = 0;
};

}  // namespace nagare::broker::io
