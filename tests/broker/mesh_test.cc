#include "broker/mesh.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace nagare::broker {
namespace {

TEST(Mesh, FullQueueRefusesAndDrainFreesRoom) {
    mesh m(2, 4);
    this_shard = 0;
    int accepted = 0;
    for (int i = 0; i < 10; ++i) accepted += m.push(shard_id{0}, shard_id{1}, {.value = 1}) ? 1 : 0;
    EXPECT_EQ(accepted, 4);
    this_shard = 1;
    std::vector<std::uint16_t> senders;
    EXPECT_EQ(m.drain(shard_id{1}, [&](const mesh_message& msg) { senders.push_back(msg.from); }, 3),
              3u);
    EXPECT_EQ(senders, (std::vector<std::uint16_t>{0, 0, 0}));
    this_shard = 0;
    EXPECT_TRUE(m.push(shard_id{0}, shard_id{1}, {}));
    this_shard = shards_max;
}

// Three shards on three threads send each other numbered messages (100,000 per pair);
// every queue delivers all of them, in order, exactly once.
TEST(Mesh, EveryPairDeliversInOrderAcrossThreads) {
    constexpr std::uint32_t shards = 3;
    constexpr std::uint64_t per_pair = 100'000;
    mesh m(shards, 1024);
    std::atomic<bool> failed{false};
    auto run = [&](std::uint32_t self) {
        this_shard = self;
        std::vector<std::uint64_t> next_send(shards, 0), next_recv(shards, 0);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        auto done = [&] {
            for (std::uint32_t o = 0; o < shards; ++o) {
                if (o != self && (next_send[o] < per_pair || next_recv[o] < per_pair)) return false;
            }
            return true;
        };
        while (!done() && std::chrono::steady_clock::now() < deadline) {
            for (std::uint32_t to = 0; to < shards; ++to) {
                if (to == self) continue;
                for (int burst = 0; burst < 64 && next_send[to] < per_pair; ++burst) {
                    if (!m.push(shard_id{self}, shard_id{to}, {.value = next_send[to]})) break;
                    ++next_send[to];
                }
            }
            m.drain(shard_id{self}, [&](const mesh_message& msg) {
                if (msg.value != next_recv[msg.from]++) failed = true;
            }, 256);
        }
        if (!done()) failed = true;
    };
    std::vector<std::thread> threads;
    for (std::uint32_t s = 0; s < shards; ++s) threads.emplace_back(run, s);
    for (auto& t : threads) t.join();
    EXPECT_FALSE(failed.load());
}

}  // namespace
}  // namespace nagare::broker
