// Subscriptions against the real nagared over raw frames: delivery, acks,
// redelivery, dead letters, flow control, replay, shared consumers,
// persistence, bad input (issue 5).
#include <gtest/gtest.h>

#include <set>

#include "tests/system/subscription_support.h"

namespace nagare::testing {
namespace {

using ms = std::chrono::milliseconds;

std::vector<std::array<std::string, 3>> spread(std::size_t count, std::size_t projects,
                                               const std::string& subject = "task.updated") {
    std::vector<std::array<std::string, 3>> out;
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back({"p" + std::to_string(i % projects), subject, "n" + std::to_string(i)});
    }
    return out;
}

// Every message reaches the consumer once, in per-project order, when it acks everything.
TEST(Subscribe, EveryMessageOnceInProjectOrderAcrossShards) {
    const auto dir = temp_dir("sub-once");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    raw_client producer(broker.port());
    ASSERT_TRUE(producer.hello());
    raw_client consumer(broker.port());
    ASSERT_TRUE(consumer.hello());

    constexpr std::size_t total = 20'000;
    ASSERT_TRUE(publish_messages(producer, spread(total / 2, 1000)));
    ASSERT_TRUE(send_subscribe(consumer, subscribe_all(1)));
    std::vector<delivered> got;
    ASSERT_TRUE(await_sub_ok(consumer, 1, nullptr, &got));
    ASSERT_TRUE(publish_messages(producer, spread(total / 2, 1000), "late"));
    std::map<std::string, std::uint64_t> last_offset;  // per project
    std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
    const auto t0 = std::chrono::steady_clock::now();
    while (seen.size() < total && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
        auto batch = receive(consumer, 1, ms(5000));
        if (batch.empty()) break;
        got.insert(got.end(), batch.begin(), batch.end());
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            EXPECT_TRUE(seen.emplace(d.partition, d.offset).second) << "twice: " << d.partition << ":" << d.offset;
            EXPECT_EQ(d.delivery_count, 1u);
            if (auto it = last_offset.find(d.project); it != last_offset.end()) {
                EXPECT_LT(it->second, d.offset) << "out of order in " << d.project;
            }
            last_offset[d.project] = d.offset;
            acks.emplace_back(d.partition, d.offset);
        }
        got.clear();
        ASSERT_TRUE(send_ack(consumer, 1, fb::AckKind::ACK, acks));
    }
    EXPECT_EQ(seen.size(), total);
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::testing
