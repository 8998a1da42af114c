#include "broker/publish_tracker.h"

#include <gtest/gtest.h>

#include <random>

namespace nagare::broker {
namespace {

namespace fb = protocol::fb;

fb::PubAckEntry entry(std::uint64_t offset) {
    return fb::PubAckEntry(offset, 0, 0, fb::ErrorCode::NONE, false);
}

std::unique_ptr<fb::PubAckT> decode(std::span<const std::byte> bytes) {
    protocol::frame_decoder decoder;
    std::unique_ptr<fb::PubAckT> out;
    EXPECT_TRUE(decoder.feed(bytes, [&](const protocol::frame_view& f) {
        out.reset(f.as<fb::PubAck>()->UnPack());
    }));
    return out;
}

TEST(PublishTracker, AcksLeaveInRequestOrderWhateverTheResolveOrder) {
    publish_tracker t(8192, 16);
    protocol::frame_encoder enc;
    const auto a = *t.begin(100, 3, nullptr);
    const auto b = *t.begin(101, 2, nullptr);
    EXPECT_TRUE(t.resolve(b | 0, entry(10)));
    EXPECT_TRUE(t.resolve(b | 1, entry(11)));
    EXPECT_FALSE(t.front_ready());  // request 100 is older and unresolved
    EXPECT_TRUE(t.resolve(a | 2, entry(2)));
    EXPECT_TRUE(t.resolve(a | 0, entry(0)));
    EXPECT_FALSE(t.front_ready());
    EXPECT_TRUE(t.resolve(a | 1, entry(1)));
    ASSERT_TRUE(t.front_ready());
    auto first = decode(t.encode_front(enc));
    EXPECT_EQ(first->request_id, 100u);
    ASSERT_EQ(first->entries.size(), 3u);
    EXPECT_EQ(first->entries[2].offset(), 2u);
    t.pop_front();
    ASSERT_TRUE(t.front_ready());
    auto second = decode(t.encode_front(enc));
    EXPECT_EQ(second->request_id, 101u);
    EXPECT_EQ(second->entries[1].offset(), 11u);
    t.pop_front();
    EXPECT_EQ(t.pending_messages(), 0u);
}

TEST(PublishTracker, FullTrackerRefusesAndStaleTicketsAreDropped) {
    publish_tracker t(4096, 2);
    const auto a = *t.begin(1, 4000, nullptr);
    EXPECT_FALSE(t.begin(2, 200, nullptr).has_value());  // entries
    const auto b = *t.begin(3, 10, nullptr);
    EXPECT_FALSE(t.begin(4, 1, nullptr).has_value());  // requests
    for (std::uint32_t i = 0; i < 4000; ++i) ASSERT_TRUE(t.resolve(a | i, entry(i)));
    t.pop_front();
    EXPECT_FALSE(t.resolve(a | 5, entry(5)));  // request gone
    EXPECT_FALSE(t.resolve(b | 10, entry(5)));  // index out of the request
    EXPECT_TRUE(t.resolve(b | 9, entry(9)));
}

TEST(PublishTracker, WrappedRequestsEncodeContiguously) {
    publish_tracker t(4096 + 100, 4);
    protocol::frame_encoder enc;
    std::mt19937 rng(5);
    std::uint64_t next_offset = 0;
    std::uint64_t expected_offset = 0;
    for (int round = 0; round < 200; ++round) {
        const auto n = static_cast<std::uint32_t>(1 + rng() % 3000);
        const auto base = *t.begin(static_cast<std::uint64_t>(round), n, nullptr);
        for (std::uint32_t i = 0; i < n; ++i) ASSERT_TRUE(t.resolve(base | i, entry(next_offset++)));
        auto ack = decode(t.encode_front(enc));
        ASSERT_EQ(ack->entries.size(), n);
        for (const auto& e : ack->entries) ASSERT_EQ(e.offset(), expected_offset++);
        t.pop_front();
    }
}

}  // namespace
}  // namespace nagare::broker
