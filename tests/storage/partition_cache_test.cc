// partition_log with its tail cache: what it serves from memory, that it
// equals what the disk holds, and that it never shows more than is durable.
#include <fstream>

#include <gtest/gtest.h>

#include "storage/partition_log.h"
#include "tests/protocol/alloc_counter.h"
#include "tests/storage/partition_log_fixture.h"

namespace nagare::storage {
namespace {

class PartitionCache : public testing::partition_fixture {
protected:
    std::vector<std::byte> buffer = std::vector<std::byte>(64 * kib);

    // Appends and flushes `rounds` batches of 1..4 records.
    void fill(int rounds) {
        for (int i = 0; i < rounds; ++i) {
            ASSERT_TRUE(append(1 + rng() % 4).has_value());
            now_ns += 1000;
            flush_and_wait();
        }
    }

    // The records of a read equal the model, from `from` to next_offset.
    void expect_read_matches(offset from, const read_result& result) {
        auto rest = result.batches;
        std::uint64_t next = from.value;
        while (!rest.empty()) {
            const auto batch = batch_view::parse(rest);
            ASSERT_TRUE(batch.has_value());
            ASSERT_TRUE(batch->for_each([&](const record_view& r) {
                if (r.record_offset.value < from.value) return true;
                EXPECT_EQ(r.record_offset.value, next);
                testing::expect_same(r, records[r.record_offset.value]);
                ++next;
                return true;
            }));
            rest = rest.subspan(batch->bytes().size());
        }
        EXPECT_EQ(result.next_offset.value, next);
        EXPECT_GT(next, from.value);
    }

    // Overwrites every segment file with zeros behind the log's back: a read
    // that touches the disk from now on fails verification.
    void zero_segment_files() {
        for (const auto& seg : log->segments()) {
            const auto bytes = std::filesystem::file_size(seg->log_path());
            std::ofstream out(seg->log_path(), std::ios::binary | std::ios::in | std::ios::out);
            const std::vector<char> zeros(bytes, 0);
            out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
            ASSERT_TRUE(out.good());
        }
    }
};

TEST_F(PartitionCache, RecentReadsDoNotTouchTheFile) {
    options.tail_cache_bytes = tail_cache_bytes_min;
    open_log();
    fill(60);
    const auto& cache = log->cache();
    ASSERT_GT(cache.first_offset(), log->first_offset());  // older data is on disk only
    ASSERT_EQ(cache.end_offset(), log->durable_end());
    testing::read_syscall_counter preads;
    for (auto from = cache.first_offset().value; from < cache.end_offset().value; ++from) {
        const auto result = log->read(offset{from}, buffer);
        ASSERT_TRUE(result.has_value()) << to_string(result.error());
        expect_read_matches(offset{from}, *result);
    }
    EXPECT_EQ(preads.reads(), 0u);
    const auto hits = cache.end_offset().value - cache.first_offset().value;
    EXPECT_EQ(log->counters().read_cache_hits, hits);
    EXPECT_EQ(log->counters().read_cache_misses, 0u);
    // The counter sees a read that goes to the disk.
    preads.reset();
    ASSERT_TRUE(log->read(offset{cache.first_offset().value - 1}, buffer).has_value());
    EXPECT_GT(preads.reads(), 0u);
    EXPECT_EQ(log->counters().read_cache_misses, 1u);

    // With the files zeroed, cached data still reads back right; older data fails.
    zero_segment_files();
    for (auto from = cache.first_offset().value; from < cache.end_offset().value; ++from) {
        const auto result = log->read(offset{from}, buffer);
        ASSERT_TRUE(result.has_value()) << to_string(result.error());
        expect_read_matches(offset{from}, *result);
        const auto batch = log->cached_batch(offset{from});
        ASSERT_TRUE(batch.has_value());
        ASSERT_TRUE(batch_view::parse(*batch).has_value());
    }
    const auto old = log->read(offset{cache.first_offset().value - 1}, buffer);
    ASSERT_FALSE(old.has_value());
    EXPECT_EQ(old.error(), errc::corrupt);
    EXPECT_EQ(log->counters().read_cache_misses, 2u);
}

TEST_F(PartitionCache, CachedReadsEqualDiskReadsAtRandomPositions) {
    options.tail_cache_bytes = 64 * kib;  // many 4 KiB segments
    open_log();
    fill(300);
    const auto& cache = log->cache();
    ASSERT_GT(cache.first_offset(), log->first_offset());
    std::vector<std::byte> disk_buffer(buffer.size());
    for (int i = 0; i < 2000; ++i) {
        const auto span = cache.end_offset().value - cache.first_offset().value;
        const offset from{cache.first_offset().value + rng() % span};
        const auto size = std::array<std::size_t, 3>{1024, 4096, 65536}[rng() % 3];
        const auto cached = log->read(from, std::span(buffer).first(size));
        // The same read from the segment file itself.
        const auto& seg = *std::prev(std::upper_bound(
            log->segments().begin(), log->segments().end(), from,
            [](offset o, const std::unique_ptr<segment>& s) { return o < s->base_offset(); }));
        ASSERT_TRUE(seg->reopen().has_value());
        const auto disk = seg->read(from, std::span(disk_buffer).first(size));
        ASSERT_EQ(cached.has_value(), disk.has_value()) << from.value;
        if (!cached) {
            EXPECT_EQ(cached.error(), errc::invalid_argument);  // the first batch does not fit
            EXPECT_EQ(disk.error(), errc::invalid_argument);
            continue;
        }
        // Both start with the batch holding `from` and stay in its segment;
        // the shorter is a prefix of the longer (the disk reads from an index entry).
        const auto common = std::min(cached->batches.size(), disk->batches.size());
        ASSERT_GT(common, 0u);
        ASSERT_TRUE(std::equal(cached->batches.begin(), cached->batches.begin() + common,
                               disk->batches.begin()));
        EXPECT_GE(cached->batches.size(), disk->batches.size());  // as many as fit
        EXPECT_LE(cached->next_offset, seg->end_offset());
        expect_read_matches(from, *cached);
    }
    EXPECT_EQ(log->counters().read_cache_misses, 0u);
    EXPECT_EQ(log->counters().read_cache_hits, 2000u);
    expect_model();
}

// Checks, when the log says data is durable, that the cache already has it.
struct cache_checking_listener final : log_listener {
    partition_log* log = nullptr;
    int checked = 0;
    void on_durable(offset end) noexcept override {
        const auto last = log->cached_batch(offset{end.value - 1});
        EXPECT_TRUE(last.has_value() && !last->empty());
        EXPECT_EQ(log->cache().end_offset(), end);
        ++checked;
    }
    void on_write_failed(offset, errc) noexcept override {}
};

TEST_F(PartitionCache, NothingBeyondDurableEndIsVisible) {
    options.durability_mode = durability::fsync;
    open_log();
    cache_checking_listener checker;
    checker.log = log.get();
    log->set_listener(&checker);
    ASSERT_TRUE(append(3).has_value());
    log->flush();  // in flight, not completed
    ASSERT_TRUE(append(2).has_value());
    EXPECT_TRUE(log->cache().empty());
    EXPECT_TRUE(log->cached_batch(offset{0}).value().empty());  // at durable_end
    EXPECT_EQ(log->cached_batch(offset{1}).error(), errc::out_of_range);
    io.poll(true);
    EXPECT_EQ(checker.checked, 1);
    EXPECT_EQ(log->durable_end(), offset{3});
    EXPECT_FALSE(log->cached_batch(offset{2}).value().empty());
    EXPECT_TRUE(log->cached_batch(offset{3}).value().empty());
    EXPECT_EQ(log->cached_batch(offset{4}).error(), errc::out_of_range);
    const auto read = log->read(offset{0}, buffer);
    ASSERT_TRUE(read.has_value());
    EXPECT_EQ(read->next_offset, offset{3});

    // A failed write shows nothing of what it held.
    io.fail_writes = 1;
    log->flush();
    io.poll(true);
    EXPECT_EQ(log->durable_end(), offset{3});
    EXPECT_EQ(log->cache().end_offset(), offset{3});
    EXPECT_EQ(log->cached_batch(offset{3}).value().size(), 0u);
    EXPECT_EQ(log->cached_batch(offset{4}).error(), errc::out_of_range);
    model_cut(offset{3});
    ASSERT_EQ(append(4).value(), offset{3});
    flush_and_wait();
    EXPECT_EQ(checker.checked, 2);
    EXPECT_EQ(log->cache().first_offset(), offset{0});
    EXPECT_EQ(log->cache().end_offset(), offset{7});
    expect_model();
}

TEST_F(PartitionCache, EveryDurabilityModeFeedsTheCache) {
    for (const auto mode : {durability::fsync, durability::interval, durability::none}) {
        testing::temp_dir mode_dir;
        auto mode_options = options;
        mode_options.durability_mode = mode;
        auto opened = partition_log::open(mode_dir.path(), mode_options, io);
        ASSERT_TRUE(opened.has_value());
        auto& mode_log = **opened;
        auto record = testing::random_record(rng);
        const std::array refs{record.ref()};
        for (int i = 0; i < 5; ++i) {
            ASSERT_TRUE(mode_log.append(refs, now_ns).has_value());
            mode_log.flush();
            drain();
            mode_log.tick(now_ns += 100'000'000);  // interval mode syncs here
            drain();
        }
        EXPECT_EQ(mode_log.cache().first_offset(), offset{0});
        EXPECT_EQ(mode_log.cache().end_offset(), offset{5});
        EXPECT_EQ(mode_log.cache().batch_count(), 5u);
        ASSERT_TRUE(mode_log.read(offset{2}, buffer).has_value());
        EXPECT_EQ(mode_log.counters().read_cache_hits, 1u);
        ASSERT_TRUE(mode_log.close().has_value());
    }
}

TEST_F(PartitionCache, TruncateRetentionAndCloseKeepItConsistent) {
    options.segment_bytes = 1024;
    options.tail_cache_bytes = 64 * kib;
    open_log();
    fill(40);
    ASSERT_EQ(log->cache().first_offset(), offset{0});  // all of it cached
    // Truncate below the end: the cache goes; re-appended data is what reads see.
    const offset cut{log->durable_end().value - 5};
    ASSERT_TRUE(log->truncate(cut).has_value());
    model_cut(cut);
    EXPECT_TRUE(log->cache().empty());
    EXPECT_EQ(log->cached_batch(offset{cut.value - 1}).value().size(), 0u);
    fill(3);
    EXPECT_EQ(log->cache().first_offset(), cut);
    const auto reread = log->read(cut, buffer);
    ASSERT_TRUE(reread.has_value());
    expect_read_matches(cut, *reread);
    EXPECT_EQ(log->counters().read_cache_hits, 1u);
    // Truncate at the end keeps it.
    ASSERT_TRUE(log->truncate(log->durable_end()).has_value());
    EXPECT_EQ(log->cache().first_offset(), cut);
    expect_model();

    // Retention drops what it removed from the cache too.
    fill(40);
    ASSERT_GT(log->segment_count(), 3u);
    const auto end_before = log->cache().end_offset();
    options.max_bytes = 1;
    close_and_reopen();  // an empty cache after a reopen
    EXPECT_TRUE(log->cache().empty());
    fill(30);
    ASSERT_GT(log->segment_count(), 2u);
    ASSERT_LT(log->cache().first_offset(), log->segments().back()->base_offset());
    ASSERT_TRUE(log->enforce_retention(now_ns).has_value());
    EXPECT_EQ(log->segment_count(), 1u);
    EXPECT_GE(log->cache().first_offset(), log->first_offset());
    EXPECT_GT(log->cache().end_offset(), end_before);
    EXPECT_EQ(log->cached_batch(offset{log->first_offset().value - 1}).error(), errc::out_of_range);
    expect_model();

    ASSERT_TRUE(log->close().has_value());
    EXPECT_TRUE(log->cache().empty());
    EXPECT_EQ(log->cached_batch(offset{0}).error(), errc::closed);
}

TEST_F(PartitionCache, ZeroBytesDisablesItAndOptionsAreChecked) {
    for (const std::size_t bad :
         {std::size_t{1}, tail_cache_bytes_min - 1, tail_cache_bytes_max + 1}) {
        options.tail_cache_bytes = bad;
        const auto opened = partition_log::open(dir.path(), options, io);
        ASSERT_FALSE(opened.has_value()) << bad;
        EXPECT_EQ(opened.error(), errc::invalid_argument);
    }
    options.tail_cache_bytes = 0;
    open_log();
    fill(5);
    EXPECT_TRUE(log->cache().empty());
    EXPECT_TRUE(log->cached_batch(offset{0}).value().empty());
    testing::read_syscall_counter preads;
    ASSERT_TRUE(log->read(offset{0}, buffer).has_value());
    EXPECT_GT(preads.reads(), 0u);
    EXPECT_EQ(log->counters().read_cache_hits, 0u);
    EXPECT_EQ(log->counters().read_cache_misses, 1u);
    expect_model();
}

TEST_F(PartitionCache, ACachedBatchLargerThanTheBufferIsInvalidArgument) {
    open_log();
    ASSERT_TRUE(append(4, 400).has_value());
    flush_and_wait();
    const auto batch = log->cached_batch(offset{0});
    ASSERT_TRUE(batch.has_value() && !batch->empty());
    const auto small = log->read(offset{0}, std::span(buffer).first(batch->size() - 1));
    ASSERT_FALSE(small.has_value());
    EXPECT_EQ(small.error(), errc::invalid_argument);
    const auto exact = log->read(offset{0}, std::span(buffer).first(batch->size()));
    ASSERT_TRUE(exact.has_value());
    EXPECT_EQ(exact->batches.size(), batch->size());
    EXPECT_EQ(log->counters().read_cache_hits, 2u);
}

TEST_F(PartitionCache, CachedReadsAllocateNothing) {
    open_log();
    fill(50);
    const auto first = log->cache().first_offset().value;
    const auto end = log->durable_end().value;
    std::size_t bytes = 0;
    const auto before = protocol::testing::allocations();
    for (auto from = first; from < end; ++from) {
        const auto result = log->read(offset{from}, buffer);
        bytes += result ? result->batches.size() : 0;
        const auto batch = log->cached_batch(offset{from});
        bytes += batch ? batch->size() : 0;
    }
    EXPECT_EQ(protocol::testing::allocations(), before);
    EXPECT_GT(bytes, 0u);
}

}  // namespace
}  // namespace nagare::storage
