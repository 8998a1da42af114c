// The gateway's counters for /stats and /metrics. Counters are relaxed
// atomics (any loop); the per-subject counts and the latency histogram sit
// behind one mutex each, taken once per event and loop (not per connection).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/histogram.h"

namespace nagare::gateway {

struct gateway_stats {
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    std::atomic<std::int64_t> websocket_connections{0};
    std::atomic<std::int64_t> sse_connections{0};
    std::atomic<std::uint64_t> connects{0};
    std::atomic<std::uint64_t> reconnects{0};  // came with a resume id
    std::atomic<std::uint64_t> resume_hits{0};
    std::atomic<std::uint64_t> resume_resets{0};
    std::atomic<std::uint64_t> acks{0};
    std::atomic<std::uint64_t> resends{0};
    std::atomic<std::uint64_t> resends_given_up{0};
    std::atomic<std::uint64_t> slow_closes{0};
    std::atomic<std::uint64_t> rejected_rate{0};
    std::atomic<std::uint64_t> rejected_auth{0};
    std::atomic<std::uint64_t> rejected_forbidden{0};
    std::atomic<std::uint64_t> bad_requests{0};
    std::atomic<std::uint64_t> catchups{0};
    std::atomic<std::uint64_t> events_delivered{0};
    std::atomic<std::int64_t> hubs{0};
    std::atomic<bool> broker_connected{false};

    // `count` connections got an event of `subject`; a live one (not a
    // replay) `latency_ns` after its broker timestamp.
    void delivered(std::string_view subject, std::uint64_t count,
                   std::optional<std::uint64_t> latency_ns);

    [[nodiscard]] std::string json() const;
    [[nodiscard]] std::string prometheus() const;

private:
    mutable std::mutex _mu;
    std::map<std::string, std::uint64_t, std::less<>> _by_subject;
    protocol::latency_histogram _latency_ns;
};

}  // namespace nagare::gateway
