#include "client/index_ring.h"

#include <deque>
#include <random>

#include <gtest/gtest.h>

namespace nagare::client {
namespace {

TEST(IndexRing, FifoWithPushFront) {
    index_ring ring(4);
    ring.push_back(1);
    ring.push_back(2);
    ring.push_front(0);
    EXPECT_EQ(ring.size(), 3u);
    EXPECT_EQ(ring.pop_front(), 0u);
    EXPECT_EQ(ring.pop_front(), 1u);
    EXPECT_EQ(ring.pop_front(), 2u);
    EXPECT_TRUE(ring.empty());
}

TEST(IndexRing, MatchesADequeOverWrapAround) {
    index_ring ring(7);
    std::deque<std::uint32_t> model;
    std::mt19937 rng(7);
    for (std::uint32_t i = 0; i < 10'000; ++i) {
        const auto op = rng() % 3;
        if (op == 0 && model.size() < ring.capacity()) {
            ring.push_back(i);
            model.push_back(i);
        } else if (op == 1 && model.size() < ring.capacity()) {
            ring.push_front(i);
            model.push_front(i);
        } else if (!model.empty()) {
            ASSERT_EQ(ring.front(), model.front());
            ASSERT_EQ(ring.pop_front(), model.front());
            model.pop_front();
        }
        ASSERT_EQ(ring.size(), model.size());
    }
}

TEST(IndexRingDeathTest, OverflowAborts) {
    index_ring ring(1);
    ring.push_back(1);
    EXPECT_DEATH(ring.push_back(2), "index_ring overflow");
    EXPECT_DEATH(ring.push_front(2), "index_ring overflow");
}

}  // namespace
}  // namespace nagare::client
