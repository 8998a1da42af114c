#include "broker/admin_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "broker/node.h"
#include "broker/shard.h"

namespace nagare::broker {

namespace {
const auto started = std::chrono::steady_clock::now();
}

std::expected<std::unique_ptr<admin_server>, std::string> admin_server::start(
    node& n, const std::string& host, std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::unexpected(std::string("admin socket: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1 ||
        ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd, 64) != 0) {
        const std::string why = std::strerror(errno);
        ::close(fd);
        return std::unexpected("cannot listen on admin port " + host + ":" + std::to_string(port) +
                               ": " + why);
    }
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return std::unique_ptr<admin_server>(new admin_server(n, fd, ntohs(address.sin_port)));
}

admin_server::admin_server(node& n, int fd, std::uint16_t port)
    : _node(n), _fd(fd), _port(port), _thread([this] { serve(); }) {}

admin_server::~admin_server() {
    _stop.store(true);
    _thread.join();
    ::close(_fd);
}

void admin_server::serve() noexcept {
    while (!_stop.load()) {
        pollfd p{_fd, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        const int client = ::accept4(_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) continue;
        timeval timeout{1, 0};
        ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        answer(client);
        ::close(client);
    }
}

void admin_server::answer(int client) noexcept {
    char request[2048];
    const auto n = ::recv(client, request, sizeof request - 1, 0);
    if (n <= 0) return;
    const std::string_view line(request, static_cast<std::size_t>(n));
    std::string status = "200 OK";
    std::string type = "text/plain; version=0.0.4";
    std::string body;
    if (line.starts_with("GET /metrics")) {
        body = render_metrics(_node);
    } else if (line.starts_with("GET /healthz")) {
        body = "ok\n";
    } else if (line.starts_with("GET /varz")) {
        type = "application/json";
        const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::steady_clock::now() - started)
                                .count();
        std::ostringstream out;
        out << "{\"server_id\":\"" << _node.server_id() << "\",\"shards\":" << _node.shard_count()
            << ",\"port\":" << _node.config().port << ",\"uptime_s\":" << uptime << "}\n";
        body = out.str();
    } else {
        status = "404 Not Found";
        body = "not found\n";
    }
    const std::string head = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                             "\r\nContent-Length: " + std::to_string(body.size()) +
                             "\r\nConnection: close\r\n\r\n";
    const std::string reply = head + body;
    std::size_t sent = 0;
    while (sent < reply.size()) {
        const auto w = ::send(client, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (w <= 0) return;
        sent += static_cast<std::size_t>(w);
    }
}

std::string admin_server::render_metrics(const node& n) {
    std::ostringstream out;
    auto family = [&](const char* name, const char* type, const char* help, auto&& value) {
        out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
        for (const auto& s : n.shards()) {
            out << name << "{shard=\"" << s->id().value << "\"} " << value(s->probe()) << '\n';
        }
    };
    family("nagare_connections_accepted_total", "counter", "Connections accepted.",
           [](const shard_probe& p) { return p.connections_accepted.get(); });
    family("nagare_connections", "gauge", "Connections open.",
           [](const shard_probe& p) { return p.connections_open.get(); });
    family("nagare_publishes_total", "counter", "Messages stored.",
           [](const shard_probe& p) { return p.publishes.get(); });
    family("nagare_publish_bytes_total", "counter", "Payload bytes received in publishes.",
           [](const shard_probe& p) { return p.publish_bytes.get(); });
    family("nagare_publish_errors_total", "counter", "Messages answered with an error.",
           [](const shard_probe& p) { return p.publish_errors.get(); });
    family("nagare_dedup_hits_total", "counter", "Publishes answered as duplicates.",
           [](const shard_probe& p) { return p.duplicates.get(); });
    family("nagare_forwards_sent_total", "counter",
           "Messages sent to the shard that owns their partition (cross-shard forwards).",
           [](const shard_probe& p) { return p.forwards_sent.get(); });
    family("nagare_forwards_received_total", "counter", "Messages received from other shards.",
           [](const shard_probe& p) { return p.forwards_received.get(); });
    family("nagare_loop_turns_total", "counter", "Event loop turns.",
           [](const shard_probe& p) { return p.loop_turns.get(); });
    family("nagare_loop_busy_seconds_total", "counter", "Time spent outside io_uring_enter.",
           [](const shard_probe& p) { return static_cast<double>(p.busy_ns.get()) / 1e9; });
    family("nagare_stalls_total", "counter", "Times a connection stopped reading (backpressure).",
           [](const shard_probe& p) { return p.stalls.get(); });
    family("nagare_deliver_frames_total", "counter", "Deliver frames built for subscribers.",
           [](const shard_probe& p) { return p.delivered_frames.get(); });
    family("nagare_acks_total", "counter", "Ack positions applied (ack, nak, in_progress, term).",
           [](const shard_probe& p) { return p.acks.get(); });
    family("nagare_dead_letters_total", "counter",
           "Messages copied to a dead-letter stream after max_deliver (advisory).",
           [](const shard_probe& p) { return p.dead_letters.get(); });
    family("nagare_consumer_state_save_errors_total", "counter", "Consumer state saves that failed.",
           [](const shard_probe& p) { return p.consumer_save_errors.get(); });
    auto histogram = [&](const char* name, const char* help, auto&& buckets) {
        out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
        for (const auto& s : n.shards()) {
            const latency_buckets& h = buckets(s->probe());
            std::uint64_t cumulative = 0;
            for (std::size_t i = 0; i < latency_buckets::count; ++i) {
                cumulative += h.bucket(i);
                const double le = static_cast<double>(std::uint64_t{1} << i) / 1e6;
                out << name << "_bucket{shard=\"" << s->id().value << "\",le=\""
                    << (i + 1 == latency_buckets::count ? std::string("+Inf") : std::to_string(le))
                    << "\"} " << cumulative << '\n';
            }
            out << name << "_sum{shard=\"" << s->id().value << "\"} "
                << static_cast<double>(h.sum_ns()) / 1e9 << '\n';
            out << name << "_count{shard=\"" << s->id().value << "\"} " << cumulative << '\n';
        }
    };
    histogram("nagare_fsync_latency_seconds", "Write start to durable, per partition write.",
              [](const shard_probe& p) -> const latency_buckets& { return p.fsync_latency; });
    histogram("nagare_loop_turn_busy_seconds",
              "Time one event loop turn spent outside io_uring_enter (a blocking call shows here).",
              [](const shard_probe& p) -> const latency_buckets& { return p.loop_turn_busy; });
    return out.str();
}

}  // namespace nagare::broker
