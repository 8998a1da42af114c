#include "client/net.h"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

namespace nagare::client {

void unique_fd::reset(int fd) noexcept {
    if (_fd >= 0) ::close(_fd);
    _fd = fd;
}

std::expected<socket_address, std::string> resolve(const std::string& host, std::uint16_t port) {
    socket_address out;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
    if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        out.length = sizeof(sockaddr_in);
        return out;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        out.length = sizeof(sockaddr_in6);
        return out;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found); rc != 0) {
        return std::unexpected("cannot resolve " + host + ": " + ::gai_strerror(rc));
    }
    std::memcpy(&out.storage, found->ai_addr, found->ai_addrlen);
    out.length = found->ai_addrlen;
    ::freeaddrinfo(found);
    return with_port(out, port);
}

socket_address with_port(const socket_address& address, std::uint16_t port) noexcept {
    socket_address out = address;
    if (out.storage.ss_family == AF_INET6) {
        reinterpret_cast<sockaddr_in6*>(&out.storage)->sin6_port = htons(port);
    } else {
        reinterpret_cast<sockaddr_in*>(&out.storage)->sin_port = htons(port);
    }
    return out;
}

std::expected<unique_fd, int> start_connect(const socket_address& address) noexcept {
    unique_fd fd(::socket(address.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          IPPROTO_TCP));
    if (!fd.valid()) return std::unexpected(errno);
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address.storage), address.length) !=
            0 &&
        errno != EINPROGRESS) {
        return std::unexpected(errno);
    }
    return fd;
}

int connect_error(int fd) noexcept {
    int err = 0;
    socklen_t length = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) return errno;
    return err;
}

std::string errno_text(int err) {
    char buffer[128];
    // GNU strerror_r returns the text (maybe not in buffer).
    return ::strerror_r(err, buffer, sizeof buffer);
}

}  // namespace nagare::client
