// nagare-gateway settings (docs/gateway.md, "Running"): flags, defaults.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace nagare::gateway {

struct gateway_config {
    std::string broker_url = "nagare://127.0.0.1:4150";
    std::string broker_token;
    std::string stream = "events";
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 8080;
    unsigned threads = 0;  // 0: one per core
    std::chrono::milliseconds ack_wait{10'000};
    std::uint32_t max_resends = 5;
    std::size_t send_queue_bytes = 1 << 20;
    std::size_t inflight_max = 4096;  // WebSocket unacked events per connection; more: slow
    std::chrono::milliseconds heartbeat{15'000};
    std::chrono::milliseconds retry{1000};
    std::chrono::milliseconds batch{0};
    std::vector<std::string> coalesce_subjects;
    std::vector<std::string> private_patterns{"audit.>"};
    double connect_rate = 2000;  // new streams per second (burst: 2x)
    std::size_t max_connections = 100'000;
    std::filesystem::path hs256_secret_file;
    std::filesystem::path rs256_public_key_file;
    bool no_auth = false;
    std::filesystem::path web_root;  // empty: the built-in copy
    std::size_t ring_events = 4096;  // per hub: recent events kept for resumes
    std::size_t ring_bytes = 4 << 20;
    std::chrono::milliseconds hub_linger{30'000};  // an unused hub is kept this long
    std::chrono::milliseconds request_timeout{10'000};  // HTTP request head (slowloris)
    std::size_t ws_message_max = 64 * 1024;
};

// How often the loops look for silent SSE streams; a stream gets a heartbeat
// once silent for heartbeat - tick, so between that and `heartbeat`.
[[nodiscard]] inline std::chrono::milliseconds heartbeat_tick(std::chrono::milliseconds heartbeat) {
    return std::max(heartbeat / 4, std::chrono::milliseconds(25));
}

}  // namespace nagare::gateway
