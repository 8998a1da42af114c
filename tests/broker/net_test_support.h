// Helpers for the broker/io socket tests: a ring per test, a bounded event
// loop, and blocking loopback sockets for the peer side.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/io/ring.h"

namespace nagare::broker::io::test {

inline std::unique_ptr<ring> make_ring(unsigned entries = 256) {
    auto r = ring::create(entries);
    EXPECT_TRUE(r.has_value()) << "io_uring_queue_init: errno " << (r ? 0 : r.error());
    return r ? std::move(*r) : nullptr;
}

// One loop turn: submit, wait up to 10 ms for a completion, dispatch.
inline void turn(ring& r) {
    ASSERT_EQ(r.submit_and_wait_for(1, 10'000'000), 0);
    r.dispatch();
}

// Loop turns until `done()` or `timeout`; returns done().
inline bool run_until(ring& r, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        turn(r);
    }
    return true;
}

// Loop turns for `duration` regardless.
inline void run_for(ring& r, std::chrono::milliseconds duration) {
    const auto deadline = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < deadline) turn(r);
}

inline sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

// A blocking client socket connected to 127.0.0.1:port, or -errno.
inline int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    const sockaddr_in address = loopback(port);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
        const int error = errno;
        ::close(fd);
        return -error;
    }
    return fd;
}

inline void set_buffer_bytes(int fd, int option, int bytes) {
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof(bytes)), 0)
        << std::strerror(errno);
}

// A connected loopback pair made with plain syscalls: {client, server}.
// rcvbuf_bytes > 0 shrinks the server side's receive buffer (set on the
// listening socket so the window is small from the handshake on).
struct socket_pair {
    int client = -1;
    int server = -1;
    ~socket_pair() {
        if (client >= 0) ::close(client);
        if (server >= 0) ::close(server);
    }
    int release_server() { return std::exchange(server, -1); }
};

inline void make_pair(socket_pair& pair, int server_rcvbuf_bytes = 0) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    if (server_rcvbuf_bytes > 0) set_buffer_bytes(listener, SO_RCVBUF, server_rcvbuf_bytes);
    sockaddr_in address = loopback(0);
    ASSERT_EQ(::bind(listener, reinterpret_cast<const sockaddr*>(&address), sizeof(address)), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    socklen_t length = sizeof(address);
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
    pair.client = connect_to(ntohs(address.sin_port));
    ASSERT_GE(pair.client, 0) << std::strerror(-pair.client);
    pair.server = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(pair.server, 0) << std::strerror(errno);
    ::close(listener);
}

// Writes all of [data, data + bytes) to a blocking socket; false on error.
inline bool write_all(int fd, const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    while (bytes > 0) {
        const ssize_t n = ::send(fd, p, bytes, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

// Reads exactly `bytes` from a blocking socket with a receive timeout; false
// on error, EOF or timeout.
inline bool read_all(int fd, void* data, std::size_t bytes) {
    auto* p = static_cast<unsigned char*>(data);
    while (bytes > 0) {
        const ssize_t n = ::recv(fd, p, bytes, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        p += n;
        bytes -= static_cast<std::size_t>(n);
    }
    return true;
}

inline void set_receive_timeout(int fd, std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ASSERT_EQ(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
}

// The byte at stream position i of the tests' deterministic pattern.
inline std::byte pattern_byte(std::uint64_t i) {
    return static_cast<std::byte>((i * 2654435761u) >> 13);
}

}  // namespace nagare::broker::io::test
