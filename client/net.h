// Sockets for the client's I/O thread: an owning fd, name resolution, and a
// non-blocking TCP connect. Everything here is callable from any thread; a
// socket belongs to whoever holds its unique_fd.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <utility>

#include <sys/socket.h>

namespace nagare::client {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : _fd(fd) {}
    unique_fd(unique_fd&& other) noexcept : _fd(std::exchange(other._fd, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other._fd, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    [[nodiscard]] int get() const noexcept { return _fd; }
    [[nodiscard]] bool valid() const noexcept { return _fd >= 0; }
    void reset(int fd = -1) noexcept;

private:
    int _fd = -1;
};

struct socket_address {
    sockaddr_storage storage{};
    socklen_t length = 0;
};

// The first address of host (numeric, or resolved with getaddrinfo) with port.
[[nodiscard]] std::expected<socket_address, std::string> resolve(const std::string& host,
                                                                 std::uint16_t port);

// The same address with another port.
[[nodiscard]] socket_address with_port(const socket_address& address, std::uint16_t port) noexcept;

// A non-blocking TCP socket (TCP_NODELAY, close-on-exec) whose connect has
// been started; completion is signalled by POLLOUT and read with
// connect_error(). The errno on failure.
[[nodiscard]] std::expected<unique_fd, int> start_connect(const socket_address& address) noexcept;

// SO_ERROR of a socket whose connect has completed: 0 when connected.
[[nodiscard]] int connect_error(int fd) noexcept;

// "Connection refused" for ECONNREFUSED.
[[nodiscard]] std::string errno_text(int err);

}  // namespace nagare::client
