#include "broker/io/tcp_listener.h"

#include <cerrno>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/assert.h"

namespace nagare::broker::io {

namespace {

bool set_int_option(int fd, int level, int name, int value) noexcept {
    return ::setsockopt(fd, level, name, &value, sizeof(value)) == 0;
}

// Resource shortages: re-arming would fail again at once.
bool is_resource_error(int error) noexcept {
    return error == -EMFILE || error == -ENFILE || error == -ENOMEM || error == -ENOBUFS;
}

}  // namespace

tcp_listener::tcp_listener(ring& r, int fd, std::uint16_t port, accept_handler& handler) noexcept
    : _ring(r), _fd(fd), _port(port), _handler(handler) {}

std::expected<std::unique_ptr<tcp_listener>, int> tcp_listener::create(
    ring& r, const std::string& host, std::uint16_t port, accept_handler& handler, int backlog) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) return std::unexpected(EINVAL);

    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::unexpected(errno);
    auto fail = [fd]() {
        const int error = errno;
        ::close(fd);
        return std::unexpected(error);
    };
    if (!set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1)) return fail();
    if (!set_int_option(fd, SOL_SOCKET, SO_REUSEPORT, 1)) return fail();
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0)
        return fail();
    if (::listen(fd, backlog) != 0) return fail();
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return fail();
    return std::unique_ptr<tcp_listener>(new tcp_listener(r, fd, ntohs(address.sin_port), handler));
}

tcp_listener::~tcp_listener() {
    NG_ASSERT(!_accept_armed && !_cancel_in_flight, "listener destroyed with an accept in flight");
    if (_fd >= 0) ::close(_fd);
}

void tcp_listener::start() noexcept {
    NG_ASSERT(!_started && _fd >= 0, "listener started twice or after stop");
    _started = true;
    arm();
}

void tcp_listener::arm() noexcept {
    io_uring_sqe* sqe = _ring.prep(*this, tag_accept);
    io_uring_prep_multishot_accept(sqe, _fd, nullptr, nullptr, SOCK_CLOEXEC);
    _accept_armed = true;
    ++_probe.accept_sqes;
}

void tcp_listener::resume_accepting() noexcept {
    if (!_paused_on_error || _stopping) return;
    _paused_on_error = false;
    arm();
}

void tcp_listener::stop() noexcept {
    if (_stopping || _fd < 0) return;
    _stopping = true;
    _paused_on_error = false;
    if (_accept_armed) {
        io_uring_sqe* sqe = _ring.prep(*this, tag_cancel);
        io_uring_prep_cancel64(sqe, ring::user_data(*this, tag_accept), 0);
        _cancel_in_flight = true;
    }
    close_if_idle();
}

void tcp_listener::on_cqe(unsigned tag, int res, unsigned flags) noexcept {
    if (tag == tag_accept) {
        on_accept_cqe(res, flags);
    } else {
        NG_ASSERT(tag == tag_cancel, "unknown listener tag");
        _cancel_in_flight = false;  // res: 0, -ENOENT or -EALREADY; the accept's CQE decides
    }
    close_if_idle();
}

void tcp_listener::on_accept_cqe(int res, unsigned flags) noexcept {
    const bool more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) _accept_armed = false;
    if (res >= 0) {
        ++_probe.accepted;
        if (_stopping) {
            ::close(res);  // raced with the cancel: nobody wants it any more
        } else {
            (void)set_int_option(res, IPPROTO_TCP, TCP_NODELAY, 1);
            _handler.on_accept(res);
        }
    } else if (res != -ECANCELED || !_stopping) {
        ++_probe.accept_errors;
        if (is_resource_error(res)) _paused_on_error = true;
        _handler.on_accept_error(res);
    }
    if (!_accept_armed && !_stopping && !_paused_on_error) arm();
}

void tcp_listener::close_if_idle() noexcept {
    if (!_stopping || _accept_armed || _cancel_in_flight || _fd < 0) return;
    ::close(_fd);
    _fd = -1;
}

}  // namespace nagare::broker::io
