#include "bench/receiver.h"

#include <algorithm>
#include <bit>
#include <thread>

#include "bench/limits.h"

namespace nagare::bench {

bool delivery_tracker::record(std::uint64_t index) noexcept {
    if (index >= _n) {
        _foreign += 1;
        return false;
    }
    auto& word = _bits[index / 64];
    const std::uint64_t bit = std::uint64_t{1} << (index % 64);
    if ((word & bit) != 0) {
        _duplicates += 1;
        return false;
    }
    word |= bit;
    _fresh += 1;
    return true;
}

void delivery_tracker::merge(const delivery_tracker& other) noexcept {
    const auto words = std::min(_bits.size(), other._bits.size());
    for (std::size_t i = 0; i < words; ++i) {
        const auto both = _bits[i] & other._bits[i];
        _duplicates += static_cast<std::uint64_t>(std::popcount(both));
        _fresh += static_cast<std::uint64_t>(std::popcount(other._bits[i] & ~_bits[i]));
        _bits[i] |= other._bits[i];
    }
    _duplicates += other._duplicates;
    _foreign += other._foreign;
}

std::uint64_t delivery_tracker::missing(std::span<const std::uint64_t> excused) const noexcept {
    std::uint64_t unseen = _n - _fresh;
    for (const auto index : excused) unseen -= (index < _n && !seen(index)) ? 1 : 0;
    return unseen;
}

std::optional<std::uint64_t> delivery_tracker::first_missing(
    std::span<const std::uint64_t> excused) const {
    for (std::size_t w = 0; w < _bits.size(); ++w) {
        auto unset = ~_bits[w];
        while (unset != 0) {
            const auto index = w * 64 + static_cast<std::uint64_t>(std::countr_zero(unset));
            if (index >= _n) return std::nullopt;
            if (std::ranges::find(excused, index) == excused.end()) return index;
            unset &= unset - 1;
        }
    }
    return std::nullopt;
}

void receiver::fail(std::string_view text) noexcept {
    _errors.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard lock(_error_mutex);
    if (_first_error.empty()) _first_error = text.empty() ? "unknown error" : text;
}

std::string receiver::first_error() const {
    const std::lock_guard lock(_error_mutex);
    return _first_error;
}

bool receiver::record(std::optional<std::uint64_t> index, std::int64_t at_ns) noexcept {
    _delivered.store(_delivered.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    _last_delivery_ns.store(at_ns, std::memory_order_relaxed);
    if (!index) {
        tracker.record_foreign();
        return false;
    }
    if (!tracker.record(*index)) return false;
    _first_deliveries.store(tracker.fresh(), std::memory_order_relaxed);
    return true;
}

receivers::~receivers() {
    for (auto& r : *this) {
        if (r->sub) r->sub->close();
    }
}

std::expected<void, std::string> validate(const subscriber_options& o) {
    if (o.consumers < 1 || o.consumers > consumers_max)
        return std::unexpected("--consumers: 1.." + std::to_string(consumers_max));
    if (o.max_inflight < 1 || o.max_inflight > consumer_inflight_max)
        return std::unexpected("--max-inflight: 1.." + std::to_string(consumer_inflight_max));
    if (o.idle_max.count() < 1 || static_cast<std::uint64_t>(o.idle_max.count()) > duration_ms_max)
        return std::unexpected("--idle-timeout: 1 ms .. 24 h");
    return {};
}

std::uint64_t expected_deliveries(const subscriber_options& o, std::uint64_t messages) noexcept {
    return o.durable ? messages : messages * o.consumers;
}

subscribe_request make_request(const subscriber_options& o, const std::string& run_id,
                               std::string stream, std::string subject, start_position start) {
    return {std::move(stream),
            std::move(subject),
            o.durable ? "bench-" + run_id : std::string(),
            start,
            o.ack,
            o.max_inflight};
}

void add_parameters(std::vector<parameter>& into, const subscriber_options& o,
                    const subscribe_request& request) {
    into.push_back({"consumers", std::uint64_t{o.consumers}});
    into.push_back(
        {"consumer", request.consumer.empty() ? std::string("ephemeral") : request.consumer});
    into.push_back({"ack", std::string(to_string(o.ack))});
    into.push_back({"max_inflight", std::uint64_t{o.max_inflight}});
}

std::expected<void, std::string> subscribe_all(target& into, const subscribe_request& request,
                                               receivers& all) {
    for (auto& r : all) {
        auto sub = into.subscribe(request, *r);
        if (!sub) {
            for (auto& opened : all) {
                if (opened->sub) opened->sub->close();
            }
            return std::unexpected(sub.error());
        }
        r->sub = std::move(*sub);
    }
    return {};
}

void remove_consumer(target& into, const subscribe_request& request, receivers& all) {
    if (request.consumer.empty() || all.empty()) return;
    if (auto removed = into.remove_consumer(request.stream, request.consumer); !removed) {
        all.front()->fail(removed.error());
    }
}

std::uint64_t first_deliveries(const receivers& all) noexcept {
    std::uint64_t total = 0;
    for (const auto& r : all) total += r->first_deliveries();
    return total;
}

std::int64_t last_delivery_ns(const receivers& all) noexcept {
    std::int64_t last = 0;
    for (const auto& r : all) last = std::max(last, r->last_delivery_ns());
    return last;
}

bool await_deliveries(const receivers& all, std::uint64_t expected,
                      std::chrono::milliseconds idle_max,
                      const std::function<void(std::uint64_t)>& on_poll) {
    std::uint64_t progress = 0;
    const auto delivered = [&] {
        std::uint64_t total = 0;
        for (const auto& r : all) total += r->delivered();
        return total;
    };
    return poll_until([&] { return progress >= expected; }, delivered, idle_max,
                      [&] {
                          progress = first_deliveries(all);
                          on_poll(progress);
                      });
}

void account_deliveries(run_result& r, receivers& all, bool shared,
                        std::span<const std::uint64_t> excused) {
    for (auto& rc : all) {
        r.errors += rc->errors();
        if (r.first_error.empty()) r.first_error = rc->first_error();
        if (rc->sub) rc->sub->add_counters(r.target_counters);
    }
    std::vector<const delivery_tracker*> sets;
    if (shared) {
        for (std::size_t i = 1; i < all.size(); ++i) all.front()->tracker.merge(all[i]->tracker);
        sets.push_back(&all.front()->tracker);
    } else {
        for (const auto& rc : all) sets.push_back(&rc->tracker);
    }
    std::uint64_t lost = 0;
    for (const auto* t : sets) {
        r.duplicates += t->duplicates();
        r.errors += t->foreign();
        if (t->foreign() != 0 && r.first_error.empty()) {
            r.first_error = "messages of another run delivered";
        }
        const auto missing = t->missing(excused);
        if (missing != 0 && r.first_error.empty()) {
            r.first_error = std::to_string(missing) + " messages never delivered (first: #" +
                            std::to_string(t->first_missing(excused).value_or(0)) + ")";
        }
        lost += missing;
    }
    r.lost = lost;
    r.errors += lost;
}

std::string stalled_text(std::chrono::milliseconds idle_max, std::uint64_t expected,
                         std::uint64_t delivered) {
    return "no delivery for " + std::to_string(idle_max.count()) +
           " ms: " + std::to_string(delivered) + " of " + std::to_string(expected) +
           " messages delivered";
}

void drain_and_close(receivers& all) {
    const auto deadline = run_clock::now() + ack_drain_wait;
    for (auto& r : all) {
        if (!r->sub) continue;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::max(deadline - run_clock::now(), run_clock::duration::zero()));
        if (!r->sub->drain(left)) {
            r->fail("acknowledgements not written within " +
                    std::to_string(ack_drain_wait.count()) + " ms");
        }
        r->sub->close();
    }
}

}  // namespace nagare::bench
