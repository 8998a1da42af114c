// A listening TCP socket on a shard's ring with a multishot accept.
//
// Several shards may listen on the same host:port (SO_REUSEPORT: the kernel
// spreads new connections over them); SO_REUSEADDR lets a restart bind
// while old connections linger in TIME_WAIT. Every accepted socket gets
// TCP_NODELAY and SOCK_CLOEXEC and is handed to accept_handler::on_accept,
// which then owns the fd.
//
// States: listening (accept armed, or waiting for resume_accepting after a
// resource error) -> stopping (accept cancelled; the socket closes once its
// last CQE is back) -> stopped.
// Invariant: at most one accept SQE and one cancel SQE in flight; the fd is
// closed only when none is.
// Owned by one shard: every call on the ring's thread. Destroy it only when
// stopped() (or never started).
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>

#include "broker/io/limits.h"
#include "broker/io/ring.h"

namespace nagare::broker::io {

class accept_handler {
public:
    // A new connection; the callee owns `fd` (and must close it).
    virtual void on_accept(int fd) noexcept = 0;
    // An accept failed (-errno). After EMFILE/ENFILE/ENOMEM/ENOBUFS the
    // listener waits for resume_accepting() (re-arming at once would spin);
    // after any other error it re-arms by itself.
    virtual void on_accept_error(int error) noexcept = 0;

protected:
    ~accept_handler() = default;
};

struct tcp_listener_probe {
    std::uint64_t accepted = 0;
    std::uint64_t accept_errors = 0;
    std::uint64_t accept_sqes = 0;  // arms: 1 + re-arms (multishot ended without F_MORE)
};

class alignas(8) tcp_listener final : private completion_handler {
public:
    // Binds and listens on host:port (IPv4 dotted quad; port 0: any free
    // port, see port()). Does not accept until start(). errno on failure.
    [[nodiscard]] static std::expected<std::unique_ptr<tcp_listener>, int> create(
        ring& r, const std::string& host, std::uint16_t port, accept_handler& handler,
        int backlog = listen_backlog_default);
    ~tcp_listener();
    tcp_listener(const tcp_listener&) = delete;
    tcp_listener& operator=(const tcp_listener&) = delete;

    // Arms the multishot accept.
    // REQUIRES: not started before.
    void start() noexcept;

    // Re-arms after on_accept_error paused accepting (no-op otherwise).
    void resume_accepting() noexcept;

    // Cancels the accept and closes the socket once the accept's last CQE is
    // back; stopped() then turns true. Idempotent.
    void stop() noexcept;

    [[nodiscard]] std::uint16_t port() const noexcept { return _port; }
    [[nodiscard]] bool accepting() const noexcept { return _accept_armed && !_stopping; }
    [[nodiscard]] bool stopped() const noexcept { return _fd < 0; }
    [[nodiscard]] const tcp_listener_probe& probe() const noexcept { return _probe; }

private:
    static constexpr unsigned tag_accept = 0;
    static constexpr unsigned tag_cancel = 1;

    tcp_listener(ring& r, int fd, std::uint16_t port, accept_handler& handler) noexcept;
    void on_cqe(unsigned tag, int res, unsigned flags) noexcept override;
    void on_accept_cqe(int res, unsigned flags) noexcept;
    void arm() noexcept;
    void close_if_idle() noexcept;

    ring& _ring;
    int _fd;
    std::uint16_t _port;
    accept_handler& _handler;
    bool _started = false;
    bool _accept_armed = false;
    bool _cancel_in_flight = false;
    bool _paused_on_error = false;
    bool _stopping = false;
    tcp_listener_probe _probe;
};

}  // namespace nagare::broker::io
