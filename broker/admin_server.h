// GET /metrics (Prometheus text), /healthz and /varz (JSON) on the admin
// port, served by one plain thread with blocking sockets: operators poll it
// a few times a minute, so it stays off the shards' loops. It reads the
// shards' probes (relaxed atomics) and nothing else.
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <thread>

namespace nagare::broker {

class node;

class admin_server {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<admin_server>, std::string> start(
        node& n, const std::string& host, std::uint16_t port);
    ~admin_server();

    [[nodiscard]] std::uint16_t port() const noexcept { return _port; }
    // The body of GET /metrics.
    [[nodiscard]] static std::string render_metrics(const node& n);

private:
    admin_server(node& n, int fd, std::uint16_t port);
    void serve() noexcept;
    void answer(int client) noexcept;

    node& _node;
    int _fd;
    std::uint16_t _port;
    std::atomic<bool> _stop{false};
    std::thread _thread;
};

}  // namespace nagare::broker
