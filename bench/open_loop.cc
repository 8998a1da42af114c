#include "bench/open_loop.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <thread>

#include <sys/prctl.h>

namespace nagare::bench {

namespace {

constexpr std::string_view json_pad_key = ",\"pad\":\"";
constexpr std::string_view json_end = "\"}";
// `{` + keys + the longest numbers (u64: 20 digits, i64 >= 0: 19) + pad key + end.
constexpr std::size_t json_stamp_bytes_longest = 1 + detail::json_seq_key.size() + 20 + 1 +
                                                 detail::json_time_key.size() + 19 +
                                                 json_pad_key.size() + json_end.size();
static_assert(json_stamp_bytes_min >= json_stamp_bytes_longest);

}  // namespace

void write_binary_stamp(std::span<std::byte> payload, const stamp& s) noexcept {
    std::memcpy(payload.data(), &s.scheduled_ns, 8);
    std::memcpy(payload.data() + 8, &s.index, 8);
}

std::optional<stamp> read_binary_stamp(std::span<const std::byte> payload) noexcept {
    if (payload.size() < e2e_message_bytes_min) return std::nullopt;
    stamp s;
    std::memcpy(&s.scheduled_ns, payload.data(), 8);
    std::memcpy(&s.index, payload.data() + 8, 8);
    return s;
}

void write_json_stamp(std::span<std::byte> payload, const stamp& s) noexcept {
    auto* const begin = reinterpret_cast<char*>(payload.data());
    auto* const end = begin + payload.size();
    char* at = begin;
    const auto put = [&](std::string_view text) {
        std::memcpy(at, text.data(), text.size());
        at += text.size();
    };
    put("{");
    put(detail::json_seq_key);
    at = std::to_chars(at, end, s.index).ptr;
    put(",");
    put(detail::json_time_key);
    at = std::to_chars(at, end, std::max<std::int64_t>(s.scheduled_ns, 0)).ptr;
    put(json_pad_key);
    const auto pad = static_cast<std::size_t>(end - at) - json_end.size();
    std::memset(at, 'x', pad);
    at += pad;
    put(json_end);
}

bool detail::parse_json_u64(std::string_view text, std::size_t& at, std::uint64_t& value) noexcept {
    while (at < text.size() && text[at] == ' ') ++at;
    const auto parsed = std::from_chars(text.data() + at, text.data() + text.size(), value);
    if (parsed.ec != std::errc{}) return false;
    at = static_cast<std::size_t>(parsed.ptr - text.data());
    return true;
}

void open_loop_producer::on_published(std::uint64_t token, publish_outcome outcome,
                                      std::string_view error_text) noexcept {
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

void produce(open_loop_producer& state, std::size_t p, const publish_scenario_options& load,
             const schedule& plan, const open_loop_workload& w, run_clock::time_point epoch) {
    // Wake-ups within a few microseconds of the schedule (default slack: 50 us).
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    std::vector<std::byte> payload(load.message_bytes, std::byte{'e'});
    std::string msg_id = w.run_id + "-";
    const auto prefix_bytes = msg_id.size();
    msg_id.resize(prefix_bytes + 20);
    publish_request request{{}, w.subject, {}, payload};
    for (std::uint64_t s = p; s < plan.messages; s += load.producers) {
        const auto due_ns = plan.at_ns(s);
        std::this_thread::sleep_until(epoch + std::chrono::nanoseconds(due_ns));
        if (w.format == stamp_format::json) {
            write_json_stamp(payload, {due_ns, s});
        } else {
            write_binary_stamp(payload, {due_ns, s});
        }
        request.project = w.projects[s % w.projects.size()];
        const auto end =
            std::to_chars(msg_id.data() + prefix_bytes, msg_id.data() + msg_id.size(), s);
        request.msg_id = std::string_view(msg_id.data(), end.ptr);
        if (auto accepted = state.conn->publish(request, s); !accepted) {
            const std::lock_guard lock(state.mutex);
            for (auto rest = s; rest < plan.messages; rest += load.producers)
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

std::expected<open_loop_producers, std::string> connect_producers(
    target& into, const publish_scenario_options& load) {
    open_loop_producers producers;
    const connection_options co{load.inflight, load.batch};
    for (std::size_t p = 0; p < load.producers; ++p) {
        producers.push_back(std::make_unique<open_loop_producer>());
        auto c = into.connect(co, *producers.back());
        if (!c) return std::unexpected(c.error());
        producers.back()->conn = std::move(*c);
    }
    return producers;
}

void await_all(open_loop_producers& ps, std::chrono::milliseconds stall_max) {
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

std::vector<std::uint64_t> account_publishes(run_result& r, const open_loop_producers& ps) {
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

std::int64_t last_send_ns(const open_loop_producers& producers) noexcept {
    std::int64_t last = 0;
    for (const auto& p : producers) last = std::max(last, p->last_send_ns);
    return last;
}

}  // namespace nagare::bench
