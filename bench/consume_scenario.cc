#include "bench/consume_scenario.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "bench/limits.h"
#include "bench/receiver.h"

namespace nagare::bench {

namespace {

// One subscriber: knows the run's messages by their msg_id.
class consumer_receiver final : public receiver {
public:
    consumer_receiver(run_clock::time_point epoch, std::uint64_t messages, std::string run_id,
                      std::size_t producers)
        : receiver(epoch, messages), _run_id(std::move(run_id)), _producers(producers) {}

    void on_delivered(const delivery& m) noexcept override {
        record(message_index(m.msg_id, _run_id, _producers), now_ns());
    }

private:
    std::string _run_id;
    std::size_t _producers;
};

// The fill's parameters (its warm-up renamed), then the consume's own.
void fill_parameters(run_result& r, const consume_scenario_options& o, const run_result& fill,
                     const subscribe_request& request, bool warmup_excluded) {
    for (const auto& p : fill.parameters) {
        r.parameters.push_back(p.name == "warmup" ? parameter{"fill_warmup", p.value} : p);
    }
    add_parameters(r.parameters, o.subscribers, request);
    r.parameters.push_back(
        {"warmup", warmup_excluded ? std::to_string(warmup_percent) + "%"
                                   : std::string("none (the run ended before the warm-up was "
                                                 "seen to end)")});
}

derived_figure ratio_figure(const consume_scenario_options& o, double consume_rate,
                            double publish_rate) {
    derived_figure f;
    f.name = "consume_to_publish";
    f.label = "consume / publish msgs/s (same run)";
    f.value = publish_rate > 0 ? consume_rate / publish_rate : 0;
    if (o.subscribers.ack == ack_mode::explicit_each &&
        o.fill.message_bytes == consume_goal_message_bytes) {
        f.at_least = consume_to_publish_goal;
        f.note = "issue 5, explicit acks and 128 B messages";
    } else {
        f.note = "no goal: issue 5's (>= 0.50) is for explicit acks and 128 B messages";
    }
    return f;
}

}  // namespace

std::expected<void, std::string> validate(const consume_scenario_options& o) {
    if (auto ok = validate(o.fill); !ok) return ok;
    if (o.fill.duration_ms != 0) return std::unexpected("consume fills --messages, not --duration");
    if (o.fill.messages > received_messages_max) {
        return std::unexpected("--messages: at most " + std::to_string(received_messages_max) +
                               " for consume");
    }
    return validate(o.subscribers);
}

std::expected<run_result, std::string> run_consume(target& into, const consume_scenario_options& o,
                                                   const server_probe* server) {
    if (auto ok = validate(o); !ok) return std::unexpected(ok.error());
    const auto run_id = make_run_id();
    auto fill_options = o.fill;
    fill_options.run_id = run_id;
    fill_options.subject_token = "consume-" + run_id;
    auto fill = run_publish(into, fill_options, server);
    if (!fill) return std::unexpected(fill.error());
    auto stream = into.prepare_stream(o.fill.mode);  // exists: only its names
    if (!stream) return std::unexpected(stream.error());
    fill->phase = "fill";

    run_result r;
    r.scenario = "consume";
    r.target = std::string(into.name());
    r.phase = "consume";
    const auto request =
        make_request(o.subscribers, run_id, stream->stream,
                     stream->subject(fill_options.subject_token), start_position::first);
    if (fill->errors != 0) {
        r.errors = fill->errors;
        r.first_error = "fill: " + fill->first_error + " (nothing consumed)";
        fill_parameters(r, o, *fill, request, false);
        r.phases.push_back(std::move(*fill));
        return r;
    }
    const std::uint64_t n = o.fill.messages;
    const std::uint64_t expected = expected_deliveries(o.subscribers, n);
    const auto epoch = run_clock::now();
    receivers all;
    for (std::size_t i = 0; i < o.subscribers.consumers; ++i) {
        all.push_back(std::make_unique<consumer_receiver>(epoch, n, run_id, o.fill.producers));
    }
    mark start = take_mark(epoch, 0, server);
    bool measuring = false;
    const std::uint64_t warmup = expected * warmup_percent / 100;
    if (auto subscribed = subscribe_all(into, request, all); !subscribed)
        return std::unexpected(subscribed.error());
    const auto idle_max = o.subscribers.idle_max;
    const bool complete = await_deliveries(all, expected, idle_max, [&](std::uint64_t progress) {
        if (measuring || progress < warmup || progress >= expected) return;
        start = take_mark(epoch, progress, server);
        measuring = true;
    });
    auto end = take_mark(epoch, first_deliveries(all), server);
    end.at_ns = std::max(last_delivery_ns(all), start.at_ns);
    drain_and_close(all);
    remove_consumer(into, request, all);
    fill_rates(r, end.count - start.count, o.fill.message_bytes, start.at_ns, end.at_ns);
    fill_process_figures(r, start, end, server);
    if (!complete) r.first_error = stalled_text(idle_max, expected, end.count);
    account_deliveries(r, all, o.subscribers.durable);
    for (const auto& rc : all) r.messages_total += rc->delivered();
    r.figures.push_back(ratio_figure(o, r.msgs_per_s, fill->msgs_per_s));
    fill_parameters(r, o, *fill, request, measuring);
    r.phases.push_back(std::move(*fill));
    return r;
}

}  // namespace nagare::bench
