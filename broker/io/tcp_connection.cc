#include "broker/io/tcp_connection.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <unistd.h>

#include "protocol/assert.h"

namespace nagare::broker::io {

tcp_connection::tcp_connection(ring& r, buffer_ring& buffers, std::size_t send_queue_bytes)
    : _ring(r),
      _buffers(buffers),
      _send_queue(std::make_unique_for_overwrite<std::byte[]>(send_queue_bytes)),
      _send_capacity_bytes(send_queue_bytes) {
    NG_ASSERT(send_queue_bytes > 0 && send_queue_bytes <= send_queue_bytes_max,
              "send queue capacity out of range");
}

tcp_connection::~tcp_connection() {
    NG_ASSERT(idle(), "connection destroyed while open or with I/O in flight");
}

bool tcp_connection::idle() const noexcept {
    return _state == state::idle && !_recv_armed && !_recv_cancel_in_flight && !_send_in_flight &&
           !_send_cancel_in_flight && !_close_in_flight && !submit_hook_scheduled();
}

void tcp_connection::open(int fd, connection_handler& handler) noexcept {
    NG_ASSERT(idle(), "open on a connection that is not idle");
    NG_ASSERT(fd >= 0, "open needs a socket");
    _fd = fd;
    _handler = &handler;
    _state = state::open;
    _close_error = 0;
    _reading_paused = false;
    _send_head = 0;
    _send_queued_bytes = 0;
    _send_in_flight_bytes = 0;
    _send_space_wanted_bytes = 0;
    _probe = {};
    arm_recv();
}

void tcp_connection::arm_recv() noexcept {
    io_uring_sqe* sqe = _ring.prep(*this, tag_recv);
    io_uring_prep_recv_multishot(sqe, _fd, nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = _buffers.buffer_group_id();
    _recv_armed = true;
    ++_probe.recv_sqes;
}

void tcp_connection::cancel(unsigned target_tag, unsigned cancel_tag) noexcept {
    io_uring_sqe* sqe = _ring.prep(*this, cancel_tag);
    io_uring_prep_cancel64(sqe, ring::user_data(*this, target_tag), 0);
}

void tcp_connection::pause_reading() noexcept {
    if (_state != state::open || _reading_paused) return;
    _reading_paused = true;
    if (_recv_armed && !_recv_cancel_in_flight) {
        cancel(tag_recv, tag_cancel_recv);
        _recv_cancel_in_flight = true;
    }
}

void tcp_connection::resume_reading() noexcept {
    if (_state != state::open || !_reading_paused) return;
    _reading_paused = false;
    // Still armed (its cancel in flight): its last CQE re-arms.
    if (!_recv_armed) arm_recv();
}

bool tcp_connection::send(std::span<const std::byte> bytes) noexcept {
    NG_ASSERT(bytes.size() <= _send_capacity_bytes, "a send larger than the whole queue");
    if (_state != state::open && _state != state::draining) return false;
    if (bytes.empty()) return true;
    if (bytes.size() > send_space_bytes()) {
        _send_space_wanted_bytes = std::max(_send_space_wanted_bytes, bytes.size());
        ++_probe.send_refusals;
        return false;
    }
    const std::size_t tail = (_send_head + _send_queued_bytes) % _send_capacity_bytes;
    const std::size_t first = std::min(bytes.size(), _send_capacity_bytes - tail);
    std::memcpy(_send_queue.get() + tail, bytes.data(), first);
    std::memcpy(_send_queue.get(), bytes.data() + first, bytes.size() - first);
    _send_queued_bytes += bytes.size();
    NG_DEBUG_ASSERT(_send_queued_bytes <= _send_capacity_bytes, "send queue overfilled");
    if (!_send_in_flight) _ring.schedule(*this);
    return true;
}

void tcp_connection::before_submit() noexcept {
    if (_state != state::open && _state != state::draining) return;
    if (_send_in_flight || _send_queued_bytes == 0) return;
    const std::size_t first = std::min(_send_queued_bytes, _send_capacity_bytes - _send_head);
    const std::size_t second = _send_queued_bytes - first;
    io_uring_sqe* sqe = _ring.prep(*this, tag_send);
    if (second == 0) {
        io_uring_prep_send(sqe, _fd, _send_queue.get() + _send_head, first, MSG_NOSIGNAL);
    } else {
        _send_iov[0] = {_send_queue.get() + _send_head, first};
        _send_iov[1] = {_send_queue.get(), second};
        _send_msg = {};
        _send_msg.msg_iov = _send_iov;
        _send_msg.msg_iovlen = 2;
        io_uring_prep_sendmsg(sqe, _fd, &_send_msg, MSG_NOSIGNAL);
        ++_probe.sendmsg_sqes;
    }
    _send_in_flight = true;
    _send_in_flight_bytes = _send_queued_bytes;
    ++_probe.send_sqes;
}

void tcp_connection::close() noexcept {
    if (_state == state::open || _state == state::draining) begin_close();
}

void tcp_connection::close_after_send() noexcept {
    if (_state == state::open) begin_drain();
}

void tcp_connection::begin_drain() noexcept {
    _state = state::draining;
    if (_recv_armed && !_recv_cancel_in_flight) {
        cancel(tag_recv, tag_cancel_recv);
        _recv_cancel_in_flight = true;
    }
    if (!_send_in_flight && _send_queued_bytes == 0) begin_close();
}

void tcp_connection::fail(int error) noexcept {
    if (_state != state::open && _state != state::draining) return;
    if (_close_error == 0) _close_error = error;
    begin_close();
}

void tcp_connection::begin_close() noexcept {
    _state = state::closing;
    if (_recv_armed && !_recv_cancel_in_flight) {
        cancel(tag_recv, tag_cancel_recv);
        _recv_cancel_in_flight = true;
    }
    if (_send_in_flight && !_send_cancel_in_flight) {
        cancel(tag_send, tag_cancel_send);
        _send_cancel_in_flight = true;
    }
    close_fd_if_quiet();
}

void tcp_connection::close_fd_if_quiet() noexcept {
    if (_state != state::closing || _close_in_flight) return;
    if (_recv_armed || _recv_cancel_in_flight || _send_in_flight || _send_cancel_in_flight) return;
    io_uring_sqe* sqe = _ring.prep(*this, tag_close);
    io_uring_prep_close(sqe, _fd);
    _close_in_flight = true;
}

void tcp_connection::on_cqe(unsigned tag, int res, unsigned flags) noexcept {
    switch (tag) {
        case tag_recv:
            on_recv_cqe(res, flags);
            break;
        case tag_send:
            on_send_cqe(res);
            break;
        case tag_cancel_recv:
            _recv_cancel_in_flight = false;
            break;  // the recv's CQE decides
        case tag_cancel_send:
            _send_cancel_in_flight = false;
            break;
        case tag_close:
            finish_close();
            return;  // *this may be gone
        default:
            NG_ASSERT(false, "unknown connection tag");
    }
    close_fd_if_quiet();
}

void tcp_connection::on_recv_cqe(int res, unsigned flags) noexcept {
    ++_probe.recv_cqes;
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) _recv_armed = false;
    NG_ASSERT(res <= 0 || (flags & IORING_CQE_F_BUFFER) != 0, "recv data without a buffer");
    if ((flags & IORING_CQE_F_BUFFER) != 0) {
        const auto buffer_id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        if (res > 0) {
            const auto bytes = static_cast<std::size_t>(res);
            _probe.received_bytes += bytes;
            if (_state == state::open) _handler->on_data(_buffers.view(buffer_id, bytes));
        }
        _buffers.recycle(buffer_id);
    }
    if (!more) on_recv_end(res);
}

void tcp_connection::on_recv_end(int res) noexcept {
    if (res == 0) {
        if (_state == state::open) begin_drain();  // the peer closed: flush, then close
        return;
    }
    if (res == -ENOBUFS) ++_probe.recv_enobufs;
    // Ended without failing: CQ overflow (res > 0), empty buffer ring, cancel, a spurious wake.
    const bool rearm =
        res > 0 || res == -ENOBUFS || res == -ECANCELED || res == -EAGAIN || res == -EINTR;
    if (!rearm) {
        fail(res);
        return;
    }
    if (_state == state::open && !_reading_paused && !_recv_armed) arm_recv();
}

void tcp_connection::on_send_cqe(int res) noexcept {
    ++_probe.send_cqes;
    _send_in_flight = false;
    const std::size_t offered = _send_in_flight_bytes;
    _send_in_flight_bytes = 0;
    if (_state == state::closing) return;
    if (res <= 0) {
        fail(res == 0 ? -EPIPE : res);
        return;
    }
    const auto sent = static_cast<std::size_t>(res);
    if (sent < offered) ++_probe.send_partials;
    consume_sent(sent);
    if (_send_queued_bytes > 0) {
        _ring.schedule(*this);
    } else if (_state == state::draining) {
        begin_close();
        return;
    }
    if (_send_space_wanted_bytes > 0 && send_space_bytes() >= _send_space_wanted_bytes) {
        _send_space_wanted_bytes = 0;
        _handler->on_send_space();
    }
}

void tcp_connection::consume_sent(std::size_t bytes) noexcept {
    NG_ASSERT(bytes <= _send_queued_bytes, "the kernel sent more than was queued");
    _probe.sent_bytes += bytes;
    _send_queued_bytes -= bytes;
    // An empty queue restarts at 0 so the next send is one contiguous span.
    _send_head = _send_queued_bytes == 0 ? 0 : (_send_head + bytes) % _send_capacity_bytes;
}

void tcp_connection::finish_close() noexcept {
    NG_ASSERT(_close_in_flight && !submit_hook_scheduled(), "close CQE out of order");
    _close_in_flight = false;
    _fd = -1;
    _state = state::idle;
    _send_queued_bytes = 0;
    _send_head = 0;
    connection_handler* handler = _handler;
    _handler = nullptr;
    handler->on_closed(_close_error);  // last: the handler may destroy or reopen *this
}

}  // namespace nagare::broker::io
