#include "broker/io/waker.h"

#include <cerrno>

#include <sys/eventfd.h>
#include <unistd.h>

#include "protocol/assert.h"

namespace nagare::broker::io {

const char* to_string(wake_path path) noexcept {
    return path == wake_path::msg_ring ? "msg_ring" : "eventfd";
}

wake_target::wake_target(ring& r, wake_handler& handler, int event_fd) noexcept
    : _ring(r), _handler(handler), _ring_fd(r.fd()), _event_fd(event_fd) {}

std::expected<std::unique_ptr<wake_target>, int> wake_target::create(ring& r,
                                                                     wake_handler& handler) {
    // Blocking on purpose: the ring polls it; O_NONBLOCK would make the read end in -EAGAIN.
    const int event_fd = ::eventfd(0, EFD_CLOEXEC);
    if (event_fd < 0) return std::unexpected(errno);
    return std::unique_ptr<wake_target>(new wake_target(r, handler, event_fd));
}

wake_target::~wake_target() {
    NG_ASSERT(idle(), "wake target destroyed with its eventfd read in flight");
    ::close(_event_fd);
}

void wake_target::start() noexcept {
    NG_ASSERT(!_started, "wake target started twice");
    _started = true;
    arm_read();
}

void wake_target::arm_read() noexcept {
    io_uring_sqe* sqe = _ring.prep(*this, tag_eventfd);
    io_uring_prep_read(sqe, _event_fd, &_event_count, sizeof(_event_count), 0);
    _read_armed = true;
}

void wake_target::stop() noexcept {
    if (_stopping) return;
    _stopping = true;
    if (_read_armed) {
        io_uring_sqe* sqe = _ring.prep(*this, tag_cancel);
        io_uring_prep_cancel64(sqe, ring::user_data(*this, tag_eventfd), 0);
        _cancel_in_flight = true;
    }
}

void wake_target::on_cqe(unsigned tag, int res, unsigned /*flags*/) noexcept {
    switch (tag) {
        case tag_message:
            deliver();
            return;
        case tag_eventfd:
            _read_armed = false;
            if (!_stopping) arm_read();
            if (res > 0) deliver();  // 8: the counter; a failed read is simply re-armed
            return;
        case tag_cancel:
            _cancel_in_flight = false;
            return;
        default:
            NG_ASSERT(false, "unknown wake target tag");
    }
}

void wake_target::deliver() noexcept {
    ++_wakes_received;
    // Cleared before the drain: a wake() after this point sends again.
    _wake_pending.exchange(false, std::memory_order_acq_rel);
    _handler.on_wake();
}

waker::~waker() { NG_ASSERT(idle(), "waker destroyed with a MSG_RING in flight"); }

void waker::wake() noexcept {
    if (_target._wake_pending.exchange(true, std::memory_order_acq_rel)) {
        ++_wakes_coalesced;
        return;
    }
    ++_wakes_sent;
    if (_path == wake_path::eventfd) {
        write_eventfd();
        return;
    }
    io_uring_sqe* sqe = _ring.prep(*this, tag_msg_ring);
    io_uring_prep_msg_ring(sqe, _target._ring_fd, 0,
                           ring::user_data(_target, wake_target::tag_message), 0);
    ++_in_flight;
}

void waker::on_cqe(unsigned tag, int res, unsigned /*flags*/) noexcept {
    NG_ASSERT(tag == tag_msg_ring, "unknown waker tag");
    --_in_flight;
    if (res >= 0) return;
    ++_msg_ring_failures;
    if (res == -EINVAL || res == -EOPNOTSUPP) _path = wake_path::eventfd;
    // The flag is still set and the target was not woken: wake it the other way.
    write_eventfd();
}

void waker::write_eventfd() noexcept {
    const int rc = ::eventfd_write(_target._event_fd, 1);
    NG_ASSERT(rc == 0, "eventfd write failed");
}

}  // namespace nagare::broker::io
