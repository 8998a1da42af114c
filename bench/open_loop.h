// open_loop: the publishing side of the scenarios that measure delivery
// latency (e2e, fanout) — message s of a run is scheduled at t0 + s / rate
// and carries its scheduled send time and s in its payload (a stamp);
// producer p sends the messages s ≡ p (mod producers), each as soon as its
// time has come (late ones at once, one after the other), so a stall of the
// broker or of a blocked publish counts for every message that should have
// gone out meanwhile (the coordinated-omission correction).
//
// Stamps: binary (the first 16 bytes: scheduled ns, then s; little-endian,
// e2e) or JSON (`{"nb_seq":S,"nb_t_ns":T,"pad":"..."}` padded to the message
// size, so a gateway that forwards JSON payloads as JSON keeps it readable:
// fanout). Writing one allocates nothing.
//
// Threads: produce() on its producer's thread; a producer's sink on its
// connection's thread; the rest on the coordinating thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/limits.h"
#include "bench/measure.h"
#include "bench/publish_scenario.h"
#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

struct stamp {
    std::int64_t scheduled_ns = 0;  // since the run's epoch
    std::uint64_t index = 0;        // s
};

enum class stamp_format : std::uint8_t { binary, json };

// REQUIRES: payload.size() >= e2e_message_bytes_min.
void write_binary_stamp(std::span<std::byte> payload, const stamp& s) noexcept;
// nullopt when the payload is shorter than a stamp.
[[nodiscard]] std::optional<stamp> read_binary_stamp(std::span<const std::byte> payload) noexcept;

// Fills the whole payload. REQUIRES: payload.size() >= json_stamp_bytes_min.
void write_json_stamp(std::span<std::byte> payload, const stamp& s) noexcept;
// Calls on_stamp(stamp) for every JSON stamp found in `text`, in order (an
// SSE event's JSON, or a batch of them, holds the payload's stamp); the
// number found.
template <typename OnStamp>
std::size_t for_each_json_stamp(std::string_view text, OnStamp&& on_stamp) noexcept;

// The schedule: message s at t0 + s / rate; from first_measured on measured.
struct schedule {
    std::int64_t t0_ns = 0;
    std::uint64_t rate = 1;
    std::uint64_t messages = 0;
    std::uint64_t first_measured = 0;

    [[nodiscard]] std::int64_t at_ns(std::uint64_t s) const noexcept {
        // s < received_messages_max (2^28): s * 10^9 fits in 64 bits.
        return t0_ns + static_cast<std::int64_t>(s * ns_per_s / rate);
    }
    static constexpr std::uint64_t ns_per_s = 1'000'000'000;
};
static_assert(received_messages_max <= UINT64_MAX / schedule::ns_per_s);

// One open-loop producer's state; the sink runs on its connection's thread.
struct alignas(64) open_loop_producer final : publish_sink {
    void on_published(std::uint64_t token, publish_outcome outcome,
                      std::string_view error_text) noexcept override;

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

using open_loop_producers = std::vector<std::unique_ptr<open_loop_producer>>;

// What every producer sends: the run's subject, projects, msg_id prefix and stamps.
struct open_loop_workload {
    std::string subject;
    std::vector<std::string> projects;  // message s goes to projects[s % size]
    std::string run_id;                 // msg_id `<run_id>-<s>`
    stamp_format format = stamp_format::binary;
};

// Sends producer p's share of the schedule, then flushes.
void produce(open_loop_producer& state, std::size_t p, const publish_scenario_options& load,
             const schedule& plan, const open_loop_workload& w, run_clock::time_point epoch);

// One connection per producer (load.producers, load.inflight, load.batch).
[[nodiscard]] std::expected<open_loop_producers, std::string> connect_producers(
    target& into, const publish_scenario_options& load);

// Waits for the producers; after stall_max without a resolved publish,
// closes their connections and records why.
void await_all(open_loop_producers& producers, std::chrono::milliseconds stall_max);

// Publish failures (their indexes, excused from the lost count) and the
// producers' counters into `r`. A publish acknowledged as a duplicate is an
// error too: every msg_id of the run is new.
[[nodiscard]] std::vector<std::uint64_t> account_publishes(run_result& r,
                                                           const open_loop_producers& producers);

// The latest actual send over the producers (after they have ended).
[[nodiscard]] std::int64_t last_send_ns(const open_loop_producers& producers) noexcept;

// ---- implementation of the template -------------------------------------------

namespace detail {
inline constexpr std::string_view json_seq_key = "\"nb_seq\":";
inline constexpr std::string_view json_time_key = "\"nb_t_ns\":";
// Parses the digits after `at` (spaces skipped); advances `at` past them.
bool parse_json_u64(std::string_view text, std::size_t& at, std::uint64_t& value) noexcept;
}  // namespace detail

template <typename OnStamp>
std::size_t for_each_json_stamp(std::string_view text, OnStamp&& on_stamp) noexcept {
    std::size_t found = 0;
    std::size_t at = 0;
    for (;;) {
        at = text.find(detail::json_seq_key, at);
        if (at == std::string_view::npos) return found;
        at += detail::json_seq_key.size();
        std::uint64_t index = 0;
        if (!detail::parse_json_u64(text, at, index)) continue;
        auto time_at = text.find(detail::json_time_key, at);
        if (time_at == std::string_view::npos) return found;
        time_at += detail::json_time_key.size();
        std::uint64_t scheduled_ns = 0;
        if (!detail::parse_json_u64(text, time_at, scheduled_ns)) continue;
        at = time_at;
        on_stamp(stamp{static_cast<std::int64_t>(scheduled_ns), index});
        ++found;
    }
}

}  // namespace nagare::bench
