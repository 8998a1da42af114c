#include "bench/fanout_scenario.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "bench/limits.h"
#include "bench/open_loop.h"
#include "bench/receiver.h"
#include "bench/sse_client.h"

namespace nagare::bench {

namespace {

// The receivers of one connection (or SSE thread): their deliveries are
// serial, so they share one histogram.
struct alignas(64) fanout_group {
    protocol::latency_histogram latency;  // the delivering thread only; read once closed
    std::atomic<std::int64_t> measure_from_ns{INT64_MAX};
};

// One subscriber: every JSON stamp in a delivery is one message of the run.
class fanout_receiver final : public receiver {
public:
    fanout_receiver(run_clock::time_point epoch, std::uint64_t messages, fanout_group& group)
        : receiver(epoch, messages), _group(group) {}

    void on_delivered(const delivery& m) noexcept override {
        const auto at_ns = now_ns();
        const std::string_view text(reinterpret_cast<const char*>(m.payload.data()),
                                    m.payload.size());
        const auto found = for_each_json_stamp(text, [&](const stamp& s) {
            if (!record(s.index, at_ns)) return;
            if (s.scheduled_ns < _group.measure_from_ns.load(std::memory_order_relaxed)) return;
            _group.latency.record(
                static_cast<std::uint64_t>(std::max<std::int64_t>(at_ns - s.scheduled_ns, 0)));
            ++_measured;
        });
        if (found == 0) record(std::nullopt, at_ns);
    }

    // First deliveries of measured messages; read once closed.
    [[nodiscard]] std::uint64_t measured() const noexcept { return _measured; }

private:
    fanout_group& _group;
    std::uint64_t _measured = 0;
};

std::uint64_t scheduled_messages(const fanout_scenario_options& o) noexcept {
    return o.rate * (o.load.duration_ms + static_cast<std::uint64_t>(warmup_duration.count())) /
           1000;
}

// The subscribers' side of a run: subscriptions over subscriber connections,
// or SSE clients of a gateway. Destroyed in the safe order: the SSE clients
// (they call the receivers), the receivers (their subscriptions), the
// connections, the groups (the receivers record into them).
struct fanout_receiving {
    std::vector<std::unique_ptr<fanout_group>> groups;
    std::vector<std::unique_ptr<subscriber_connection>> connections;
    receivers all;
    std::unique_ptr<sse_fanout> sse;

    void close() {
        for (auto& r : all) {
            if (r->sub) r->sub->close();
        }
        for (auto& c : connections) c->close();
        if (sse) sse->stop();
    }
};

std::expected<void, std::string> subscribe_broker(target& into, const fanout_scenario_options& o,
                                                  const subscribe_request& request,
                                                  fanout_receiving& rx) {
    for (std::size_t c = 0; c < o.connections; ++c) {
        auto conn = into.connect_subscriber();
        if (!conn) return std::unexpected(conn.error());
        rx.connections.push_back(std::move(*conn));
    }
    for (std::size_t i = 0; i < rx.all.size(); ++i) {
        auto sub = rx.connections[i % o.connections]->subscribe(request, *rx.all[i]);
        if (!sub) return std::unexpected(sub.error());
        rx.all[i]->sub = std::move(*sub);
    }
    return {};
}

std::expected<void, std::string> subscribe_gateway(const fanout_scenario_options& o,
                                                   const std::string& project,
                                                   const std::string& subject,
                                                   fanout_receiving& rx) {
    std::vector<delivery_sink*> sinks;
    for (auto& r : rx.all) sinks.push_back(r.get());
    sse_fanout_options so;
    so.url = o.gateway_url;
    while (so.url.ends_with('/')) so.url.pop_back();
    so.target = "/events?project=" + project + "&subjects=" + subject + "&named=0";
    so.token = o.gateway_token;
    so.threads = o.connections;
    auto fan = sse_fanout::start(so, sinks);
    if (!fan) return std::unexpected("gateway " + o.gateway_url + ": " + fan.error());
    rx.sse = std::move(*fan);
    return {};
}

void fill_parameters(run_result& r, const fanout_scenario_options& o, const stream_handle& stream,
                     const std::string& project) {
    const auto& l = o.load;
    r.parameters = {
        {"durability", std::string(to_string(l.mode))},
        {"stream", stream.stream},
        {"project", project},
        {"producers", std::uint64_t{l.producers}},
        {"message_bytes", std::uint64_t{l.message_bytes}},
        {"rate", o.rate},
        {"duration_s", static_cast<double>(l.duration_ms) / 1000.0},
        {"subscribers", std::uint64_t{o.subscribers}},
        {"connections", std::uint64_t{o.connections}},
        {"via", o.gateway_url.empty() ? std::string("broker") : "gateway " + o.gateway_url},
        {"consumer", std::string("ephemeral")},
        {"ack", std::string("none")},
        {"inflight", std::uint64_t{l.inflight}},
        {"batch", std::uint64_t{l.batch}},
        {"warmup", std::to_string(warmup_duration.count()) + "ms"}};
}

// Rates, latency and the two figures: delivered ÷ offered, achieved ÷ target publish rate.
void add_figures(run_result& r, const fanout_scenario_options& o, const fanout_receiving& rx,
                 const schedule& plan, std::int64_t measure_from_ns, std::int64_t last_send) {
    protocol::latency_histogram latency;
    for (const auto& g : rx.groups) latency.merge(g->latency);
    std::uint64_t measured = 0;
    for (const auto& rc : rx.all) {
        measured += static_cast<const fanout_receiver&>(*rc).measured();
        r.messages_total += rc->delivered();
    }
    fill_rates(r, measured, o.load.message_bytes, measure_from_ns,
               std::max(last_delivery_ns(rx.all), measure_from_ns));
    r.latency_us = summarize_ns(latency);
    derived_figure delivered;
    delivered.name = "delivered_to_offered";
    delivered.label = "delivered / (rate x subscribers)";
    delivered.value =
        r.msgs_per_s / (static_cast<double>(o.rate) * static_cast<double>(o.subscribers));
    delivered.note = "below 1: the subscribers fell behind the publisher";
    r.figures.push_back(std::move(delivered));
    derived_figure achieved;
    achieved.name = "achieved_to_target_rate";
    achieved.label = "achieved / target publish rate";
    const auto sent_s = seconds_between(measure_from_ns, last_send);
    achieved.value = sent_s > 0 ? static_cast<double>(plan.messages - plan.first_measured) /
                                      sent_s / static_cast<double>(o.rate)
                                : 0;
    achieved.note = "below 1: the publisher fell behind the schedule; the latency counts it";
    r.figures.push_back(std::move(achieved));
}

void add_gateway_counters(run_result& r, const fanout_scenario_options& o,
                          std::optional<double> cpu_at_start, std::optional<double> cpu_at_end) {
    if (cpu_at_start && cpu_at_end) {
        add_counter(r.target_counters, "gateway_cpu_s", *cpu_at_end - *cpu_at_start);
    }
    if (o.gateway_peak_rss_kib) {
        if (const auto kib = o.gateway_peak_rss_kib()) {
            add_counter(r.target_counters, "gateway_peak_rss_mib",
                        static_cast<double>(*kib) / 1024);
        }
    }
}

std::optional<double> gateway_cpu(const fanout_scenario_options& o) {
    return o.gateway_cpu_s ? o.gateway_cpu_s() : std::nullopt;
}

}  // namespace

std::expected<void, std::string> validate(const fanout_scenario_options& o) {
    auto load = o.load;
    load.messages = load.producers;  // not used
    load.projects = 1;
    if (auto ok = validate(load); !ok) return ok;
    if (o.load.duration_ms == 0) return std::unexpected("--duration: must be > 0");
    if (o.load.message_bytes < json_stamp_bytes_min) {
        return std::unexpected("--message-bytes: at least " + std::to_string(json_stamp_bytes_min) +
                               " for fanout");
    }
    if (o.rate < 1 || o.rate > e2e_rate_max)
        return std::unexpected("--rate: 1.." + std::to_string(e2e_rate_max));
    if (o.subscribers < 1 || o.subscribers > fanout_subscribers_max)
        return std::unexpected("--subscribers: 1.." + std::to_string(fanout_subscribers_max));
    if (o.connections < 1 || o.connections > fanout_connections_max)
        return std::unexpected("--connections: 1.." + std::to_string(fanout_connections_max));
    if (o.idle_max.count() < 1 || static_cast<std::uint64_t>(o.idle_max.count()) > duration_ms_max)
        return std::unexpected("--idle-timeout: 1 ms .. 24 h");
    const auto messages = scheduled_messages(o);
    if (messages > received_messages_max || messages * o.subscribers > fanout_tracked_bits_max) {
        return std::unexpected("--rate x --duration x --subscribers: at most " +
                               std::to_string(fanout_tracked_bits_max) + " deliveries");
    }
    if (!o.gateway_url.empty()) {
        if (auto e = parse_http_url(o.gateway_url); !e) return std::unexpected(e.error());
    }
    return {};
}

std::expected<run_result, std::string> run_fanout(target& into, const fanout_scenario_options& o,
                                                  const server_probe* server) {
    if (auto ok = validate(o); !ok) return std::unexpected(ok.error());
    const auto run_id = make_run_id();
    auto stream = into.prepare_stream(o.load.mode);
    if (!stream) return std::unexpected(stream.error());
    const auto project = "fanout-" + run_id;
    const auto subject = stream->subject("fanout-" + run_id);
    const subscribe_request request{
        stream->stream,           subject,        {},
        start_position::new_only, ack_mode::none, consumer_inflight_max};
    const auto epoch = run_clock::now();
    schedule plan;
    plan.rate = o.rate;
    plan.messages = scheduled_messages(o);
    plan.first_measured = o.rate * static_cast<std::uint64_t>(warmup_duration.count()) / 1000;
    fanout_receiving rx;
    for (std::size_t c = 0; c < o.connections; ++c)
        rx.groups.push_back(std::make_unique<fanout_group>());
    for (std::size_t i = 0; i < o.subscribers; ++i) {
        rx.all.push_back(
            std::make_unique<fanout_receiver>(epoch, plan.messages, *rx.groups[i % o.connections]));
    }
    auto connected = connect_producers(into, o.load);
    if (!connected) return std::unexpected(connected.error());
    auto& producers = *connected;
    auto subscribed = o.gateway_url.empty() ? subscribe_broker(into, o, request, rx)
                                            : subscribe_gateway(o, project, subject, rx);
    if (!subscribed) {
        rx.close();
        return std::unexpected(subscribed.error());
    }
    // Start a little ahead, so every producer thread is up before message 0 is due.
    plan.t0_ns = since_ns(epoch) + 10'000'000;
    const auto measure_from_ns = plan.at_ns(plan.first_measured);
    for (auto& g : rx.groups) g->measure_from_ns.store(measure_from_ns, std::memory_order_relaxed);
    const open_loop_workload w{subject, {project}, run_id, stamp_format::json};
    std::vector<std::jthread> threads;
    for (std::size_t p = 0; p < o.load.producers; ++p) {
        threads.emplace_back([&, p] { produce(*producers[p], p, o.load, plan, w, epoch); });
    }
    std::this_thread::sleep_until(epoch + std::chrono::nanoseconds(measure_from_ns));
    const auto start = take_mark(epoch, 0, server);
    const auto gateway_cpu_at_start = gateway_cpu(o);
    await_all(producers, o.load.stall_max);
    threads.clear();  // joins: every message sent and resolved (or flush gave up)
    run_result r;
    r.scenario = "fanout";
    r.target = std::string(into.name()) + (o.gateway_url.empty() ? "" : " via gateway");
    const auto failed = account_publishes(r, producers);
    const auto expected = (plan.messages - failed.size()) * o.subscribers;
    const bool complete = await_deliveries(rx.all, expected, o.idle_max, [](std::uint64_t) {});
    auto end = take_mark(epoch, 0, server);
    const auto gateway_cpu_at_end = gateway_cpu(o);
    rx.close();
    for (auto& p : producers) p->conn->close();
    end.at_ns = std::max(last_delivery_ns(rx.all), start.at_ns);
    fill_process_figures(r, start, end, server);
    if (!complete && r.first_error.empty()) {
        r.first_error = stalled_text(o.idle_max, expected, first_deliveries(rx.all));
    }
    account_deliveries(r, rx.all, false, failed);
    if (rx.sse) rx.sse->add_counters(r.target_counters);
    add_gateway_counters(r, o, gateway_cpu_at_start, gateway_cpu_at_end);
    add_figures(r, o, rx, plan, measure_from_ns, last_send_ns(producers));
    fill_parameters(r, o, *stream, project);
    return r;
}

}  // namespace nagare::bench
