// The gateway's HTTP side: one event loop per thread, each with its own
// SO_REUSEPORT acceptor; HTTP requests (/status, /stats, /metrics, the
// dashboard) and the upgrade to a browser stream (/realtime, /events) after
// the checks of docs/gateway.md (names, token, access, rate).
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tools/gateway/auth.h"
#include "tools/gateway/config.h"
#include "tools/gateway/hub.h"
#include "tools/gateway/stats.h"
#include "tools/gateway/stream_session.h"

namespace nagare::gateway {

class gateway_server {
public:
    explicit gateway_server(gateway_config config);
    ~gateway_server();
    gateway_server(const gateway_server&) = delete;
    gateway_server& operator=(const gateway_server&) = delete;

    // Loads keys, binds, starts the loops and the broker link.
    [[nodiscard]] std::expected<void, std::string> start();
    [[nodiscard]] std::uint16_t port() const noexcept { return _port; }
    // Closes every stream (WebSocket 1001), stops the loops and the link.
    void stop();

    [[nodiscard]] const gateway_stats& stats() const noexcept { return _stats; }

private:
    struct loop_state;
    class http_session;

    void accept_next(loop_state& loop);
    void tick(loop_state& loop);

    gateway_config _config;
    gateway_stats _stats;
    std::unique_ptr<token_verifier> _verifier;
    private_subjects _private;
    std::unique_ptr<broker_link> _link;
    std::vector<std::unique_ptr<loop_state>> _loops;
    std::vector<std::thread> _threads;
    std::uint16_t _port = 0;
    bool _stopped = false;
};

}  // namespace nagare::gateway
