// msg_id_lru: window expiry, capacity eviction (counted), growth, and a model
// check of the open-addressing table against std::map over random operations.
#include "client/msg_id_lru.h"

#include <deque>
#include <map>
#include <random>

#include <gtest/gtest.h>

namespace nagare::client {
namespace {

using namespace std::chrono_literals;
using clock = msg_id_lru::clock;

TEST(MsgIdLru, RemembersWithinTheWindowAndForgetsAfter) {
    msg_id_lru lru(100, 30s);
    const auto t0 = clock::time_point{} + 1h;
    lru.insert(msg_key_of("a"), 0, t0);
    lru.insert(msg_key_of("b"), 3, t0 + 10s);
    EXPECT_EQ(lru.find(msg_key_of("a"), t0 + 29s), std::optional<std::uint8_t>{0});
    EXPECT_EQ(lru.find(msg_key_of("b"), t0 + 29s), std::optional<std::uint8_t>{3});
    EXPECT_FALSE(lru.find(msg_key_of("c"), t0 + 29s).has_value());
    EXPECT_FALSE(lru.find(msg_key_of("a"), t0 + 30s).has_value()) << "a's window is up";
    EXPECT_TRUE(lru.find(msg_key_of("b"), t0 + 30s).has_value());
    EXPECT_EQ(lru.size(), 1u);
    EXPECT_FALSE(lru.find(msg_key_of("b"), t0 + 40s).has_value());
    EXPECT_EQ(lru.size(), 0u);
    EXPECT_EQ(lru.evicted_early(), 0u);
}

TEST(MsgIdLru, ARepeatKeepsItsFirstTimeAndValue) {
    msg_id_lru lru(10, 30s);
    const auto t0 = clock::time_point{} + 1h;
    lru.insert(msg_key_of("a"), 1, t0);
    lru.insert(msg_key_of("a"), 2, t0 + 20s);
    EXPECT_EQ(lru.size(), 1u);
    EXPECT_EQ(lru.find(msg_key_of("a"), t0 + 25s), std::optional<std::uint8_t>{1});
    EXPECT_FALSE(lru.find(msg_key_of("a"), t0 + 31s).has_value());
}

TEST(MsgIdLru, AFullLruForgetsItsOldestEarlyAndCountsIt) {
    msg_id_lru lru(3000, 30s);
    const auto t0 = clock::time_point{} + 1h;
    for (int i = 0; i < 5000; ++i) lru.insert(msg_key_of("id-" + std::to_string(i)), 0, t0);
    EXPECT_EQ(lru.size(), 3000u);
    EXPECT_EQ(lru.capacity(), 3000u) << "grew by doubling, capped at entries_max";
    EXPECT_EQ(lru.evicted_early(), 2000u);
    EXPECT_FALSE(lru.find(msg_key_of("id-1999"), t0).has_value());
    for (int i = 2000; i < 5000; ++i) {
        ASSERT_TRUE(lru.find(msg_key_of("id-" + std::to_string(i)), t0).has_value()) << i;
    }
}

TEST(MsgIdLru, KeysAre128BitHashesOfTheBytes) {
    EXPECT_EQ(msg_key_of("order-42"), msg_key_of(std::string("order-42")));
    EXPECT_NE(msg_key_of("order-42"), msg_key_of("order-43"));
    EXPECT_NE(msg_key_of("a").high, 0u);
}

// Slots compare a 32-bit tag (the key's low 32 bits) before the full key:
// keys that share the tag, or all 64 low bits, or only their home slot, are
// told apart, and evicting one leaves the others findable.
TEST(MsgIdLru, KeysSharingTheirTagOrHomeStayApart) {
    msg_id_lru lru(4, 30s);
    const auto t0 = clock::time_point{} + 1h;
    const msg_key same_low_a{0x1234'5678'0000'0007, 1};
    const msg_key same_low_b{0x1234'5678'0000'0007, 2};
    const msg_key same_tag{0x9999'0000'0000'0007, 1};
    const msg_key same_home{0x0000'0000'0001'0007, 1};  // another tag, the same low bits
    lru.insert(same_low_a, 1, t0);
    lru.insert(same_low_b, 2, t0);
    lru.insert(same_tag, 3, t0);
    lru.insert(same_home, 4, t0);
    EXPECT_EQ(lru.find(same_low_a, t0), std::optional<std::uint8_t>{1});
    EXPECT_EQ(lru.find(same_low_b, t0), std::optional<std::uint8_t>{2});
    EXPECT_EQ(lru.find(same_tag, t0), std::optional<std::uint8_t>{3});
    EXPECT_EQ(lru.find(same_home, t0), std::optional<std::uint8_t>{4});
    EXPECT_FALSE(lru.find(msg_key{0x1234'5678'0000'0007, 3}, t0).has_value());
    // A fifth key evicts the oldest (same_low_a); the probe run is shifted back.
    lru.insert(msg_key{0x7, 9}, 5, t0);
    EXPECT_FALSE(lru.find(same_low_a, t0).has_value());
    EXPECT_EQ(lru.find(same_low_b, t0), std::optional<std::uint8_t>{2});
    EXPECT_EQ(lru.find(same_tag, t0), std::optional<std::uint8_t>{3});
    EXPECT_EQ(lru.find(same_home, t0), std::optional<std::uint8_t>{4});
    EXPECT_EQ(lru.find(msg_key{0x7, 9}, t0), std::optional<std::uint8_t>{5});
    EXPECT_EQ(lru.evicted_early(), 1u);
}

// Random inserts and lookups with time moving forward, checked against a
// model (a map plus an insertion-ordered queue), across growth and
// wrap-around of the ring, including keys forced into one probe run.
TEST(MsgIdLru, MatchesAModelOverRandomOperations) {
    for (const bool colliding : {false, true}) {
        msg_id_lru lru(700, 50ms);
        std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint8_t> model;
        std::deque<std::pair<msg_key, clock::time_point>> order;
        std::mt19937_64 rng(colliding ? 11 : 7);
        auto now = clock::time_point{} + 1h;
        const auto key_for = [&](std::uint64_t n) {
            auto k = msg_key_of("k" + std::to_string(n));
            if (colliding) k.low = (k.low & ~std::uint64_t{0xfff}) | (n % 3);  // crowd few homes
            return k;
        };
        for (int step = 0; step < 200'000; ++step) {
            now += std::chrono::microseconds(rng() % 20);
            while (!order.empty() && now - order.front().second >= 50ms) {
                model.erase({order.front().first.low, order.front().first.high});
                order.pop_front();
            }
            const auto key = key_for(rng() % 3000);
            if (rng() % 2 == 0) {
                const auto value = static_cast<std::uint8_t>(rng() % 4);
                lru.insert(key, value, now);
                if (model.emplace(std::pair{key.low, key.high}, value).second) {
                    order.emplace_back(key, now);
                    if (order.size() > 700) {
                        model.erase({order.front().first.low, order.front().first.high});
                        order.pop_front();
                    }
                }
            } else {
                const auto found = lru.find(key, now);
                const auto expected = model.find({key.low, key.high});
                ASSERT_EQ(found.has_value(), expected != model.end()) << "step " << step;
                if (found) {
                    ASSERT_EQ(*found, expected->second);
                }
            }
            ASSERT_EQ(lru.size(), model.size()) << "step " << step;
        }
    }
}

}  // namespace
}  // namespace nagare::client
