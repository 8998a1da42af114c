// One io_uring per shard: the only place the broker touches liburing.
//
// Every SQE carries a completion_handler pointer in its user_data with a
// small tag in the low bits, so one dispatch loop serves files, sockets and
// timers alike. Set up with SINGLE_ISSUER | DEFER_TASKRUN when the kernel
// has them, else COOP_TASKRUN, else plain.
//
// With DEFER_TASKRUN the kernel posts completions only while the owning
// thread is inside io_uring_enter with GETEVENTS: every submit_* below does
// that (also with wait_nr 0), so a loop turn is
//     submit_and_wait(1) (or submit_and_wait_for) -> dispatch().
//
// One loop turn submits once: components that batch work for the turn (a
// connection's queued sends) register a submit_hook with schedule(); the
// hooks run, in scheduling order, at the start of the next submit_*.
//
// Owned by one thread (its shard); every call is made on it. With
// SINGLE_ISSUER the ring must be created on that thread.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>

#include <liburing.h>

#include "broker/io/limits.h"

namespace nagare::broker::io {

class completion_handler {
public:
    // tag: the value given to ring::prep's caller; res and flags from the CQE.
    virtual void on_cqe(unsigned tag, int res, unsigned flags) noexcept = 0;

protected:
    ~completion_handler() = default;
};

// Work to do once per loop turn, just before the ring submits.
class submit_hook {
public:
    // Runs at most once per schedule(); may prep SQEs and schedule hooks
    // (which run in the same submit). The object may be destroyed inside
    // (the ring does not touch it after the call).
    virtual void before_submit() noexcept = 0;

    [[nodiscard]] bool submit_hook_scheduled() const noexcept { return _hook_scheduled; }

protected:
    ~submit_hook() = default;

private:
    friend class ring;
    submit_hook* _hook_next = nullptr;
    bool _hook_scheduled = false;
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

    // The user_data that prep(handler, tag) stamps: the key for a cancel.
    [[nodiscard]] static std::uint64_t user_data(const completion_handler& handler,
                                                 unsigned tag) noexcept;

    // Runs hook.before_submit() at the start of the next submit_*; a hook
    // already scheduled stays scheduled once.
    void schedule(submit_hook& hook) noexcept;

    // Runs the scheduled hooks, submits queued SQEs and waits for `wait_nr`
    // completions (0: does not block, but still reaps deferred completions).
    // Returns -errno (other than EINTR/ETIME/EBUSY, which count as no error).
    int submit_and_wait(unsigned wait_nr) noexcept;

    // As submit_and_wait, waiting at most `timeout_ns`.
    int submit_and_wait_for(unsigned wait_nr, std::uint64_t timeout_ns) noexcept;

    // Delivers every CQE ready to its handler; returns how many.
    std::size_t dispatch() noexcept;

    // CQEs posted and not yet dispatched.
    [[nodiscard]] unsigned completions_ready() const noexcept;

    // io_uring_(un)register_buf_ring; 0 or -errno. Used by buffer_ring.
    [[nodiscard]] int register_buffer_ring(io_uring_buf_reg& registration) noexcept;
    [[nodiscard]] int unregister_buffer_ring(std::uint16_t buffer_group_id) noexcept;

    // Whether the kernel knows `opcode` (IORING_OP_*), by io_uring_get_probe_ring.
    [[nodiscard]] bool supports(unsigned opcode) noexcept;

    [[nodiscard]] unsigned setup_flags() const noexcept { return _flags; }
    [[nodiscard]] int fd() const noexcept { return _ring.ring_fd; }

private:
    ring() = default;
    void run_hooks() noexcept;

    io_uring _ring{};
    unsigned _flags = 0;
    submit_hook* _hooks_head = nullptr;
    submit_hook* _hooks_tail = nullptr;
};

}  // namespace nagare::broker::io
