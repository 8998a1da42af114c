// Cross-shard wake-ups. Shard B owns a wake_target on its ring; shard A
// wakes it through A's waker, which posts a CQE straight into B's ring with
// IORING_OP_MSG_RING. If the kernel refuses MSG_RING (-EINVAL/-EOPNOTSUPP)
// the waker switches for good to the fallback: a write to B's eventfd, which
// B's ring reads with IORING_OP_READ (always armed, so either path works).
// Any other failure of a MSG_RING is covered by an eventfd write too, so no
// wake is ever lost.
//
// Redundant wakes are avoided with the target's wake-pending flag: a waker
// sends only when it flips the flag false -> true; the target flips it back
// right before on_wake(), in which B drains its queues. Protocol (acq_rel on
// both exchanges): A publishes to its queue, then wake(); B clears the flag,
// then drains. Anything A published before a wake() that found the flag set
// is visible to the drain that follows the clear.
//
// Threads: wake_target is created, started, stopped and destroyed on B's
// thread; its wake-pending flag and its (const) fds are the only parts
// other threads touch, through a waker. A waker is used on A's thread only.
// Lifetime: B may destroy its wake_target only after every waker that names
// it has stopped waking it and is idle().
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>

#include "broker/io/ring.h"

namespace nagare::broker::io {

class wake_handler {
public:
    // Runs on the target's thread after the wake-pending flag was cleared:
    // drain the queues here.
    virtual void on_wake() noexcept = 0;

protected:
    ~wake_handler() = default;
};

class alignas(8) wake_target final : private completion_handler {
public:
    // Creates the eventfd. errno on failure.
    [[nodiscard]] static std::expected<std::unique_ptr<wake_target>, int> create(
        ring& r, wake_handler& handler);
    // REQUIRES: idle().
    ~wake_target();
    wake_target(const wake_target&) = delete;
    wake_target& operator=(const wake_target&) = delete;

    // Arms the eventfd read. REQUIRES: on the ring's thread, once.
    void start() noexcept;
    // Cancels the eventfd read; idle() once its CQE is back.
    void stop() noexcept;
    [[nodiscard]] bool idle() const noexcept { return !_read_armed && !_cancel_in_flight; }

    // Wakes seen (MSG_RING CQEs and eventfd reads), for tests and metrics.
    [[nodiscard]] std::uint64_t wakes_received() const noexcept { return _wakes_received; }

private:
    friend class waker;
    static constexpr unsigned tag_message = 0;
    static constexpr unsigned tag_eventfd = 1;
    static constexpr unsigned tag_cancel = 2;

    wake_target(ring& r, wake_handler& handler, int event_fd) noexcept;
    void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    void arm_read() noexcept;
    void deliver() noexcept;

    ring& _ring;
    wake_handler& _handler;
    // Read by wakers on other threads; set before any waker exists.
    const int _ring_fd;
    const int _event_fd;
    alignas(64) std::atomic<bool> _wake_pending{false};
    std::uint64_t _event_count = 0;  // the eventfd read's buffer
    bool _started = false;
    bool _stopping = false;
    bool _read_armed = false;
    bool _cancel_in_flight = false;
    std::uint64_t _wakes_received = 0;
};

enum class wake_path : std::uint8_t { msg_ring, eventfd };

[[nodiscard]] const char* to_string(wake_path path) noexcept;

// Shard A's side of the wake-ups of one target (one per ordered pair of
// shards, beside the pair's SPSC queue).
class alignas(8) waker final : private completion_handler {
public:
    // `preferred`: wake_path::eventfd skips MSG_RING (tests, old kernels).
    // REQUIRES: `r` (the waking shard's ring) and `target` outlive this object.
    waker(ring& r, wake_target& target, wake_path preferred = wake_path::msg_ring) noexcept
        : _ring(r), _target(target), _path(preferred) {}
    // REQUIRES: idle().
    ~waker();
    waker(const waker&) = delete;
    waker& operator=(const waker&) = delete;

    // Wakes the target unless a wake is already pending there. A MSG_RING
    // goes out with this shard's next submit; an eventfd write is immediate.
    // REQUIRES: on this waker's ring's thread; the target started, not stopped.
    void wake() noexcept;

    [[nodiscard]] wake_path path() const noexcept { return _path; }
    // No MSG_RING in flight: may be destroyed.
    [[nodiscard]] bool idle() const noexcept { return _in_flight == 0; }
    [[nodiscard]] std::uint64_t wakes_sent() const noexcept { return _wakes_sent; }
    [[nodiscard]] std::uint64_t wakes_coalesced() const noexcept { return _wakes_coalesced; }
    [[nodiscard]] std::uint64_t msg_ring_failures() const noexcept { return _msg_ring_failures; }

private:
    static constexpr unsigned tag_msg_ring = 0;

    void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    void write_eventfd() noexcept;

    ring& _ring;
    wake_target& _target;
    wake_path _path;
    std::uint64_t _in_flight = 0;
    std::uint64_t _wakes_sent = 0;
    std::uint64_t _wakes_coalesced = 0;
    std::uint64_t _msg_ring_failures = 0;
};

}  // namespace nagare::broker::io
