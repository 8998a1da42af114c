#include "storage/tail_cache.h"

#include <algorithm>
#include <cstddef>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/protocol/alloc_counter.h"
#include "tests/storage/test_records.h"

namespace nagare::storage {
namespace {

struct batch {
    offset base{};
    offset end{};
    std::vector<std::byte> bytes;
};

// One sealed batch of `records` records at `base`, about `bytes` long.
batch make_batch(offset base, std::uint32_t records, std::size_t bytes) {
    std::vector<std::byte> buffer(bytes + 256 * records + batch_header_bytes);
    batch_builder builder(buffer);
    EXPECT_TRUE(builder.open(base));
    const std::size_t payload_bytes =
        std::max<std::size_t>(batch_header_bytes + 64 * records, bytes) / records - 60;
    const std::vector<std::byte> payload(payload_bytes, std::byte{0x5a});
    for (std::uint32_t i = 0; i < records; ++i) {
        const std::string msg_id = "id-" + std::to_string(base.value + i);
        EXPECT_TRUE(builder.add({"p", "task.done", msg_id, {}, payload}, 1000 + i));
    }
    const auto sealed = builder.seal();
    return {base, offset{base.value + records}, {sealed.begin(), sealed.end()}};
}

bool same(std::span<const std::byte> got, const batch& want) {
    return std::equal(got.begin(), got.end(), want.bytes.begin(), want.bytes.end());
}

TEST(TailCache, FindsTheBatchHoldingEachCachedOffset) {
    tail_cache cache(64 * kib);
    EXPECT_TRUE(cache.empty());
    EXPECT_TRUE(cache.find(offset{0}).empty());
    std::vector<batch> batches;
    offset next{100};  // any base starts an empty cache
    for (int i = 0; i < 20; ++i) {
        batches.push_back(make_batch(next, 1 + static_cast<std::uint32_t>(i % 4), 300));
        next = batches.back().end;
        cache.append(batches.back().bytes);
    }
    EXPECT_EQ(cache.first_offset(), offset{100});
    EXPECT_EQ(cache.end_offset(), next);
    EXPECT_EQ(cache.batch_count(), 20u);
    for (const auto& b : batches) {
        for (auto o = b.base.value; o < b.end.value; ++o) {
            ASSERT_TRUE(same(cache.find(offset{o}), b)) << o;
            ASSERT_TRUE(cache.contains(offset{o}));
        }
    }
    EXPECT_TRUE(cache.find(offset{99}).empty());
    EXPECT_TRUE(cache.find(next).empty());
    EXPECT_FALSE(cache.contains(next));
}

TEST(TailCache, ZeroCapacityKeepsNothing) {
    tail_cache cache(0);
    EXPECT_EQ(cache.batches_max(), 0u);
    const auto b = make_batch(offset{0}, 2, 200);
    cache.append(b.bytes);
    EXPECT_TRUE(cache.empty());
    EXPECT_TRUE(cache.find(offset{0}).empty());
    std::vector<std::byte> buffer(1024);
    EXPECT_EQ(cache.copy(offset{0}, offset{10}, buffer).bytes, 0u);
}

TEST(TailCache, EvictsTheOldestBatchesToMakeRoom) {
    tail_cache cache(4 * kib);
    std::vector<batch> batches;
    offset next{0};
    for (int i = 0; i < 12; ++i) {
        batches.push_back(make_batch(next, 2, 1000));
        next = batches.back().end;
        cache.append(batches.back().bytes);
        EXPECT_LE(cache.cached_bytes(), cache.capacity_bytes());
    }
    // ~1 KiB batches in a 4 KiB ring: the newest three or four stay.
    EXPECT_EQ(cache.end_offset(), next);
    EXPECT_GE(cache.batch_count(), 3u);
    EXPECT_LE(cache.batch_count(), 4u);
    const auto kept = batches.size() - cache.batch_count();
    EXPECT_EQ(cache.first_offset(), batches[kept].base);
    for (std::size_t i = 0; i < batches.size(); ++i) {
        const auto found = cache.find(batches[i].base);
        if (i < kept) {
            EXPECT_TRUE(found.empty()) << i;
        } else {
            EXPECT_TRUE(same(found, batches[i])) << i;
        }
    }
}

TEST(TailCache, ABatchThatDoesNotFitAtTheEndWrapsWhole) {
    tail_cache cache(4 * kib);
    const auto a = make_batch(offset{0}, 1, 1500);
    const auto b = make_batch(a.end, 1, 1500);
    const auto c = make_batch(b.end, 1, 1500);  // 3 x 1.5 KiB > 4 KiB: c goes to the start
    for (const auto* x : {&a, &b, &c}) cache.append(x->bytes);
    EXPECT_EQ(cache.first_offset(), b.base);  // a was where c went
    EXPECT_TRUE(same(cache.find(b.base), b));
    EXPECT_TRUE(same(cache.find(c.base), c));
    EXPECT_EQ(cache.find(c.base).data(), cache.find(b.base).data() - b.bytes.size());
    const auto d = make_batch(c.end, 1, 1500);  // fits after c only once b is gone
    cache.append(d.bytes);
    EXPECT_EQ(cache.first_offset(), c.base);
    EXPECT_TRUE(same(cache.find(c.base), c));
    EXPECT_TRUE(same(cache.find(d.base), d));
}

TEST(TailCache, AGapOrAnOverlapClearsItFirst) {
    tail_cache cache(64 * kib);
    const auto a = make_batch(offset{0}, 10, 500);
    const auto b = make_batch(offset{10}, 10, 500);
    cache.append(a.bytes);
    cache.append(b.bytes);
    const auto after_gap = make_batch(offset{25}, 5, 500);
    cache.append(after_gap.bytes);
    EXPECT_EQ(cache.first_offset(), offset{25});
    EXPECT_EQ(cache.end_offset(), offset{30});
    EXPECT_EQ(cache.batch_count(), 1u);
    EXPECT_TRUE(cache.find(offset{5}).empty());
    const auto overlap = make_batch(offset{28}, 4, 500);  // a rewrite after a truncate
    cache.append(overlap.bytes);
    EXPECT_EQ(cache.first_offset(), offset{28});
    EXPECT_EQ(cache.end_offset(), offset{32});
    EXPECT_TRUE(same(cache.find(offset{28}), overlap));
}

TEST(TailCache, ABatchLargerThanTheCacheClearsItAndIsNotKept) {
    tail_cache cache(4 * kib);
    const auto small = make_batch(offset{0}, 2, 1000);
    const auto large = make_batch(offset{2}, 4, 5000);
    ASSERT_GT(large.bytes.size(), cache.capacity_bytes());
    cache.append(small.bytes);
    cache.append(large.bytes);
    EXPECT_TRUE(cache.empty());
    EXPECT_EQ(cache.cached_bytes(), 0u);
    EXPECT_TRUE(cache.find(offset{0}).empty());
    EXPECT_TRUE(cache.find(offset{3}).empty());
    const auto next = make_batch(offset{6}, 1, 500);  // continues where the large one ended
    cache.append(next.bytes);
    EXPECT_EQ(cache.first_offset(), offset{6});
    EXPECT_TRUE(same(cache.find(offset{6}), next));
}

TEST(TailCache, AFullIndexEvictsByCount) {
    tail_cache cache(4 * kib);
    ASSERT_EQ(cache.batches_max(), 8u);  // 4 KiB / 512
    offset next{0};
    std::vector<batch> batches;
    for (int i = 0; i < 20; ++i) {
        batches.push_back(make_batch(next, 1, 100));
        next = batches.back().end;
        cache.append(batches.back().bytes);
    }
    EXPECT_EQ(cache.batch_count(), 8u);
    EXPECT_EQ(cache.first_offset(), batches[12].base);
    for (std::size_t i = 12; i < 20; ++i)
        EXPECT_TRUE(same(cache.find(batches[i].base), batches[i]));
}

TEST(TailCache, DropBeforeAndClear) {
    tail_cache cache(64 * kib);
    for (std::uint64_t base = 0; base < 50; base += 5) {
        cache.append(make_batch(offset{base}, 5, 300).bytes);
    }
    cache.drop_before(offset{12});  // the batch [10, 15) starts below it
    EXPECT_EQ(cache.first_offset(), offset{15});
    EXPECT_TRUE(cache.find(offset{14}).empty());
    EXPECT_FALSE(cache.find(offset{15}).empty());
    cache.drop_before(offset{100});
    EXPECT_TRUE(cache.empty());
    EXPECT_EQ(cache.first_offset(), cache.end_offset());
    cache.append(make_batch(offset{50}, 5, 300).bytes);
    cache.clear();
    EXPECT_TRUE(cache.empty());
    EXPECT_EQ(cache.cached_bytes(), 0u);
    EXPECT_TRUE(cache.find(offset{50}).empty());
}

TEST(TailCache, CopyTakesWholeBatchesUpToTheBufferAndTheEndBound) {
    tail_cache cache(64 * kib);
    std::vector<batch> batches;
    for (std::uint64_t base = 0; base < 40; base += 4) {
        batches.push_back(make_batch(offset{base}, 4, 1000));
        cache.append(batches.back().bytes);
    }
    const auto size = batches[1].bytes.size();  // all about 1 KiB
    std::vector<std::byte> buffer(3 * size + size / 2);
    const auto three = cache.copy(offset{5}, offset{40}, buffer);  // from inside batch 1
    EXPECT_EQ(three.next_offset, offset{16});
    std::size_t at = 0;
    for (std::size_t i = 1; i <= 3; ++i) {
        EXPECT_TRUE(same(std::span(buffer).subspan(at, batches[i].bytes.size()), batches[i]));
        at += batches[i].bytes.size();
    }
    EXPECT_EQ(three.bytes, at);
    const auto bounded = cache.copy(offset{5}, offset{12}, buffer);  // batches starting below 12
    EXPECT_EQ(bounded.bytes, batches[1].bytes.size() + batches[2].bytes.size());
    EXPECT_EQ(bounded.next_offset, offset{12});
    const auto small =
        cache.copy(offset{5}, offset{40}, std::span(buffer).first(batches[1].bytes.size() - 1));
    EXPECT_EQ(small.bytes, 0u);
    EXPECT_EQ(small.next_offset, offset{5});
    EXPECT_EQ(cache.copy(offset{40}, offset{50}, buffer).bytes, 0u);  // not cached
}

TEST(TailCache, AppendFindAndCopyAllocateNothing) {
    tail_cache cache(64 * kib);
    std::vector<batch> batches;
    for (std::uint64_t base = 0; base < 400; base += 4) {
        batches.push_back(make_batch(offset{base}, 4, 700));
    }
    std::vector<std::byte> buffer(8 * kib);
    std::size_t found = 0;
    const auto before = protocol::testing::allocations();
    for (const auto& b : batches) {
        cache.append(b.bytes);
        found += cache.find(b.base).size();
        found += cache.copy(cache.first_offset(), cache.end_offset(), buffer).bytes;
    }
    EXPECT_EQ(protocol::testing::allocations(), before);
    EXPECT_GT(found, 0u);
}

// Random batch sizes through a small ring: the cache always holds a suffix of
// what was appended, byte for byte, within its capacity, and loses at most
// two batches' worth of room to the unused end of the ring.
TEST(TailCache, HoldsTheNewestBatchesExactlyUnderRandomSizes) {
    std::mt19937_64 rng(11);
    for (const std::size_t capacity : {std::size_t{4 * kib}, std::size_t{10'000}, 64 * kib}) {
        tail_cache cache(capacity);
        std::vector<batch> batches;
        offset next{0};
        std::size_t batch_bytes_max_seen = 0;
        for (int i = 0; i < 2000; ++i) {
            const auto records = static_cast<std::uint32_t>(1 + rng() % 8);
            const std::size_t want =
                rng() % 20 == 0 ? capacity + 100 : 100 + rng() % (capacity / 3);
            batches.push_back(make_batch(next, records, want));
            next = batches.back().end;
            cache.append(batches.back().bytes);
            const auto size = batches.back().bytes.size();
            if (size > capacity) {
                ASSERT_TRUE(cache.empty());
                continue;
            }
            batch_bytes_max_seen = std::max(batch_bytes_max_seen, size);
            ASSERT_EQ(cache.end_offset(), next);
            std::size_t bytes = 0;
            std::size_t k = batches.size();
            while (k > 0 && batches[k - 1].end > cache.first_offset()) {
                --k;
                ASSERT_TRUE(same(cache.find(batches[k].base), batches[k])) << i;
                ASSERT_TRUE(same(cache.find(offset{batches[k].end.value - 1}), batches[k]));
                bytes += batches[k].bytes.size();
            }
            ASSERT_EQ(cache.first_offset(), batches[k].base);
            ASSERT_EQ(cache.batch_count(), batches.size() - k);
            ASSERT_EQ(cache.cached_bytes(), bytes);
            ASSERT_LE(bytes, capacity);
            if (k > 0 && batches[k - 1].bytes.size() <= capacity &&
                cache.batch_count() < cache.batches_max()) {
                // Evicted for room: keeping batch k-1 would have overrun the ring.
                ASSERT_GT(bytes + 2 * batch_bytes_max_seen, capacity) << i;
            }
        }
    }
}

TEST(TailCacheDeathTest, TakesOnlyOneWholeBatch) {
    tail_cache cache(64 * kib);
    auto two = make_batch(offset{0}, 1, 200).bytes;
    const auto second = make_batch(offset{1}, 1, 200).bytes;
    two.insert(two.end(), second.begin(), second.end());
    EXPECT_DEATH(cache.append(two), "one whole batch");
    EXPECT_DEATH(cache.append(std::span(two).first(20)), "one whole batch");
    EXPECT_DEATH(tail_cache(tail_cache_bytes_max + 1), "within its limit");
}

}  // namespace
}  // namespace nagare::storage
