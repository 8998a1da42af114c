// fake_sse_server: a tiny stand-in for nagare-gateway's SSE endpoint on a
// loopback port: it answers every request with a response head (chunked or
// not, status as configured) and a welcome event, then writes what
// broadcast() is given to every client, as `data:` events, with the line
// ends and chunk splits chosen to exercise a client's parser.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nagare::bench::fakes {

struct fake_sse_options {
    int status = 200;
    bool chunked = true;
    bool welcome = true;
};

class fake_sse_server {
public:
    using options = fake_sse_options;

    explicit fake_sse_server(options o = {}) : _options(o) {
        _listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::bind(_listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        EXPECT_EQ(::listen(_listen_fd, 128), 0);
        socklen_t len = sizeof a;
        ::getsockname(_listen_fd, reinterpret_cast<sockaddr*>(&a), &len);
        _port = ntohs(a.sin_port);
        _acceptor = std::thread([this] { accept_loop(); });
    }
    ~fake_sse_server() {
        _stopping = true;
        _acceptor.join();
        ::close(_listen_fd);
        const std::lock_guard lock(_mutex);
        for (const int fd : _clients) ::close(fd);
    }
    fake_sse_server(const fake_sse_server&) = delete;
    fake_sse_server& operator=(const fake_sse_server&) = delete;

    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(_port); }

    // Every client gets `data: <data>` (CRLF line ends every other call) and a heartbeat.
    void broadcast(std::string_view data) {
        const bool crlf = (_sent++ % 2) == 0;
        const std::string eol = crlf ? "\r\n" : "\n";
        send_all_clients(": hb" + eol + "data: " + std::string(data) + eol + eol);
    }

    // Ends every stream (the last chunk, or a close).
    void end_streams() {
        const std::lock_guard lock(_mutex);
        for (const int fd : _clients) {
            if (_options.chunked) send_raw(fd, "0\r\n\r\n");
            ::shutdown(fd, SHUT_WR);
        }
    }

    [[nodiscard]] std::vector<std::string> requests() const {
        const std::lock_guard lock(_mutex);
        return _requests;
    }
    [[nodiscard]] std::size_t clients() const {
        const std::lock_guard lock(_mutex);
        return _clients.size();
    }

private:
    static void send_raw(int fd, std::string_view bytes) {
        while (!bytes.empty()) {
            const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
    }

    // Chunked: the body split into two chunks at an odd place.
    void send_body(int fd, std::string_view body) const {
        if (!_options.chunked) return send_raw(fd, body);
        const auto half = body.size() / 2 + 1;
        for (auto part : {body.substr(0, half), body.substr(std::min(half, body.size()))}) {
            if (part.empty()) continue;
            char size[20];
            std::snprintf(size, sizeof size, "%zx\r\n", part.size());
            send_raw(fd, size);
            send_raw(fd, part);
            send_raw(fd, "\r\n");
        }
    }

    void send_all_clients(const std::string& body) {
        const std::lock_guard lock(_mutex);
        for (const int fd : _clients) send_body(fd, body);
    }

    void accept_loop() {
        while (!_stopping) {
            pollfd p{_listen_fd, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const int fd = ::accept4(_listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            std::string request;
            char chunk[1024];
            while (request.find("\r\n\r\n") == std::string::npos) {
                const auto n = ::recv(fd, chunk, sizeof chunk, 0);
                if (n <= 0) break;
                request.append(chunk, static_cast<std::size_t>(n));
            }
            std::string head = "HTTP/1.1 " + std::to_string(_options.status) +
                               (_options.status == 200 ? " OK" : " Unauthorized") + "\r\n";
            if (_options.status == 200) {
                head += "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
                head += _options.chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "\r\n";
            } else {
                head +=
                    "Content-Type: application/json\r\nContent-Length: 28\r\n\r\n"
                    "{\"error\":\"NOT_AUTHORIZED\"}\r\n";
            }
            const std::lock_guard lock(_mutex);
            _requests.push_back(request);
            send_raw(fd, head);
            if (_options.status == 200 && _options.welcome) {
                send_body(fd,
                          "retry: 1000\n\ndata: {\"type\":\"welcome\",\"recovered\":false}\n\n");
            }
            _clients.push_back(fd);
        }
    }

    options _options;
    int _listen_fd = -1;
    std::uint16_t _port = 0;
    std::atomic<bool> _stopping{false};
    std::atomic<std::uint64_t> _sent{0};
    std::thread _acceptor;
    mutable std::mutex _mutex;
    std::vector<int> _clients;
    std::vector<std::string> _requests;
};

}  // namespace nagare::bench::fakes
