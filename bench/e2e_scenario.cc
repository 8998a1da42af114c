#include "bench/e2e_scenario.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/prctl.h>

#include "bench/limits.h"

namespace nagare::bench {

namespace {

constexpr std::uint64_t ns_per_s = 1'000'000'000;
static_assert(received_messages_max <= UINT64_MAX / ns_per_s);

// Payload bytes 0..7: scheduled send time (ns since the run's epoch), 8..15:
// the message's index s; little-endian (the harness runs on both ends).
struct stamp {
    std::int64_t scheduled_ns = 0;
    std::uint64_t index = 0;
};

void write_stamp(std::span<std::byte> payload, const stamp& s) noexcept {
    std::memcpy(payload.data(), &s.scheduled_ns, 8);
    std::memcpy(payload.data() + 8, &s.index, 8);
}

std::optional<stamp> read_stamp(std::span<const std::byte> payload) noexcept {
    if (payload.size() < e2e_message_bytes_min) return std::nullopt;
    stamp s;
    std::memcpy(&s.scheduled_ns, payload.data(), 8);
    std::memcpy(&s.index, payload.data() + 8, 8);
    return s;
}

// The schedule: message s at t0 + s / rate; messages scheduled from
// measure_from_ns on are measured.
struct schedule {
    std::int64_t t0_ns = 0;
    std::uint64_t rate = 1;
    std::uint64_t messages = 0;
    std::uint64_t first_measured = 0;

    [[nodiscard]] std::int64_t at_ns(std::uint64_t s) const noexcept {
        // s < received_messages_max (2^28): s * 10^9 fits in 64 bits.
        return t0_ns + static_cast<std::int64_t>(s * ns_per_s / rate);
    }
};

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
        const auto s = read_stamp(m.payload);
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

// One open-loop producer's state; the sink runs on its connection's thread.
struct alignas(64) e2e_producer final : publish_sink {
    void on_published(std::uint64_t token, publish_outcome outcome,
                      std::string_view error_text) noexcept override {
        resolved.store(resolved.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (outcome == publish_outcome::stored) return;
        const std::lock_guard lock(mutex);
        if (outcome == publish_outcome::duplicate) {
            duplicates += 1;  // stored once already: still delivered once
            return;
        }
        failed.push_back(token);
        if (first_error.empty()) first_error = error_text.empty() ? "unknown error" : error_text;
    }

    std::unique_ptr<connection> conn;
    std::atomic<std::uint64_t> resolved{0};  // written by the sink only
    std::atomic<bool> finished{false};       // the producer thread, at its end
    std::int64_t last_send_ns = 0;           // the producer thread; read after join
    std::uint64_t sent = 0;
    std::mutex mutex;
    std::vector<std::uint64_t> failed;  // indexes whose publish failed
    std::uint64_t duplicates = 0;
    std::string first_error;
};

// What every producer sends: the run's subject, projects and msg_id prefix.
struct e2e_workload {
    std::string subject;
    std::vector<std::string> projects;
    std::string run_id;
};

void produce(e2e_producer& state, std::size_t p, const e2e_scenario_options& o,
             const schedule& plan, const e2e_workload& w, run_clock::time_point epoch) {
    // Wake-ups within a few microseconds of the schedule (default slack: 50 us).
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    std::vector<std::byte> payload(o.load.message_bytes, std::byte{'e'});
    std::string msg_id = w.run_id + "-";
    const auto prefix_bytes = msg_id.size();
    msg_id.resize(prefix_bytes + 20);
    publish_request request{{}, w.subject, {}, payload};
    for (std::uint64_t s = p; s < plan.messages; s += o.load.producers) {
        const auto due_ns = plan.at_ns(s);
        std::this_thread::sleep_until(epoch + std::chrono::nanoseconds(due_ns));
        write_stamp(payload, {due_ns, s});
        request.project = w.projects[s % w.projects.size()];
        const auto end =
            std::to_chars(msg_id.data() + prefix_bytes, msg_id.data() + msg_id.size(), s);
        request.msg_id = std::string_view(msg_id.data(), end.ptr);
        if (auto accepted = state.conn->publish(request, s); !accepted) {
            const std::lock_guard lock(state.mutex);
            for (auto rest = s; rest < plan.messages; rest += o.load.producers)
                state.failed.push_back(rest);
            if (state.first_error.empty()) state.first_error = accepted.error();
            break;
        }
        state.last_send_ns = since_ns(epoch);
        state.sent += 1;
    }
    if (!state.conn->flush(final_flush_wait)) {
        const std::lock_guard lock(state.mutex);
        if (state.first_error.empty()) state.first_error = "flush: acknowledgements still missing";
    }
    state.finished.store(true, std::memory_order_release);
}

// Waits for the producers; after producer_stall_max without a resolved
// publish, closes their connections and says so.
void await_all(std::vector<std::unique_ptr<e2e_producer>>& ps,
               std::chrono::milliseconds stall_max) {
    const auto done = [&] {
        return std::ranges::all_of(
            ps, [](const auto& p) { return p->finished.load(std::memory_order_acquire); });
    };
    const auto resolved = [&] {
        std::uint64_t total = 0;
        for (const auto& p : ps) total += p->resolved.load(std::memory_order_relaxed);
        return total;
    };
    // The stall is the first error: the failures the closing causes follow it.
    const auto close_all = [&] {
        {
            const std::lock_guard lock(ps.front()->mutex);
            ps.front()->first_error = "no publish resolved for " +
                                      std::to_string(stall_max.count()) + " ms: connections closed";
        }
        for (auto& p : ps) p->conn->close();
    };
    // False after a stall, which close_all() recorded.
    (void)await_producers(done, resolved, stall_max, close_all);
}

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

// Publish failures (their indexes are excused from the lost count) and
// the producers' counters. A publish acknowledged as a duplicate is an
// error too: every msg_id of the run is new.
std::vector<std::uint64_t> account_publishes(run_result& r,
                                             const std::vector<std::unique_ptr<e2e_producer>>& ps) {
    std::vector<std::uint64_t> failed;
    for (const auto& p : ps) {
        failed.insert(failed.end(), p->failed.begin(), p->failed.end());
        r.errors += p->duplicates;
        if (r.first_error.empty() && !p->first_error.empty()) {
            r.first_error = "publish: " + p->first_error;
        }
        if (r.first_error.empty() && p->duplicates != 0) {
            r.first_error = "publish acknowledged as a duplicate";
        }
        p->conn->add_counters(r.target_counters);
    }
    r.errors += failed.size();
    return failed;
}

std::expected<std::vector<std::unique_ptr<e2e_producer>>, std::string> connect_producers(
    target& into, const e2e_scenario_options& o) {
    std::vector<std::unique_ptr<e2e_producer>> producers;
    const connection_options co{o.load.inflight, o.load.batch};
    for (std::size_t p = 0; p < o.load.producers; ++p) {
        producers.push_back(std::make_unique<e2e_producer>());
        auto c = into.connect(co, *producers.back());
        if (!c) return std::unexpected(c.error());
        producers.back()->conn = std::move(*c);
    }
    return producers;
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
    auto connected = connect_producers(into, o);
    if (!connected) return std::unexpected(connected.error());
    auto& producers = *connected;
    if (auto subscribed = subscribe_all(into, request, all); !subscribed)
        return std::unexpected(subscribed.error());
    // Start a little ahead, so every producer thread is up before message 0 is due.
    plan.t0_ns = since_ns(epoch) + 10'000'000;
    const auto measure_from_ns = plan.at_ns(plan.first_measured);
    for (auto& r : all) static_cast<e2e_receiver&>(*r).start(measure_from_ns);
    const e2e_workload w{request.subject, project_names(o.load.projects), run_id};
    std::vector<std::jthread> threads;
    for (std::size_t p = 0; p < o.load.producers; ++p) {
        threads.emplace_back([&, p] { produce(*producers[p], p, o, plan, w, epoch); });
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
    std::int64_t last_send_ns = 0;
    for (const auto& p : producers) last_send_ns = std::max(last_send_ns, p->last_send_ns);
    end.at_ns = std::max(last_send_ns, start.at_ns);
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
