#include "bench/e2e_scenario.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "bench/limits.h"
#include "bench/open_loop.h"

namespace nagare::bench {

namespace {

// Receives the run's messages: latency from the scheduled send time.
class e2e_receiver final : public receiver {
public:
    e2e_receiver(run_clock::time_point epoch, std::uint64_t messages) : receiver(epoch, messages) {}

    // Before the first publish.
    void start(std::int64_t measure_from_ns) noexcept {
        _measure_from_ns.store(measure_from_ns, std::memory_order_relaxed);
    }

    void on_delivered(const delivery& m) noexcept override {
        const auto at_ns = now_ns();
        const auto s = read_binary_stamp(m.payload);
        if (!record(s ? std::optional(s->index) : std::nullopt, at_ns)) return;
        const auto latency_ns =
            static_cast<std::uint64_t>(std::max<std::int64_t>(at_ns - s->scheduled_ns, 0));
        if (s->scheduled_ns >= _measure_from_ns.load(std::memory_order_relaxed)) {
            latency.record(latency_ns);
        }
    }

    protocol::latency_histogram latency;  // the sink side only; read once closed

private:
    std::atomic<std::int64_t> _measure_from_ns{0};
};

void fill_parameters(run_result& r, const e2e_scenario_options& o, const stream_handle& stream,
                     const subscribe_request& request) {
    const auto& l = o.load;
    r.parameters = {{"durability", std::string(to_string(l.mode))},
                    {"stream", stream.stream},
                    {"producers", std::uint64_t{l.producers}},
                    {"projects", std::uint64_t{l.projects}},
                    {"message_bytes", std::uint64_t{l.message_bytes}},
                    {"rate", o.rate},
                    {"duration_s", static_cast<double>(l.duration_ms) / 1000.0},
                    {"inflight", std::uint64_t{l.inflight}},
                    {"batch", std::uint64_t{l.batch}}};
    add_parameters(r.parameters, o.subscribers, request);
    r.parameters.push_back({"warmup", std::to_string(warmup_duration.count()) + "ms"});
}

// The latency of every receiver's measured messages, and the achieved rate figure.
void add_latency(run_result& r, const receivers& all, const e2e_scenario_options& o) {
    protocol::latency_histogram latency;
    for (const auto& rc : all) {
        latency.merge(static_cast<const e2e_receiver&>(*rc).latency);
        r.messages_total += rc->delivered();
    }
    r.latency_us = summarize_ns(latency);
    derived_figure achieved;
    achieved.name = "achieved_to_target_rate";
    achieved.label = "achieved / target publish rate";
    achieved.value = r.msgs_per_s / static_cast<double>(o.rate);
    achieved.note = "below 1: the producers fell behind the schedule; the latency counts it";
    r.figures.push_back(std::move(achieved));
}

std::uint64_t scheduled_messages(const e2e_scenario_options& o) noexcept {
    return o.rate * (o.load.duration_ms + static_cast<std::uint64_t>(warmup_duration.count())) /
           1000;
}

}  // namespace

std::expected<void, std::string> validate(const e2e_scenario_options& o) {
    auto load = o.load;
    load.messages = load.producers;  // not used
    if (auto ok = validate(load); !ok) return ok;
    if (o.load.duration_ms == 0) return std::unexpected("--duration: must be > 0");
    if (o.load.message_bytes < e2e_message_bytes_min) {
        return std::unexpected("--message-bytes: at least " +
                               std::to_string(e2e_message_bytes_min) + " for e2e");
    }
    if (o.rate < 1 || o.rate > e2e_rate_max)
        return std::unexpected("--rate: 1.." + std::to_string(e2e_rate_max));
    // At most 10^7 msgs/s x 24 h in ms: fits in 64 bits.
    if (scheduled_messages(o) > received_messages_max) {
        return std::unexpected("--rate x --duration: at most " +
                               std::to_string(received_messages_max) + " messages");
    }
    return validate(o.subscribers);
}

std::expected<run_result, std::string> run_e2e(target& into, const e2e_scenario_options& o,
                                               const server_probe* server) {
    if (auto ok = validate(o); !ok) return std::unexpected(ok.error());
    const auto run_id = make_run_id();
    auto stream = into.prepare_stream(o.load.mode);
    if (!stream) return std::unexpected(stream.error());
    const auto request = make_request(o.subscribers, run_id, stream->stream,
                                      stream->subject("e2e-" + run_id), start_position::new_only);
    const auto epoch = run_clock::now();
    schedule plan;
    plan.rate = o.rate;
    plan.messages = scheduled_messages(o);
    plan.first_measured = o.rate * static_cast<std::uint64_t>(warmup_duration.count()) / 1000;
    receivers all;
    for (std::size_t i = 0; i < o.subscribers.consumers; ++i)
        all.push_back(std::make_unique<e2e_receiver>(epoch, plan.messages));
    auto connected = connect_producers(into, o.load);
    if (!connected) return std::unexpected(connected.error());
    auto& producers = *connected;
    if (auto subscribed = subscribe_all(into, request, all); !subscribed)
        return std::unexpected(subscribed.error());
    // Start a little ahead, so every producer thread is up before message 0 is due.
    plan.t0_ns = since_ns(epoch) + 10'000'000;
    const auto measure_from_ns = plan.at_ns(plan.first_measured);
    for (auto& r : all) static_cast<e2e_receiver&>(*r).start(measure_from_ns);
    const open_loop_workload w{request.subject, project_names(o.load.projects), run_id,
                               stamp_format::binary};
    std::vector<std::jthread> threads;
    for (std::size_t p = 0; p < o.load.producers; ++p) {
        threads.emplace_back([&, p] { produce(*producers[p], p, o.load, plan, w, epoch); });
    }
    std::this_thread::sleep_until(epoch + std::chrono::nanoseconds(measure_from_ns));
    const auto start = take_mark(epoch, 0, server);
    await_all(producers, o.load.stall_max);
    threads.clear();  // joins: every message sent and resolved (or flush gave up)
    auto end = take_mark(epoch, 0, server);
    run_result r;
    r.scenario = "e2e";
    r.target = std::string(into.name());
    const auto failed = account_publishes(r, producers);
    const auto expected = expected_deliveries(o.subscribers, plan.messages - failed.size());
    const auto idle_max = o.subscribers.idle_max;
    const bool complete = await_deliveries(all, expected, idle_max, [](std::uint64_t) {});
    drain_and_close(all);
    remove_consumer(into, request, all);
    for (auto& p : producers) p->conn->close();
    end.at_ns = std::max(last_send_ns(producers), start.at_ns);
    fill_rates(r, plan.messages - plan.first_measured, o.load.message_bytes, measure_from_ns,
               end.at_ns);
    fill_process_figures(r, start, end, server);
    if (!complete && r.first_error.empty()) {
        r.first_error = stalled_text(idle_max, expected, first_deliveries(all));
    }
    account_deliveries(r, all, o.subscribers.durable, failed);
    add_latency(r, all, o);
    fill_parameters(r, o, *stream, request);
    return r;
}

}  // namespace nagare::bench
