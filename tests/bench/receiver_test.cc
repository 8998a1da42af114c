// delivery_tracker: what a receiver counts as first deliveries, repeats,
// foreign ids and missing messages.
#include "bench/receiver.h"

#include <vector>

#include <gtest/gtest.h>

namespace nagare::bench {
namespace {

TEST(DeliveryTracker, CountsFirstDeliveriesRepeatsAndForeignIds) {
    delivery_tracker t(130);  // three words, the last partly used
    EXPECT_TRUE(t.record(0));
    EXPECT_TRUE(t.record(64));
    EXPECT_TRUE(t.record(129));
    EXPECT_FALSE(t.record(64));
    EXPECT_FALSE(t.record(130));  // beyond the run
    EXPECT_EQ(t.fresh(), 3u);
    EXPECT_EQ(t.duplicates(), 1u);
    EXPECT_EQ(t.foreign(), 1u);
    EXPECT_TRUE(t.seen(129));
    EXPECT_FALSE(t.seen(1));
    EXPECT_FALSE(t.seen(130));
    EXPECT_EQ(t.missing(), 127u);
    EXPECT_EQ(t.first_missing(), 1u);
}

TEST(DeliveryTracker, MissingLeavesOutExcusedMessagesAndStopsAtTheEnd) {
    delivery_tracker t(70);
    for (std::uint64_t i = 0; i < 70; ++i) {
        if (i != 3 && i != 68) {
            EXPECT_TRUE(t.record(i));
        }
    }
    const std::vector<std::uint64_t> failed{3};
    EXPECT_EQ(t.missing(), 2u);
    EXPECT_EQ(t.missing(failed), 1u);
    EXPECT_EQ(t.first_missing(failed), 68u);
    EXPECT_TRUE(t.record(68));
    EXPECT_EQ(t.missing(failed), 0u);
    // Bits past the end of the last word are never "missing".
    EXPECT_FALSE(t.first_missing(failed).has_value());
}

TEST(DeliveryTracker, MergeCountsAMessageBothSawAsADuplicate) {
    delivery_tracker a(100);
    delivery_tracker b(100);
    for (std::uint64_t i = 0; i < 60; ++i) EXPECT_TRUE(a.record(i));
    for (std::uint64_t i = 50; i < 100; ++i) EXPECT_TRUE(b.record(i));
    EXPECT_FALSE(b.record(99));
    a.merge(b);
    EXPECT_EQ(a.fresh(), 100u);
    EXPECT_EQ(a.duplicates(), 10u + 1u);  // 50..59 seen by both, and b's own repeat
    EXPECT_EQ(a.missing(), 0u);
}

TEST(SubscriberOptions, ExpectedDeliveriesAndRequest) {
    subscriber_options o;
    o.consumers = 3;
    EXPECT_EQ(expected_deliveries(o, 10), 30u);  // ephemeral: each gets all
    const auto ephemeral = make_request(o, "r1", "s", "bench.x.t", start_position::new_only);
    EXPECT_TRUE(ephemeral.consumer.empty());
    EXPECT_EQ(ephemeral.start, start_position::new_only);
    o.durable = true;
    EXPECT_EQ(expected_deliveries(o, 10), 10u);  // shared
    EXPECT_EQ(make_request(o, "r1", "s", "bench.x.t", start_position::first).consumer, "bench-r1");
    EXPECT_TRUE(validate(o).has_value());
    o.max_inflight = 0;
    EXPECT_FALSE(validate(o).has_value());
}

}  // namespace
}  // namespace nagare::bench
