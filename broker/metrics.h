// Per-shard counters for GET /metrics. Each is written by its shard only
// (a relaxed load + store: no locked instruction on the data path) and read
// by the admin thread with relaxed loads.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace nagare::broker {

class counter {
public:
    void add(std::uint64_t n = 1) noexcept {
        _value.store(_value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(std::uint64_t n) noexcept { _value.store(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t get() const noexcept {
        return _value.load(std::memory_order_relaxed);
    }

private:
    std::atomic<std::uint64_t> _value{0};
};

// Power-of-two buckets of microseconds: bucket i counts values < 2^i µs
// (and >= 2^(i-1)); the last bucket takes everything above.
class latency_buckets {
public:
    static constexpr std::size_t count = 24;  // up to ~8 s
    void record_ns(std::uint64_t ns) noexcept {
        const std::uint64_t us = ns / 1000;
        const auto i = us == 0 ? 0u : static_cast<unsigned>(std::bit_width(us));
        _buckets[i < count ? i : count - 1].add();
        _sum_ns.add(ns);
    }
    [[nodiscard]] std::uint64_t bucket(std::size_t i) const noexcept { return _buckets[i].get(); }
    [[nodiscard]] std::uint64_t sum_ns() const noexcept { return _sum_ns.get(); }

private:
    std::array<counter, count> _buckets;
    counter _sum_ns;
};

struct shard_probe {
    counter connections_accepted;
    counter connections_open;
    counter publishes;           // messages stored (not duplicates)
    counter publish_bytes;       // payload bytes of those
    counter publish_errors;      // messages answered with an error
    counter duplicates;          // messages answered duplicate=true
    counter forwards_sent;       // messages sent to another shard's partition
    counter forwards_received;
    counter loop_turns;
    counter busy_ns;             // time outside io_uring_enter
    counter stalls;              // sessions that had to stop reading
    latency_buckets fsync_latency;  // write start to durable, per partition write
    latency_buckets loop_turn_busy;  // busy time of each loop turn (dispatch to the next enter)
    counter delivered_frames;     // Deliver frames built for subscribers
    counter consumer_save_errors; // consumer state saves that failed
    counter acks;                 // ack positions applied
    counter dead_letters;         // messages copied to a dead-letter stream
};

}  // namespace nagare::broker
