// nagare-gateway: browsers over WebSocket and SSE (docs/gateway.md).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "tools/gateway/server.h"

namespace {

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto comma = text.find(',', start);
        auto part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!part.empty()) out.push_back(std::move(part));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace nagare::gateway;
    gateway_config c;
    CLI::App app{"nagare-gateway: nagare events to browsers over WebSocket and SSE"};
    std::string listen = "127.0.0.1:8080";
    std::string coalesce;
    std::string private_list = "audit.>";
    std::string log_level = "info";
    std::uint64_t ack_wait_ms = 10'000, heartbeat_ms = 15'000, retry_ms = 1000, batch_ms = 0;
    app.add_option("--broker", c.broker_url, "broker url")->capture_default_str();
    app.add_option("--broker-token", c.broker_token, "token for the broker");
    app.add_option("--stream", c.stream, "the stream served")->capture_default_str();
    app.add_option("--listen", listen, "HOST:PORT for HTTP, WebSocket and SSE (port 0: any)")->capture_default_str();
    app.add_option("--threads", c.threads, "event loops (0: one per core)")->capture_default_str();
    app.add_option("--ack-wait-ms", ack_wait_ms, "WebSocket: resend an unacked event after this")->capture_default_str();
    app.add_option("--max-resends", c.max_resends, "resends per event")->capture_default_str();
    app.add_option("--send-queue-bytes", c.send_queue_bytes, "per connection; more queued: closed as slow")->capture_default_str();
    app.add_option("--heartbeat-ms", heartbeat_ms, "SSE comment / WebSocket ping interval")->capture_default_str()->check(CLI::Range(100, 600'000));
    app.add_option("--retry-ms", retry_ms, "SSE retry:")->capture_default_str();
    app.add_option("--batch-ms", batch_ms, "batching window (0: off)")->capture_default_str()->check(CLI::Range(0, 10'000));
    app.add_option("--coalesce", coalesce, "snapshot subjects kept latest-only within a batch window (comma-separated)");
    app.add_option("--private", private_list, "subject patterns only the admin role receives (comma-separated)")->capture_default_str();
    app.add_option("--connect-rate", c.connect_rate, "new connections per second (burst 2x)")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--max-connections", c.max_connections, "open streams at most")->capture_default_str();
    app.add_option("--jwt-hs256-secret-file", c.hs256_secret_file, "HS256 key file");
    app.add_option("--jwt-rs256-public-key-file", c.rs256_public_key_file, "RS256 public key (PEM)");
    app.add_flag("--no-auth", c.no_auth, "no token needed; every connection is admin (development only)");
    app.add_option("--web-root", c.web_root, "serve the dashboard from this directory instead of the built-in copy");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
    CLI11_PARSE(app, argc, argv);

    const auto colon = listen.rfind(':');
    unsigned long port = 0;
    try {
        if (colon == std::string::npos) throw std::invalid_argument("no port");
        port = std::stoul(listen.substr(colon + 1));
        if (port > 65535) throw std::out_of_range("port");
    } catch (const std::exception&) {
        std::fprintf(stderr, "nagare-gateway: --listen must be HOST:PORT, got '%s'\n", listen.c_str());
        return 2;
    }
    c.listen_host = listen.substr(0, colon);
    c.listen_port = static_cast<std::uint16_t>(port);
    c.ack_wait = std::chrono::milliseconds(ack_wait_ms);
    c.heartbeat = std::chrono::milliseconds(heartbeat_ms);
    c.retry = std::chrono::milliseconds(retry_ms);
    c.batch = std::chrono::milliseconds(batch_ms);
    c.coalesce_subjects = split_list(coalesce);
    c.private_patterns = split_list(private_list);

    spdlog::set_level(spdlog::level::from_str(log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    if (c.no_auth) spdlog::warn("event=no_auth every connection is admin: development only");

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    gateway_server server(c);
    if (auto started = server.start(); !started) {
        std::fprintf(stderr, "nagare-gateway: %s\n", started.error().c_str());
        return 1;
    }
    std::printf("nagare-gateway: listening on http://%s:%u (broker %s, stream %s)\n", c.listen_host.c_str(),
                server.port(), c.broker_url.c_str(), c.stream.c_str());
    std::fflush(stdout);
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("event=stopping signal={}", received == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
    spdlog::info("event=stopped");
    return 0;
}
