// A one-shot or periodic timer on a shard's ring (IORING_OP_TIMEOUT).
//
// arm(duration_ns) fires timer_handler::on_timer once, no earlier than
// duration_ns after the call; arm_periodic(interval_ns) fires every
// interval_ns on absolute CLOCK_MONOTONIC deadlines (no drift; a late loop
// turn does not shift later ticks, ticks missed entirely are skipped).
// cancel() removes it (IORING_OP_TIMEOUT_REMOVE); on_timer does not run
// after cancel(), even when the timeout had already fired in the kernel.
// The broker's timer wheel runs on one periodic timer.
//
// Invariant: at most one timeout and one remove SQE in flight.
// Owned by one shard: every call on the ring's thread. Destroy only when
// idle(); arm again only when idle() (after a cancel, its CQEs must be back).
#pragma once

#include <cstdint>

#include "broker/io/ring.h"

namespace nagare::broker::io {

class timer_handler {
public:
    virtual void on_timer() noexcept = 0;

protected:
    ~timer_handler() = default;
};

class alignas(8) timer final : private completion_handler {
public:
    // REQUIRES: `r` and `handler` outlive this object.
    timer(ring& r, timer_handler& handler) noexcept : _ring(r), _handler(handler) {}
    // REQUIRES: idle().
    ~timer();
    timer(const timer&) = delete;
    timer& operator=(const timer&) = delete;

    // REQUIRES: idle(), duration_ns > 0.
    void arm(std::uint64_t duration_ns) noexcept;
    // REQUIRES: idle(), interval_ns > 0.
    void arm_periodic(std::uint64_t interval_ns) noexcept;
    // No-op when not armed.
    void cancel() noexcept;

    [[nodiscard]] bool armed() const noexcept { return _armed && !_cancelled; }
    // No SQE in flight: may be armed again or destroyed.
    [[nodiscard]] bool idle() const noexcept { return !_timeout_in_flight && !_remove_in_flight; }
    [[nodiscard]] std::uint64_t fired_count() const noexcept { return _fired_count; }

private:
    static constexpr unsigned tag_timeout = 0;
    static constexpr unsigned tag_remove = 1;

    void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    void submit_timeout() noexcept;

    ring& _ring;
    timer_handler& _handler;
    __kernel_timespec _deadline{};  // absolute CLOCK_MONOTONIC
    std::uint64_t _deadline_ns = 0;
    std::uint64_t _interval_ns = 0;  // 0: one-shot
    bool _armed = false;
    bool _cancelled = false;
    bool _timeout_in_flight = false;
    bool _remove_in_flight = false;
    std::uint64_t _fired_count = 0;
};

}  // namespace nagare::broker::io
