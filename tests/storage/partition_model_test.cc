// Randomized model test: random operations on a partition log with small
// segments (so rolls, retention and index lookups happen all the time),
// checked against an in-memory model after every step; tail caches of none,
// some and all of the partition.
#include <algorithm>
#include <array>

#include <gtest/gtest.h>

#include "storage/partition_log.h"
#include "tests/storage/partition_log_fixture.h"

namespace nagare::storage {
namespace {

struct model_params {
    std::uint64_t seed;
    durability mode;
    int operations;
};

class PartitionModel : public testing::partition_fixture,
                       public ::testing::WithParamInterface<model_params> {
protected:
    std::size_t failures_seen = 0;
    std::size_t reads_checked = 0;
    std::size_t retention_removed = 0;
    partition_counters counters_before_reopen;  // summed over the logs closed so far

    void randomize_options() {
        options.durability_mode = GetParam().mode;
        options.segment_bytes = 1024 + rng() % 3072;
        options.index_interval_bytes = 64 + static_cast<std::uint32_t>(rng() % 192);
        options.write_buffer_bytes = 4096 + rng() % 12288;
        options.batch_bytes_target = 256 + rng() % 1792;
        options.preallocate_step_bytes = 1024;
        options.segment_age_ns = 50'000'000;
        options.max_age_ns = 400'000'000;
        options.max_bytes = 24 * 1024;
        options.fsync_interval_ns = 5'000'000;
        // None, some (hits and misses), or all of the partition in the tail cache.
        options.tail_cache_bytes = std::array<std::size_t, 4>{
            0, tail_cache_bytes_min, tail_cache_bytes_min + rng() % (12 * kib),
            tail_cache_bytes_default}[GetParam().seed % 4];
    }

    [[nodiscard]] partition_counters counters() const {
        auto sum = counters_before_reopen;
        sum.read_cache_hits += log->counters().read_cache_hits;
        sum.read_cache_misses += log->counters().read_cache_misses;
        return sum;
    }

    // What cached_batch shows is the durable batch holding `from`, or nothing.
    void check_cached_batch(offset from) {
        const auto cached = log->cached_batch(from);
        if (from < log->first_offset() || from > log->durable_end()) {
            ASSERT_FALSE(cached.has_value());
            ASSERT_EQ(cached.error(), errc::out_of_range);
            return;
        }
        ASSERT_TRUE(cached.has_value());
        if (cached->empty()) return;
        const auto batch = batch_view::parse(*cached);
        ASSERT_TRUE(batch.has_value());
        ASSERT_EQ(batch->bytes().size(), cached->size());
        ASSERT_LE(batch->header().base_offset, from);
        ASSERT_GT(batch->header().end_offset(), from);
        ASSERT_LE(batch->header().end_offset(), log->durable_end());
    }

    // A failed write drops everything from `from` on: so does the model.
    void settle() {
        while (failures_seen < listener.failed.size()) {
            const auto from = listener.failed[failures_seen++].first;
            ASSERT_LE(from.value, records.size());
            model_cut(from);
        }
        ASSERT_EQ(log->next_offset().value, records.size());
        ASSERT_LE(log->first_offset(), log->durable_end());
        ASSERT_LE(log->durable_end(), log->next_offset());
    }

    void poll_all() {
        drain();
        settle();
    }

    void op_append() {
        if (rng() % 50 == 0) io.fail_writes = 1;  // the next write fails with ENOSPC
        now_ns += rng() % 2'000'000;
        if (rng() % 20 == 0)
            now_ns -= std::min<std::uint64_t>(now_ns, 3'000'000);  // clock step back
        const auto n = 1 + rng() % 6;
        const auto payload = n <= 2 && rng() % 5 == 0 ? 1500 : 200;  // always fits 4 KiB
        auto result = append(n, payload);
        if (!result && result.error() == errc::busy) {
            flush_and_wait();
            settle();
            result = append(n, payload);
        }
        ASSERT_TRUE(result.has_value()) << to_string(result.error());
    }

    void op_flush() {
        log->flush();
        if (rng() % 2 == 0) io.poll(true);
        settle();
    }

    void check_read(offset from, const read_result& result) {
        ASSERT_FALSE(result.batches.empty());
        auto rest = result.batches;
        std::uint64_t expected = 0;
        bool first = true;
        while (!rest.empty()) {
            const auto batch = batch_view::parse(rest);
            ASSERT_TRUE(batch.has_value());
            if (first) {
                ASSERT_LE(batch->header().base_offset, from);
                ASSERT_GT(batch->header().end_offset(), from);
                first = false;
            } else {
                ASSERT_EQ(batch->header().base_offset.value, expected);
            }
            expected = batch->header().end_offset().value;
            ASSERT_TRUE(batch->for_each([&](const record_view& r) {
                EXPECT_LT(r.record_offset.value, records.size());
                if (r.record_offset.value >= records.size()) return false;
                EXPECT_EQ(r.timestamp_ns, timestamps[r.record_offset.value]);
                testing::expect_same(r, records[r.record_offset.value]);
                return true;
            }));
            rest = rest.subspan(batch->bytes().size());
        }
        ASSERT_EQ(result.next_offset.value, expected);
        ASSERT_LE(result.next_offset, log->durable_end());
        ++reads_checked;
    }

    void op_read() {
        const auto first = log->first_offset().value;
        const auto end = log->durable_end().value;
        const auto low = first >= 2 ? first - 2 : 0;
        const offset from{low + rng() % (end + 3 - low)};
        std::vector<std::byte> buffer(std::array<std::size_t, 3>{1024, 4096, 65536}[rng() % 3]);
        check_cached_batch(from);
        const auto result = log->read(from, buffer);
        if (from.value < first || from.value > end) {
            ASSERT_FALSE(result.has_value());
            ASSERT_EQ(result.error(), errc::out_of_range);
        } else if (from.value == end) {
            ASSERT_TRUE(result.has_value());
            ASSERT_TRUE(result->batches.empty());
        } else if (!result && result.error() == errc::invalid_argument) {
            buffer.resize(options.write_buffer_bytes);  // a batch larger than the small buffer
            const auto again = log->read(from, buffer);
            ASSERT_TRUE(again.has_value());
            check_read(from, *again);
        } else {
            ASSERT_TRUE(result.has_value()) << to_string(result.error());
            check_read(from, *result);
        }
    }

    void op_seek_time() {
        const auto first = log->first_offset().value;
        const auto end = log->durable_end().value;
        const auto lo = first < end ? timestamps[first] : now_ns;
        const auto hi = first < end ? timestamps[end - 1] : now_ns;
        const auto t = lo - std::min<std::uint64_t>(lo, 10) + rng() % (hi - lo + 20);
        const auto begin = timestamps.begin() + static_cast<long>(first);
        const auto stop = timestamps.begin() + static_cast<long>(end);
        const auto want =
            static_cast<std::uint64_t>(std::lower_bound(begin, stop, t) - timestamps.begin());
        const auto got = log->seek_time(t);
        ASSERT_TRUE(got.has_value());
        ASSERT_EQ(got->value, want) << "t=" << t;
    }

    void op_retention() {
        const auto before = log->first_offset();
        const auto removed = log->enforce_retention(now_ns);
        ASSERT_TRUE(removed.has_value());
        retention_removed += *removed;
        ASSERT_GE(log->first_offset(), before);
        if (log->segment_count() > 1) {
            const auto& front = *log->segments().front();
            ASSERT_LE(log->bytes(), options.max_bytes);
            ASSERT_GE(front.last_timestamp_ns() + options.max_age_ns, now_ns);
        }
    }

    void op_truncate() {
        poll_all();
        const auto first = log->first_offset().value;
        const auto end = log->durable_end().value;
        const offset to{end - std::min<std::uint64_t>(end - first, rng() % 8)};
        ASSERT_TRUE(log->truncate(to).has_value());
        model_cut(to);
        settle();
    }

    void op_reopen(bool crash) {
        counters_before_reopen = counters();
        if (crash) {
            poll_all();  // nothing may be in flight; unflushed appends are lost
            model_cut(log->durable_end());
            log.reset();
        } else {
            flush_and_wait();
            settle();
            ASSERT_TRUE(log->close().has_value());
            log.reset();
        }
        open_log();
        failures_seen = listener.failed.size();
        settle();
        expect_model();
    }

    void step() {
        const auto r = rng() % 100;
        if (r < 38) return op_append();
        if (r < 58) return op_flush();
        if (r < 76) return op_read();
        if (r < 83) return op_seek_time();
        if (r < 89) return log->tick(now_ns);
        if (r < 94) return op_retention();
        if (r < 96) return op_truncate();
        if (r < 98) return op_reopen(false);
        return op_reopen(true);
    }
};

TEST_P(PartitionModel, RandomOperationsMatchTheModel) {
    rng.seed(GetParam().seed);
    randomize_options();
    open_log();
    for (int i = 0; i < GetParam().operations; ++i) {
        step();
        if (HasFatalFailure()) {
            ADD_FAILURE() << "operation " << i;
            return;
        }
    }
    poll_all();
    op_reopen(false);
    // The run must have exercised what it claims to.
    EXPECT_GT(reads_checked, 100u);
    EXPECT_GT(retention_removed, 0u);
    EXPECT_GT(failures_seen, 0u);
    EXPECT_GT(records.size(), 1000u);
    const auto reads = counters();
    EXPECT_GT(reads.read_cache_misses, 0u);  // after each reopen, at least
    if (options.tail_cache_bytes > 0) {
        EXPECT_GT(reads.read_cache_hits, 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PartitionModel,
                         ::testing::Values(model_params{1, durability::none, 10'000},
                                           model_params{2, durability::interval, 10'000},
                                           model_params{3, durability::none, 10'000},
                                           model_params{4, durability::fsync, 10'000},
                                           model_params{5, durability::fsync, 10'000},
                                           model_params{6, durability::interval, 10'000}));

}  // namespace
}  // namespace nagare::storage
