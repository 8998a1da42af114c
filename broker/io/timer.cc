#include "broker/io/timer.h"

#include <cerrno>
#include <ctime>

#include "protocol/assert.h"

namespace nagare::broker::io {

namespace {

std::uint64_t monotonic_now_ns() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace

timer::~timer() { NG_ASSERT(idle(), "timer destroyed with a timeout in flight"); }

void timer::arm(std::uint64_t duration_ns) noexcept {
    NG_ASSERT(idle() && duration_ns > 0, "arm needs an idle timer and a duration");
    _interval_ns = 0;
    _deadline_ns = monotonic_now_ns() + duration_ns;
    _armed = true;
    _cancelled = false;
    submit_timeout();
}

void timer::arm_periodic(std::uint64_t interval_ns) noexcept {
    NG_ASSERT(idle() && interval_ns > 0, "arm_periodic needs an idle timer and an interval");
    _interval_ns = interval_ns;
    _deadline_ns = monotonic_now_ns() + interval_ns;
    _armed = true;
    _cancelled = false;
    submit_timeout();
}

void timer::submit_timeout() noexcept {
    _deadline.tv_sec = static_cast<long long>(_deadline_ns / 1'000'000'000u);
    _deadline.tv_nsec = static_cast<long long>(_deadline_ns % 1'000'000'000u);
    io_uring_sqe* sqe = _ring.prep(*this, tag_timeout);
    io_uring_prep_timeout(sqe, &_deadline, 0, IORING_TIMEOUT_ABS);
    _timeout_in_flight = true;
}

void timer::cancel() noexcept {
    if (!_armed || _cancelled) return;
    _cancelled = true;
    if (_timeout_in_flight && !_remove_in_flight) {
        io_uring_sqe* sqe = _ring.prep(*this, tag_remove);
        io_uring_prep_timeout_remove(sqe, ring::user_data(*this, tag_timeout), 0);
        _remove_in_flight = true;
    }
}

void timer::on_cqe(unsigned tag, int res, unsigned /*flags*/) noexcept {
    if (tag == tag_remove) {
        _remove_in_flight = false;  // 0, or -ENOENT/-EALREADY when it had fired
        return;
    }
    NG_ASSERT(tag == tag_timeout, "unknown timer tag");
    _timeout_in_flight = false;
    if (_cancelled) {
        _armed = false;
        return;
    }
    // -ETIME: expired. Anything else (-ECANCELED from a ring teardown) ends it.
    if (res != -ETIME) {
        _armed = false;
        return;
    }
    ++_fired_count;
    if (_interval_ns == 0) {
        _armed = false;
    } else {
        const std::uint64_t now_ns = monotonic_now_ns();
        _deadline_ns += _interval_ns;
        if (_deadline_ns <= now_ns) {  // a late turn: skip the ticks already missed
            _deadline_ns += (now_ns - _deadline_ns) / _interval_ns * _interval_ns + _interval_ns;
        }
        submit_timeout();
    }
    _handler.on_timer();  // last: the handler may cancel
}

}  // namespace nagare::broker::io
