#include "protocol/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace nagare::protocol {
namespace {

TEST(Histogram, SmallValuesAreExact) {
    latency_histogram h;
    for (std::uint64_t v = 0; v < 64; ++v) h.record(v);
    EXPECT_EQ(h.count(), 64u);
    EXPECT_EQ(h.percentile(50), 31u);
    EXPECT_EQ(h.percentile(100), 63u);
    EXPECT_EQ(h.min(), 0u);
}

TEST(Histogram, EveryValueLandsInABucketThatHoldsIt) {
    std::mt19937_64 rng(9);
    for (int i = 0; i < 100'000; ++i) {
        const std::uint64_t v = rng() >> (rng() % 64);
        const auto index = latency_histogram::index_of(v);
        ASSERT_LT(index, latency_histogram::bucket_count);
        const auto high = latency_histogram::highest_equivalent(index);
        ASSERT_GE(high, v);
        ASSERT_LE(high - v, v / 32 + 1) << v;  // within about 3%
        if (index > 0) {
            ASSERT_LT(latency_histogram::highest_equivalent(index - 1), v) << v;
        }
    }
}

TEST(Histogram, PercentilesMatchSortedValuesWithinPrecision) {
    std::mt19937_64 rng(3);
    std::lognormal_distribution<double> dist(11.0, 1.0);  // ~60 µs median, long tail
    std::vector<std::uint64_t> values;
    latency_histogram h;
    for (int i = 0; i < 200'000; ++i) {
        const auto v = static_cast<std::uint64_t>(dist(rng));
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (const double p : {50.0, 90.0, 99.0, 99.9}) {
        const auto exact = values[static_cast<std::size_t>(p / 100.0 * static_cast<double>(values.size())) - 1];
        const auto got = h.percentile(p);
        EXPECT_NEAR(static_cast<double>(got), static_cast<double>(exact),
                    static_cast<double>(exact) * 0.04 + 2) << p;
    }
    EXPECT_EQ(h.percentile(100), values.back());
    EXPECT_EQ(h.max(), values.back());
}

TEST(Histogram, CorrectionFillsTheMissedRequests) {
    latency_histogram h;
    h.record_corrected(1000, 100);  // 1000, 900, ..., 100
    EXPECT_EQ(h.count(), 10u);
    EXPECT_EQ(h.min(), 100u);
    latency_histogram merged;
    merged.merge(h);
    merged.merge(h);
    EXPECT_EQ(merged.count(), 20u);
    merged.reset();
    EXPECT_EQ(merged.count(), 0u);
    EXPECT_EQ(merged.percentile(99), 0u);
}

}  // namespace
}  // namespace nagare::protocol
