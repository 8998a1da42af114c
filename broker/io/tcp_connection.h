// One TCP socket's I/O on a shard's ring.
//
// Receive: one multishot recv selecting from the shard's buffer_ring; each
// CQE's bytes go to connection_handler::on_data and the buffer is recycled
// right after the call (the handler copies what it keeps). The recv is
// re-armed when a CQE lacks IORING_CQE_F_MORE, including after -ENOBUFS
// (buffer ring empty: the bytes stay in the socket; the new recv goes out
// with the next submit, after this dispatch has recycled its buffers).
// pause_reading() cancels the recv so unread bytes stay in the kernel and TCP
// throttles the peer; bytes the kernel had already put in buffers before the
// cancel took effect are still delivered (never dropped), so on_data may run
// after pause_reading() until the recv's last CQE is back.
//
// Send: a fixed-capacity byte queue (allocated once, at construction).
// send() copies into it or refuses the whole span when it does not fit;
// everything queued during a loop turn goes out in one send/sendmsg SQE at
// the next submit (two iovecs when the queue wraps), at most one in flight;
// a partial send continues with the rest. After a refusal, on_send_space()
// fires once the queue has room for the refused span.
//
// Close: close() cancels the recv and send in flight and drops unsent bytes;
// close_after_send() stops reading, sends what is queued, then closes; peer
// close (recv 0) behaves like close_after_send(); a socket error (recv or
// send -errno) like close(). The fd is closed (IORING_OP_CLOSE) only after
// every in-flight CQE of this connection is back, then on_closed(error) runs
// exactly once, as the last call of the cycle.
//
// States: idle -> open -> [draining] -> closing -> idle. The object may be
// destroyed or reopened only when idle() (also from inside on_closed).
// Invariants: send_queued_bytes() <= send_capacity_bytes(); at most one recv,
// one send, one cancel per kind and one close SQE in flight.
// Owned by one shard: every call on the ring's thread; nothing thread-safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include <sys/socket.h>
#include <sys/uio.h>

#include "broker/io/buffer_ring.h"
#include "broker/io/limits.h"
#include "broker/io/ring.h"

namespace nagare::broker::io {

class connection_handler {
public:
    // Bytes received, in order. The span is valid only during the call.
    virtual void on_data(std::span<const std::byte> bytes) noexcept = 0;
    // The queue has room again for the span the last refused send() carried.
    virtual void on_send_space() noexcept = 0;
    // The connection is closed and idle: 0 after close()/close_after_send()
    // or a peer close with nothing failing, else the -errno that ended it.
    virtual void on_closed(int error) noexcept = 0;

protected:
    ~connection_handler() = default;
};

struct tcp_connection_probe {
    std::uint64_t recv_sqes = 0;  // multishot arms
    std::uint64_t recv_cqes = 0;
    std::uint64_t recv_enobufs = 0;  // recvs ended by an empty buffer ring
    std::uint64_t received_bytes = 0;
    std::uint64_t send_sqes = 0;
    std::uint64_t sendmsg_sqes = 0;  // of send_sqes: a wrapped queue, two iovecs
    std::uint64_t send_cqes = 0;
    std::uint64_t send_partials = 0;  // sends that took less than was offered
    std::uint64_t send_refusals = 0;  // send() calls that did not fit
    std::uint64_t sent_bytes = 0;
};

class alignas(8) tcp_connection final : private completion_handler, private submit_hook {
public:
    // REQUIRES: 0 < send_queue_bytes <= send_queue_bytes_max; `r` and
    //           `buffers` outlive this object.
    tcp_connection(ring& r, buffer_ring& buffers,
                   std::size_t send_queue_bytes = send_queue_bytes_default);
    // REQUIRES: idle().
    ~tcp_connection();
    tcp_connection(const tcp_connection&) = delete;
    tcp_connection& operator=(const tcp_connection&) = delete;

    // Takes ownership of `fd` (a connected stream socket) and arms the recv.
    // REQUIRES: idle(); `handler` outlives the cycle (until on_closed).
    void open(int fd, connection_handler& handler) noexcept;

    // REQUIRES (all below): called on the ring's thread.
    void pause_reading() noexcept;
    void resume_reading() noexcept;
    [[nodiscard]] bool reading_paused() const noexcept { return _reading_paused; }

    // Queues a copy of `bytes`; false (nothing queued) when they do not fit
    // or the connection is not open.
    // REQUIRES: bytes.size() <= send_capacity_bytes().
    [[nodiscard]] bool send(std::span<const std::byte> bytes) noexcept;
    [[nodiscard]] std::size_t send_space_bytes() const noexcept {
        return _send_capacity_bytes - _send_queued_bytes;
    }
    // Queued bytes not yet acknowledged by a send CQE (in flight included).
    [[nodiscard]] std::size_t send_queued_bytes() const noexcept { return _send_queued_bytes; }
    [[nodiscard]] std::size_t send_capacity_bytes() const noexcept { return _send_capacity_bytes; }
    // Asks for on_send_space() once the queue has `bytes` of room (a caller
    // that keeps the queue below a watermark of its own). REQUIRES: the queue
    // is not empty (a send is in flight to complete), bytes <= capacity.
    void want_send_space(std::size_t bytes) noexcept {
        _send_space_wanted_bytes = std::max(_send_space_wanted_bytes, bytes);
    }

    void close() noexcept;
    void close_after_send() noexcept;

    // Open and neither draining nor closing.
    [[nodiscard]] bool is_open() const noexcept { return _state == state::open; }
    // No fd, no SQE in flight, nothing scheduled: may be destroyed or reopened.
    [[nodiscard]] bool idle() const noexcept;
    [[nodiscard]] int fd() const noexcept { return _fd; }
    [[nodiscard]] const tcp_connection_probe& probe() const noexcept { return _probe; }

private:
    enum class state : std::uint8_t { idle, open, draining, closing };

    static constexpr unsigned tag_recv = 0;
    static constexpr unsigned tag_send = 1;
    static constexpr unsigned tag_cancel_recv = 2;
    static constexpr unsigned tag_cancel_send = 3;
    static constexpr unsigned tag_close = 4;

    void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    void before_submit() noexcept override;

    void on_recv_cqe(int res, unsigned flags) noexcept;
    void on_recv_end(int res) noexcept;
    void on_send_cqe(int res) noexcept;
    void arm_recv() noexcept;
    void cancel(unsigned target_tag, unsigned cancel_tag) noexcept;
    void fail(int error) noexcept;
    void begin_drain() noexcept;
    void begin_close() noexcept;
    void close_fd_if_quiet() noexcept;
    void finish_close() noexcept;
    void consume_sent(std::size_t bytes) noexcept;

    ring& _ring;
    buffer_ring& _buffers;
    connection_handler* _handler = nullptr;
    int _fd = -1;
    state _state = state::idle;
    int _close_error = 0;

    bool _reading_paused = false;
    bool _recv_armed = false;
    bool _recv_cancel_in_flight = false;
    bool _send_in_flight = false;
    bool _send_cancel_in_flight = false;
    bool _close_in_flight = false;

    // Send queue: a ring of _send_capacity_bytes; the in-flight bytes are its front.
    std::unique_ptr<std::byte[]> _send_queue;
    std::size_t _send_capacity_bytes;
    std::size_t _send_head = 0;
    std::size_t _send_queued_bytes = 0;
    std::size_t _send_in_flight_bytes = 0;
    std::size_t _send_space_wanted_bytes = 0;  // > 0: on_send_space owed at this much room
    iovec _send_iov[2]{};
    msghdr _send_msg{};

    tcp_connection_probe _probe;
};

}  // namespace nagare::broker::io
