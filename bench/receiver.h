// receiver: the receiving side of a scenario that checks what it gets —
// which of the run's messages (dense indexes 0 .. n-1) arrived, how often,
// when the last one came, and what went wrong — as a delivery_sink base
// that the consume and e2e scenarios complete with their on_delivered.
//
// Threads: record*() and the sink calls from the subscription's thread (one
// writer: plain load + store on the atomics); delivered(), last_delivery_ns()
// and errors() from any thread; everything else once the subscription is closed.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/limits.h"
#include "bench/measure.h"
#include "bench/report.h"
#include "bench/target.h"

namespace nagare::bench {

// Which of n messages were seen. Memory: n bits.
class delivery_tracker {
public:
    explicit delivery_tracker(std::uint64_t n) : _n(n), _bits((n + 63) / 64, 0) {}

    // True the first time `index` is seen; a repeat counts as a duplicate,
    // an index >= n as foreign.
    bool record(std::uint64_t index) noexcept;
    void record_foreign() noexcept { _foreign += 1; }

    // Adds another tracker's messages: one both saw is a duplicate (a shared
    // durable consumer gives each message to one subscriber).
    void merge(const delivery_tracker& other) noexcept;

    [[nodiscard]] std::uint64_t size() const noexcept { return _n; }
    [[nodiscard]] bool seen(std::uint64_t index) const noexcept {
        return index < _n && (_bits[index / 64] >> (index % 64) & 1) != 0;
    }
    [[nodiscard]] std::uint64_t fresh() const noexcept { return _fresh; }
    [[nodiscard]] std::uint64_t duplicates() const noexcept { return _duplicates; }
    [[nodiscard]] std::uint64_t foreign() const noexcept { return _foreign; }
    // Indexes never seen, not counting those in `excused` (messages whose
    // publish failed); the first of them.
    [[nodiscard]] std::uint64_t missing(std::span<const std::uint64_t> excused = {}) const noexcept;
    [[nodiscard]] std::optional<std::uint64_t> first_missing(
        std::span<const std::uint64_t> excused = {}) const;

private:
    std::uint64_t _n;
    std::vector<std::uint64_t> _bits;
    std::uint64_t _fresh = 0;
    std::uint64_t _duplicates = 0;
    std::uint64_t _foreign = 0;
};

class receiver : public delivery_sink {
public:
    receiver(run_clock::time_point epoch, std::uint64_t messages)
        : tracker(messages), _epoch(epoch) {}
    virtual ~receiver() = default;
    receiver(const receiver&) = delete;
    receiver& operator=(const receiver&) = delete;

    void on_subscription_error(std::string_view error_text) noexcept override { fail(error_text); }

    // Counts an error; keeps the first text.
    void fail(std::string_view text) noexcept;

    [[nodiscard]] std::uint64_t delivered() const noexcept {
        return _delivered.load(std::memory_order_relaxed);
    }
    // Messages of the run delivered for the first time (tracker.fresh(), readable while running).
    [[nodiscard]] std::uint64_t first_deliveries() const noexcept {
        return _first_deliveries.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::int64_t last_delivery_ns() const noexcept {
        return _last_delivery_ns.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::uint64_t errors() const noexcept {
        return _errors.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::string first_error() const;

    delivery_tracker tracker;  // written by the sink side only
    std::unique_ptr<subscription> sub;

protected:
    // Records a delivery of message `index` (nullopt: not one of the run's)
    // at `now_ns` since the epoch; true the first time.
    bool record(std::optional<std::uint64_t> index, std::int64_t now_ns) noexcept;
    [[nodiscard]] std::int64_t now_ns() const noexcept { return since_ns(_epoch); }

private:
    run_clock::time_point _epoch;
    std::atomic<std::uint64_t> _delivered{0};  // every delivery, repeats included
    std::atomic<std::uint64_t> _first_deliveries{0};
    std::atomic<std::int64_t> _last_delivery_ns{0};
    std::atomic<std::uint64_t> _errors{0};
    mutable std::mutex _error_mutex;
    std::string _first_error;
};

// The receivers of a run. Its destructor closes every subscription first,
// so no sink call outlives its receiver whatever path the scenario took.
class receivers : public std::vector<std::unique_ptr<receiver>> {
public:
    receivers() = default;
    ~receivers();
    receivers(const receivers&) = delete;
    receivers& operator=(const receivers&) = delete;
};

// The receiving side of a run: --consumers subscribers, each its own
// connection; durable: they share one durable consumer `bench-<run>` (each
// message to one of them; removed after the run), else each has its own
// ephemeral consumer (every message to each).
struct subscriber_options {
    std::size_t consumers = 1;
    bool durable = false;
    ack_mode ack = ack_mode::explicit_each;
    std::size_t max_inflight = 1024;  // unacknowledged per subscriber (nagare: per partition)
    // The run ends with an error when no message arrived for this long.
    std::chrono::milliseconds idle_max = receive_idle_max;
};

[[nodiscard]] std::expected<void, std::string> validate(const subscriber_options& options);

// Deliveries the run expects of `messages` stored ones.
[[nodiscard]] std::uint64_t expected_deliveries(const subscriber_options& options,
                                                std::uint64_t messages) noexcept;

// The request for subscribers of `run_id` on `subject`.
[[nodiscard]] subscribe_request make_request(const subscriber_options& options,
                                             const std::string& run_id, std::string stream,
                                             std::string subject, start_position start);

// consumers, consumer (its name or "ephemeral"), ack, max_inflight.
void add_parameters(std::vector<parameter>& into, const subscriber_options& options,
                    const subscribe_request& request);

// Subscribes every receiver; on failure closes those opened.
[[nodiscard]] std::expected<void, std::string> subscribe_all(target& into,
                                                             const subscribe_request& request,
                                                             receivers& all);

// Removes the durable consumer of `request` (none for an ephemeral one); a
// failure counts an error on the first receiver.
void remove_consumer(target& into, const subscribe_request& request, receivers& all);

// Sums over the receivers.
[[nodiscard]] std::uint64_t first_deliveries(const receivers& all) noexcept;
[[nodiscard]] std::int64_t last_delivery_ns(const receivers& all) noexcept;

// Polls the receivers (every coordinator_poll) until they have `expected`
// first deliveries in all, or no delivery came for idle_max;
// `on_poll(first deliveries so far)` runs at each poll. True when complete.
[[nodiscard]] bool await_deliveries(const receivers& all, std::uint64_t expected,
                                    std::chrono::milliseconds idle_max,
                                    const std::function<void(std::uint64_t)>& on_poll);

// Adds to `r` the receivers' errors and target counters, and what they lost
// (messages of the run never delivered, less `excused`: publishes that
// failed) and received twice or from another run (errors). `shared`: the
// receivers split one consumer's messages (merged, a message both got is
// a duplicate); else each was to receive every message.
void account_deliveries(run_result& r, receivers& all, bool shared,
                        std::span<const std::uint64_t> excused = {});

// "no delivery for 10000 ms: 12 of 20 messages delivered".
[[nodiscard]] std::string stalled_text(std::chrono::milliseconds idle_max, std::uint64_t expected,
                                       std::uint64_t delivered);

// Closes every receiver's subscription after waiting (ack_drain_wait at
// most, in all) for its acks to be written; a subscription whose acks were
// not written counts an error on its receiver.
void drain_and_close(receivers& all);

}  // namespace nagare::bench
