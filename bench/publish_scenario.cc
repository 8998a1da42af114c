#include "bench/publish_scenario.h"

#include <atomic>
#include <charconv>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/limits.h"
#include "protocol/assert.h"

namespace nagare::bench {

namespace {

using clock = run_clock;

// One producer's counters. The sink side runs on the connection's I/O
// thread (a single writer: plain load + store, no locked instruction); the
// coordinator reads the atomics while running, everything else after join.
struct alignas(64) producer_state final : publish_sink {
    explicit producer_state(clock::time_point run_epoch) : epoch(run_epoch) {}

    void on_published(std::uint64_t token, publish_outcome outcome,
                      std::string_view error_text) noexcept override {
        const auto now_ns = since_ns(epoch);
        resolved.store(resolved.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (outcome == publish_outcome::failed) {
            fail(error_text);
            return;
        }
        if (outcome == publish_outcome::duplicate) duplicates += 1;
        acked.store(acked.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        last_ack_ns = now_ns;
        // token = publish time << 1 | 1 for a message published after the warm-up.
        const auto latency = static_cast<std::uint64_t>(now_ns) - (token >> 1);
        ((token & 1) != 0 ? latency_ns : warmup_latency_ns).record(latency);
    }

    void fail(std::string_view text) noexcept {
        errors.fetch_add(1, std::memory_order_relaxed);
        const std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = text.empty() ? "unknown error" : text;
    }

    const clock::time_point epoch;
    std::atomic<std::uint64_t> resolved{0};
    std::atomic<std::uint64_t> acked{0};
    std::atomic<std::uint64_t> errors{0};  // also counted by the producer thread
    std::uint64_t duplicates = 0;
    std::int64_t last_ack_ns = 0;
    protocol::latency_histogram latency_ns;
    protocol::latency_histogram warmup_latency_ns;
    std::mutex error_mutex;
    std::string first_error;
    std::unique_ptr<connection> conn;
    std::uint64_t quota = 0;  // messages to publish (--messages runs)
};

// Shared by the coordinator and the producer threads.
struct run_control {
    std::atomic<bool> measuring{false};
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> finished{0};
};

struct workload {
    std::vector<std::string> projects;
    std::string payload;
    std::string subject;
    std::string run_id;  // msg_id prefix, unique per run
};

workload make_workload(const publish_scenario_options& o, std::string subject) {
    workload w;
    w.projects = project_names(o.projects);
    w.payload.resize(o.message_bytes);
    for (std::size_t i = 0; i < w.payload.size(); ++i)
        w.payload[i] = static_cast<char>('a' + i % 26);
    w.subject = std::move(subject);
    w.run_id = o.run_id.empty() ? make_run_id() : o.run_id;
    return w;
}

void produce(producer_state& state, std::size_t p, const publish_scenario_options& o,
             const workload& w, run_control& control, bool by_duration) {
    std::string msg_id = w.run_id + "-" + std::to_string(p) + "-";
    const std::size_t prefix_bytes = msg_id.size();
    msg_id.resize(prefix_bytes + 20);
    publish_request request{{}, w.subject, {}, std::as_bytes(std::span(w.payload))};
    for (std::uint64_t k = 0; by_duration || k < state.quota; ++k) {
        if (by_duration && control.stop.load(std::memory_order_relaxed)) break;
        request.project = w.projects[(k * o.producers + p) % o.projects];
        const auto end =
            std::to_chars(msg_id.data() + prefix_bytes, msg_id.data() + msg_id.size(), k);
        request.msg_id = std::string_view(msg_id.data(), end.ptr);
        const std::uint64_t token = static_cast<std::uint64_t>(since_ns(state.epoch)) << 1 |
                                    (control.measuring.load(std::memory_order_relaxed) ? 1 : 0);
        if (auto accepted = state.conn->publish(request, token); !accepted) {
            state.fail(accepted.error());  // not accepted: the sink never hears of it
            break;
        }
    }
    if (!state.conn->flush(final_flush_wait)) state.fail("flush: acknowledgements still missing");
    control.finished.fetch_add(1, std::memory_order_release);
}

template <typename Counter>
std::uint64_t sum(const std::vector<std::unique_ptr<producer_state>>& states, Counter counter) {
    std::uint64_t total = 0;
    for (const auto& s : states) total += counter(*s).load(std::memory_order_relaxed);
    return total;
}

mark take_mark(const std::vector<std::unique_ptr<producer_state>>& states, clock::time_point epoch,
               const server_probe* server) {
    const auto acked = [](producer_state & s) -> auto& { return s.acked; };
    return take_mark(epoch, sum(states, acked), server);
}

std::uint64_t resolved_sum(const std::vector<std::unique_ptr<producer_state>>& states) {
    const auto resolved = [](producer_state & s) -> auto& { return s.resolved; };
    return sum(states, resolved);
}

// Waits until every producer has finished; when no publish resolved for
// producer_stall_max, closes the connections (blocked publishes return) and
// counts the stall as an error.
void await_all(const std::vector<std::unique_ptr<producer_state>>& states, run_control& control,
               std::chrono::milliseconds stall_max, const std::function<void()>& on_poll = {}) {
    const auto finished = [&] {
        return control.finished.load(std::memory_order_acquire) == states.size();
    };
    // The stall is the first error: the failures the closing causes follow it.
    const auto close_all = [&] {
        states.front()->fail("no publish resolved for " + std::to_string(stall_max.count()) +
                             " ms: connections closed");
        for (const auto& s : states) s->conn->close();
    };
    // False after a stall, which close_all() recorded.
    (void)await_producers(
        finished, [&] { return resolved_sum(states); }, stall_max, close_all, on_poll);
}

// Runs the coordinator's side until every producer has finished; returns
// the marks at the start and the end of the measured interval. `begin` is
// the mark taken as the producers started: the start when the warm-up was
// never seen to end (a run shorter than the coordinator's reaction time).
// Marks are in ns since `epoch`; the warm-up and the duration count from `started`.
std::pair<mark, mark> coordinate(const std::vector<std::unique_ptr<producer_state>>& states,
                                 const publish_scenario_options& o, run_control& control,
                                 clock::time_point epoch, clock::time_point started,
                                 const mark& begin, const server_probe* server) {
    const auto finished = [&] {
        return control.finished.load(std::memory_order_acquire) == states.size();
    };
    mark start = begin;
    if (o.duration_ms != 0) {
        std::this_thread::sleep_until(started + warmup_duration);
        start = take_mark(states, epoch, server);
        control.measuring.store(true, std::memory_order_relaxed);
        std::this_thread::sleep_until(started + warmup_duration +
                                      std::chrono::milliseconds(o.duration_ms));
        const auto end = take_mark(states, epoch, server);
        control.stop.store(true, std::memory_order_relaxed);
        return {start, end};
    }
    const std::uint64_t warmup_messages = o.messages * warmup_percent / 100;
    await_all(states, control, o.stall_max, [&] {
        if (control.measuring.load(std::memory_order_relaxed) || finished()) return;
        if (resolved_sum(states) >= warmup_messages) {
            start = take_mark(states, epoch, server);
            control.measuring.store(true, std::memory_order_relaxed);
        }
    });
    return {start, take_mark(states, epoch, server)};
}

void fill_parameters(run_result& r, const publish_scenario_options& o, const stream_handle& stream,
                     bool warmup_excluded) {
    r.parameters = {{"durability", std::string(to_string(o.mode))},
                    {"stream", stream.stream},
                    {"producers", std::uint64_t{o.producers}},
                    {"projects", std::uint64_t{o.projects}},
                    {"message_bytes", std::uint64_t{o.message_bytes}}};
    if (o.duration_ms != 0) {
        r.parameters.push_back({"duration_s", static_cast<double>(o.duration_ms) / 1000.0});
    } else {
        r.parameters.push_back({"messages", o.messages});
    }
    r.parameters.push_back({"inflight", std::uint64_t{o.inflight}});
    r.parameters.push_back({"batch", std::uint64_t{o.batch}});
    std::string warmup = "none (the run ended before the warm-up was seen to end)";
    if (warmup_excluded) {
        warmup = o.duration_ms != 0 ? std::to_string(warmup_duration.count()) + "ms"
                                    : std::to_string(warmup_percent) + "%";
    }
    r.parameters.push_back({"warmup", warmup});
}

// Sums the producers' counters and computes the rates over [start, end].
// Without a warm-up (`warmup_excluded` false) the whole run is measured.
run_result collect(const std::vector<std::unique_ptr<producer_state>>& states,
                   const publish_scenario_options& o, const mark& start, mark end,
                   const server_probe* server, bool warmup_excluded) {
    run_result r;
    protocol::latency_histogram latency_ns;
    std::int64_t last_ack_ns = 0;
    for (const auto& s : states) {
        latency_ns.merge(s->latency_ns);
        if (!warmup_excluded) latency_ns.merge(s->warmup_latency_ns);
        r.messages_total += s->resolved.load(std::memory_order_relaxed);
        r.errors += s->errors.load(std::memory_order_relaxed);
        r.duplicates += s->duplicates;
        if (r.first_error.empty()) r.first_error = s->first_error;
        last_ack_ns = std::max(last_ack_ns, s->last_ack_ns);
        s->conn->add_counters(r.target_counters);
    }
    // A --messages run ends with its last acknowledgement, not when the coordinator looked.
    if (o.duration_ms == 0 && last_ack_ns > start.at_ns) end.at_ns = last_ack_ns;
    fill_rates(r, end.count - start.count, o.message_bytes, start.at_ns, end.at_ns);
    r.latency_us = summarize_ns(latency_ns);
    fill_process_figures(r, start, end, server);
    return r;
}

}  // namespace

std::expected<void, std::string> validate(const publish_scenario_options& o) {
    auto in = [](std::uint64_t v, std::uint64_t low, std::uint64_t high) {
        return v >= low && v <= high;
    };
    if (!in(o.producers, 1, producers_max))
        return std::unexpected("--producers: 1.." + std::to_string(producers_max));
    if (!in(o.projects, 1, projects_max))
        return std::unexpected("--projects: 1.." + std::to_string(projects_max));
    if (!in(o.message_bytes, 1, message_bytes_max)) {
        return std::unexpected("--message-bytes: 1.." + std::to_string(message_bytes_max));
    }
    if (!in(o.inflight, 1, inflight_messages_max)) {
        return std::unexpected("--inflight: 1.." + std::to_string(inflight_messages_max));
    }
    if (!in(o.batch, 1, batch_messages_max))
        return std::unexpected("--batch: 1.." + std::to_string(batch_messages_max));
    if (o.duration_ms == 0 && !in(o.messages, o.producers, messages_max)) {
        return std::unexpected("--messages: at least one per producer, at most " +
                               std::to_string(messages_max));
    }
    if (o.duration_ms > duration_ms_max) return std::unexpected("--duration: at most 24h");
    if (o.stall_max.count() < 1) return std::unexpected("stall_max: at least 1 ms");
    return {};
}

std::expected<run_result, std::string> run_publish(target& into, const publish_scenario_options& o,
                                                   const server_probe* server) {
    if (auto ok = validate(o); !ok) return std::unexpected(ok.error());
    auto stream = into.prepare_stream(o.mode);
    if (!stream) return std::unexpected(stream.error());
    const auto w = make_workload(o, stream->subject(o.subject_token));
    const auto epoch = clock::now();
    std::vector<std::unique_ptr<producer_state>> states;
    const connection_options co{o.inflight, o.batch};
    for (std::size_t p = 0; p < o.producers; ++p) {
        states.push_back(std::make_unique<producer_state>(epoch));
        auto c = into.connect(co, *states.back());
        if (!c) return std::unexpected(c.error());
        states.back()->conn = std::move(*c);
        states.back()->quota = o.messages / o.producers + (p < o.messages % o.producers ? 1 : 0);
    }
    run_control control;
    const bool by_duration = o.duration_ms != 0;
    const auto begin = take_mark(states, epoch, server);
    const auto started = clock::now();
    std::vector<std::jthread> threads;
    for (std::size_t p = 0; p < o.producers; ++p) {
        threads.emplace_back([&, p] { produce(*states[p], p, o, w, control, by_duration); });
    }
    const auto [start, end] = coordinate(states, o, control, epoch, started, begin, server);
    await_all(states, control, o.stall_max);
    threads.clear();  // joins
    const bool warmup_excluded = control.measuring.load(std::memory_order_relaxed);
    auto result = collect(states, o, start, end, server, warmup_excluded);
    for (auto& s : states) s->conn->close();
    result.scenario = "publish";
    result.target = std::string(into.name());
    fill_parameters(result, o, *stream, warmup_excluded);
    return result;
}

std::vector<std::string> project_names(std::size_t count) {
    std::vector<std::string> names;
    names.reserve(count);
    for (std::size_t i = 0; i < count; ++i) names.push_back("project-" + std::to_string(i));
    return names;
}

std::optional<std::uint64_t> message_index(std::string_view msg_id, std::string_view run_id,
                                           std::size_t producers) noexcept {
    if (!msg_id.starts_with(run_id) || msg_id.size() < run_id.size() + 4 ||
        msg_id[run_id.size()] != '-') {
        return std::nullopt;
    }
    const char* first = msg_id.data() + run_id.size() + 1;
    const char* const last = msg_id.data() + msg_id.size();
    std::uint64_t p = 0;
    std::uint64_t k = 0;
    auto parsed = std::from_chars(first, last, p);
    if (parsed.ec != std::errc{} || parsed.ptr == last || *parsed.ptr != '-') return std::nullopt;
    parsed = std::from_chars(parsed.ptr + 1, last, k);
    if (parsed.ec != std::errc{} || parsed.ptr != last || p >= producers) return std::nullopt;
    return k * producers + p;
}

}  // namespace nagare::bench
