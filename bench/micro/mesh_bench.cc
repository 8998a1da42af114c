// The shard mesh (broker/mesh.h): one hop of a mesh_message from shard 0 to
// shard 1 on two threads, as the broker's forwards and delivery jobs travel.
//  - hop: the sender pushes (retrying while the 4,096-slot queue is full),
//    the receiver thread drains in bursts of 256 like a shard loop turn;
//    items/s counts messages that arrived. Both threads spin: this is the
//    queue's cost, not a wake-up's (broker/io/waker.h).
//  - push+drain on one thread: the cost without cache-line transfers.
#include <atomic>
#include <cstdint>
#include <thread>

#include <benchmark/benchmark.h>

#include "broker/mesh.h"

namespace nagare::broker {
namespace {

void BM_MeshHopTwoThreads(benchmark::State& state) {
    mesh m(2);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> received{0};
    std::thread receiver([&] {
        this_shard = 1;
        std::uint64_t n = 0;
        std::uint64_t checksum = 0;
        while (!stop.load(std::memory_order_relaxed)) {
            n += m.drain(shard_id{1}, [&](const mesh_message& msg) { checksum += msg.value; }, 256);
            received.store(n, std::memory_order_relaxed);
        }
        n += m.drain(shard_id{1}, [&](const mesh_message& msg) { checksum += msg.value; }, 1u << 20);
        received.store(n, std::memory_order_release);
        benchmark::DoNotOptimize(checksum);
    });
    this_shard = 0;
    std::uint64_t sent = 0;
    for (auto _ : state) {
        const mesh_message msg{1, 0, 0, nullptr, sent};
        while (!m.push(shard_id{0}, shard_id{1}, msg)) {
        }
        ++sent;
    }
    // Count what arrived (the last pushes are drained before the clock stops).
    while (received.load(std::memory_order_acquire) < sent) {
    }
    stop.store(true);
    receiver.join();
    this_shard = shards_max;
    state.SetItemsProcessed(static_cast<std::int64_t>(sent));
}
BENCHMARK(BM_MeshHopTwoThreads)->UseRealTime();

void BM_MeshPushDrainOneThread(benchmark::State& state) {
    mesh m(2);
    std::uint64_t checksum = 0;
    std::uint64_t n = 0;
    for (auto _ : state) {
        this_shard = 0;
        for (std::uint64_t i = 0; i < 256; ++i) (void)m.push(shard_id{0}, shard_id{1}, mesh_message{1, 0, 0, nullptr, i});
        this_shard = 1;
        n += m.drain(shard_id{1}, [&](const mesh_message& msg) { checksum += msg.value; }, 256);
    }
    this_shard = shards_max;
    benchmark::DoNotOptimize(checksum);
    state.SetItemsProcessed(static_cast<std::int64_t>(n));
}
BENCHMARK(BM_MeshPushDrainOneThread);

}  // namespace
}  // namespace nagare::broker
