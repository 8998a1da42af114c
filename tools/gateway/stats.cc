#include "tools/gateway/stats.h"

#include <fmt/format.h>

#include "tools/gateway/event.h"

namespace nagare::gateway {

void gateway_stats::delivered(std::string_view subject, std::uint64_t count,
                              std::optional<std::uint64_t> latency_ns) {
    if (count == 0) return;
    events_delivered.fetch_add(count, std::memory_order_relaxed);
    std::lock_guard lock(_mu);
    auto it = _by_subject.find(subject);
    if (it == _by_subject.end()) {
        // Bounded: subjects are application event names; past 10,000 they
        // are counted under one key.
        if (_by_subject.size() >= 10'000) subject = "(other)";
        it = _by_subject.try_emplace(std::string(subject), 0).first;
    }
    it->second += count;
    if (latency_ns) _latency_ns.record_n(*latency_ns, count);
}

namespace {

double uptime_seconds(std::chrono::steady_clock::time_point started) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

std::uint64_t load(const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); }
std::int64_t load(const std::atomic<std::int64_t>& a) { return a.load(std::memory_order_relaxed); }

}  // namespace

std::string gateway_stats::json() const {
    const double uptime = uptime_seconds(started);
    std::string out;
    out.reserve(1024);
    out += fmt::format(
        "{{\"uptime_s\":{:.1f},\"broker\":\"{}\",\"connections\":{{\"websocket\":{},\"sse\":{}}},",
        uptime, broker_connected.load() ? "connected" : "disconnected", load(websocket_connections),
        load(sse_connections));
    out += fmt::format("\"events_delivered\":{{\"total\":{},\"by_subject\":{{", load(events_delivered));
    {
        std::lock_guard lock(_mu);
        bool first = true;
        for (const auto& [subject, n] : _by_subject) {
            if (!first) out.push_back(',');
            first = false;
            append_json_string(out, subject);
            out += fmt::format(":{}", n);
        }
        out += fmt::format("}}}},\"latency_ms\":{{\"avg\":{:.3f},\"p99\":{:.3f},\"max\":{:.3f}}},",
                           _latency_ns.mean() / 1e6,
                           static_cast<double>(_latency_ns.percentile(99.0)) / 1e6,
                           static_cast<double>(_latency_ns.max()) / 1e6);
    }
    const double minutes = uptime / 60.0;
    out += fmt::format(
        "\"acks\":{},\"resends\":{},\"resends_given_up\":{},\"connects\":{},\"reconnects\":{},"
        "\"reconnects_per_min\":{:.2f},\"resume\":{{\"hits\":{},\"resets\":{},\"catchups\":{}}},"
        "\"slow_closes\":{},\"rejected\":{{\"rate\":{},\"auth\":{},\"forbidden\":{},\"bad_request\":{}}},"
        "\"hubs\":{}}}",
        load(acks), load(resends), load(resends_given_up), load(connects), load(reconnects),
        minutes > 0 ? static_cast<double>(load(reconnects)) / minutes : 0.0, load(resume_hits),
        load(resume_resets), load(catchups), load(slow_closes), load(rejected_rate),
        load(rejected_auth), load(rejected_forbidden), load(bad_requests), load(hubs));
    return out;
}

std::string gateway_stats::prometheus() const {
    std::string out;
    out.reserve(2048);
    const auto counter = [&](std::string_view name, std::string_view help, std::uint64_t v) {
        out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, v);
    };
    const auto gauge = [&](std::string_view name, std::string_view help, double v) {
        out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, v);
    };
    gauge("nagare_gateway_uptime_seconds", "Seconds since start.", uptime_seconds(started));
    gauge("nagare_gateway_broker_connected", "1 when the broker answers.",
          broker_connected.load() ? 1.0 : 0.0);
    out += "# HELP nagare_gateway_connections Open browser streams by transport.\n"
           "# TYPE nagare_gateway_connections gauge\n";
    out += fmt::format("nagare_gateway_connections{{transport=\"websocket\"}} {}\n",
                       load(websocket_connections));
    out += fmt::format("nagare_gateway_connections{{transport=\"sse\"}} {}\n", load(sse_connections));
    gauge("nagare_gateway_hubs", "Broker subscriptions shared by browser streams.",
          static_cast<double>(load(hubs)));
    counter("nagare_gateway_connects_total", "Browser streams opened.", load(connects));
    counter("nagare_gateway_reconnects_total", "Streams opened with a resume id.", load(reconnects));
    counter("nagare_gateway_resume_hits_total", "Resumes served without a gap.", load(resume_hits));
    counter("nagare_gateway_resume_resets_total", "Resumes answered with reset.", load(resume_resets));
    counter("nagare_gateway_acks_total", "Browser acks.", load(acks));
    counter("nagare_gateway_resends_total", "Events sent again after ack_wait.", load(resends));
    counter("nagare_gateway_resends_given_up_total", "Events dropped after max_resends.",
            load(resends_given_up));
    counter("nagare_gateway_slow_closes_total", "Streams closed for a full send queue.",
            load(slow_closes));
    counter("nagare_gateway_rejected_total", "Refused streams (rate, auth, forbidden).",
            load(rejected_rate) + load(rejected_auth) + load(rejected_forbidden));
    counter("nagare_gateway_events_delivered_total", "Events handed to browser sockets.",
            load(events_delivered));
    std::lock_guard lock(_mu);
    out += "# HELP nagare_gateway_delivery_latency_seconds Broker timestamp to socket.\n"
           "# TYPE nagare_gateway_delivery_latency_seconds summary\n";
    for (const double q : {0.5, 0.9, 0.99}) {
        out += fmt::format("nagare_gateway_delivery_latency_seconds{{quantile=\"{}\"}} {:.6f}\n", q,
                           static_cast<double>(_latency_ns.percentile(q * 100.0)) / 1e9);
    }
    out += fmt::format("nagare_gateway_delivery_latency_seconds_count {}\n", _latency_ns.count());
    return out;
}

}  // namespace nagare::gateway
