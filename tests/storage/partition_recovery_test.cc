// Recovery of a partition log from torn writes, corruption and lost indexes.
#include <fstream>

#include <gtest/gtest.h>

#include "storage/partition_log.h"
#include "tests/storage/partition_log_fixture.h"

namespace nagare::storage {
namespace {

std::vector<char> read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void flip_byte(const std::filesystem::path& path, std::uint64_t at, char mask) {
    auto bytes = read_file(path);
    ASSERT_LT(at, bytes.size());
    bytes[at] = static_cast<char>(bytes[at] ^ mask);
    write_file(path, bytes);
}

class PartitionRecovery : public testing::partition_fixture {
protected:
    // Appends `batches` flushes of 1..3 records; remembers where each ends.
    void write_batches(int batches) {
        for (int i = 0; i < batches; ++i) {
            ASSERT_TRUE(append(1 + rng() % 3).has_value());
            now_ns += 1000;
            flush_and_wait();
            batch_end_positions.push_back(log->segments().back()->log_bytes());
            batch_end_offsets.push_back(log->durable_end());
        }
    }

    void close_log() {
        flush_and_wait();
        ASSERT_TRUE(log->close().has_value());
        log.reset();
    }

    // Reopens and checks that exactly the records below `end` are there, and
    // that the next append gets `end`.
    void expect_prefix_after_reopen(offset end, const std::vector<testing::owned_record>& all,
                                    const std::vector<std::uint64_t>& all_timestamps) {
        records.assign(all.begin(), all.begin() + static_cast<long>(end.value));
        timestamps.assign(all_timestamps.begin(),
                          all_timestamps.begin() + static_cast<long>(end.value));
        open_log();
        ASSERT_FALSE(::testing::Test::HasFatalFailure());
        last_recovery = log->recovery();
        ASSERT_EQ(log->next_offset(), end);
        ASSERT_EQ(log->durable_end(), end);
        expect_model();
        const auto next = append(1);
        ASSERT_TRUE(next.has_value());
        ASSERT_EQ(*next, end);
        flush_and_wait();
        expect_model();
        log.reset();  // leave the files as a crash would; the test restores them anyway
    }

    std::vector<std::uint64_t> batch_end_positions;
    std::vector<offset> batch_end_offsets;
    recovery_stats last_recovery;
};

TEST_F(PartitionRecovery, TornTailLeavesExactlyTheValidPrefix) {
    options.segment_bytes = 1 << 20;
    options.index_interval_bytes = 64;  // index entries inside the tail too
    open_log();
    write_batches(12);
    close_log();
    const auto all = records;
    const auto all_timestamps = timestamps;
    const auto seg_log = dir.path() / segment_file_name(offset{0}, "log");
    const auto seg_idx = dir.path() / segment_file_name(offset{0}, "idx");
    const auto seg_tix = dir.path() / segment_file_name(offset{0}, "tix");
    const auto log_bytes = read_file(seg_log);
    const auto idx_bytes = read_file(seg_idx);
    const auto tix_bytes = read_file(seg_tix);
    auto restore = [&] {
        write_file(seg_log, log_bytes);
        write_file(seg_idx, idx_bytes);
        write_file(seg_tix, tix_bytes);
    };
    const auto n = batch_end_positions.size();
    ASSERT_EQ(log_bytes.size(), batch_end_positions.back());
    // Cut at every byte inside the last two batches.
    for (auto cut = batch_end_positions[n - 3]; cut < log_bytes.size(); ++cut) {
        restore();
        std::filesystem::resize_file(seg_log, cut);
        std::size_t whole = 0;
        while (whole + 1 < n && batch_end_positions[whole + 1] <= cut) ++whole;
        SCOPED_TRACE("cut at " + std::to_string(cut));
        expect_prefix_after_reopen(batch_end_offsets[whole], all, all_timestamps);
        EXPECT_EQ(last_recovery.indexes_rebuilt, 0u);
        if (::testing::Test::HasFatalFailure()) return;
    }
    // Flip every byte of the last batch, two ways.
    for (auto at = batch_end_positions[n - 2]; at < log_bytes.size(); ++at) {
        for (const char mask : {char{0x01}, char{-1}}) {
            restore();
            flip_byte(seg_log, at, mask);
            SCOPED_TRACE("flip at " + std::to_string(at));
            expect_prefix_after_reopen(batch_end_offsets[n - 2], all, all_timestamps);
            if (::testing::Test::HasFatalFailure()) return;
        }
    }
}

TEST_F(PartitionRecovery, ACorruptBatchInASealedSegmentIsReportedByRead) {
    options.segment_bytes = 2048;
    open_log();
    write_batches(60);
    ASSERT_GE(log->segment_count(), 4u);
    const auto& seg = *log->segments()[1];
    ASSERT_GE(seg.index().size(), 3u);
    const auto entry = seg.index()[1];
    const offset bad{seg.base_offset().value + entry.relative_offset};
    const auto path = seg.log_path();
    const auto seg_base = seg.base_offset();
    close_log();
    flip_byte(path, entry.position + batch_header_bytes + 3, 0x10);

    open_log();
    EXPECT_EQ(log->recovery().damaged_segments, 0u);  // not at a tail: found by reads
    EXPECT_EQ(log->next_offset().value, records.size());
    std::vector<std::byte> buffer(1 << 16);
    const auto direct = log->read(bad, buffer);
    ASSERT_FALSE(direct.has_value());
    EXPECT_EQ(direct.error(), errc::corrupt);
    // A read from the segment's start stops before the bad batch; the next one fails.
    const auto before = log->read(seg_base, buffer);
    ASSERT_TRUE(before.has_value());
    EXPECT_EQ(before->next_offset, bad);
    EXPECT_EQ(log->read(before->next_offset, buffer).error(), errc::corrupt);
    // Other segments are served.
    EXPECT_TRUE(log->read(offset{0}, buffer).has_value());
    EXPECT_TRUE(log->read(log->segments()[2]->base_offset(), buffer).has_value());
    const auto walked = log->for_each_record(offset{0}, [](const record_view&) { return true; });
    ASSERT_FALSE(walked.has_value());
    EXPECT_EQ(walked.error(), errc::corrupt);
}

TEST_F(PartitionRecovery, ACorruptTailOfASealedSegmentIsNotCut) {
    options.segment_bytes = 2048;
    open_log();
    write_batches(40);
    ASSERT_GE(log->segment_count(), 3u);
    const auto& seg = *log->segments()[0];
    const auto path = seg.log_path();
    const auto size = seg.log_bytes();
    const auto next_base = log->segments()[1]->base_offset();
    close_log();
    flip_byte(path, size - 2, 0x40);  // inside the last batch of a sealed segment

    open_log();
    EXPECT_EQ(log->recovery().damaged_segments, 1u);
    EXPECT_EQ(std::filesystem::file_size(path), size);  // stored data is never cut
    EXPECT_EQ(log->next_offset().value, records.size());
    std::vector<std::byte> buffer(1 << 16);
    EXPECT_EQ(log->read(offset{next_base.value - 1}, buffer).error(), errc::corrupt);
    EXPECT_TRUE(log->read(next_base, buffer).has_value());
    EXPECT_TRUE(log->read(offset{0}, buffer).has_value());
}

TEST_F(PartitionRecovery, LostOrGarbledIndexesAreRebuilt) {
    options.segment_bytes = 2048;
    open_log();
    write_batches(50);
    ASSERT_GE(log->segment_count(), 3u);
    std::vector<std::vector<index_entry>> indexes;
    for (const auto& seg : log->segments())
        indexes.emplace_back(seg->index().begin(), seg->index().end());
    const auto s0 = log->segments()[0]->base_offset();
    const auto s1 = log->segments()[1]->base_offset();
    const auto last = log->segments().back()->base_offset();
    close_log();
    std::filesystem::remove(dir.path() / segment_file_name(s0, "idx"));
    std::filesystem::remove(dir.path() / segment_file_name(s0, "tix"));
    auto garbled = read_file(dir.path() / segment_file_name(s1, "idx"));
    ASSERT_GT(garbled.size(), 16u);
    for (auto& c : garbled) c = static_cast<char>(rng());
    write_file(dir.path() / segment_file_name(s1, "idx"), garbled);
    std::filesystem::remove(dir.path() / segment_file_name(last, "tix"));

    open_log();
    EXPECT_EQ(log->recovery().indexes_rebuilt, 3u);
    ASSERT_EQ(log->segment_count(), indexes.size());
    for (std::size_t i = 0; i < indexes.size(); ++i) {
        const auto& seg = *log->segments()[i];
        EXPECT_EQ(std::vector<index_entry>(seg.index().begin(), seg.index().end()), indexes[i]);
        EXPECT_EQ(std::filesystem::file_size(seg.idx_path()), seg.index().size() * idx_entry_bytes);
        EXPECT_EQ(std::filesystem::file_size(seg.tix_path()), seg.index().size() * tix_entry_bytes);
    }
    expect_model();
    std::vector<std::byte> buffer(2048);
    for (std::uint64_t from = 0; from < records.size(); ++from) {
        const auto result = log->read(offset{from}, buffer);
        ASSERT_TRUE(result.has_value()) << from;
        EXPECT_GT(result->next_offset.value, from);
    }
    close_and_reopen();
    EXPECT_EQ(log->recovery().indexes_rebuilt, 0u);
    expect_model();
}

// Bytes a torn write leaves: not a batch, not zeros.
void append_torn_write(const std::filesystem::path& path, std::size_t torn_bytes,
                       std::size_t zeros_after) {
    auto bytes = read_file(path);
    bytes.insert(bytes.end(), torn_bytes, char{0x5a});
    bytes.insert(bytes.end(), zeros_after, char{0});
    write_file(path, bytes);
}

// A roll that created <base>.log and then failed (or died) before using it,
// while the data went on into the segment before: the empty file is deleted
// at open, and the segment before is recovered as the active one (a torn
// write at its end is cut, not reported as damage).
TEST_F(PartitionRecovery, AnEmptyLeftoverInsideTheLastSegmentIsDeleted) {
    options.segment_bytes = 1 << 20;
    open_log();
    write_batches(10);
    close_log();
    const auto all = records;
    const auto all_timestamps = timestamps;
    const auto leftover = dir.path() / segment_file_name(batch_end_offsets[4], "log");
    write_file(leftover, {});
    constexpr std::size_t torn_bytes = 100;
    append_torn_write(dir.path() / segment_file_name(offset{0}, "log"), torn_bytes, 1000);

    expect_prefix_after_reopen(batch_end_offsets.back(), all, all_timestamps);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_FALSE(std::filesystem::exists(leftover));
    EXPECT_EQ(last_recovery.damaged_segments, 0u);
    EXPECT_EQ(last_recovery.truncated_bytes, torn_bytes) << "the zeros after it are not counted";
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(log->segment_count(), 1u);
}

// The same when the torn write after the failed roll starts exactly at the
// empty file's base: the segment before ends there, with a torn tail.
TEST_F(PartitionRecovery, AnEmptyLeftoverAfterATornTailIsDeleted) {
    options.segment_bytes = 1 << 20;
    open_log();
    write_batches(6);
    close_log();
    const auto all = records;
    const auto all_timestamps = timestamps;
    const auto leftover = dir.path() / segment_file_name(batch_end_offsets.back(), "log");
    write_file(leftover, {});
    append_torn_write(dir.path() / segment_file_name(offset{0}, "log"), 70, 0);

    expect_prefix_after_reopen(batch_end_offsets.back(), all, all_timestamps);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_FALSE(std::filesystem::exists(leftover));
    EXPECT_EQ(last_recovery.damaged_segments, 0u);
    EXPECT_EQ(last_recovery.truncated_bytes, 70u);
}

// An empty file where the segment before ends is a roll whose first write
// failed or never came: harmless, it stays the (empty) active segment and
// takes the next append.
TEST_F(PartitionRecovery, AnEmptySegmentAtTheEndOfTheOneBeforeIsTheActiveSegment) {
    options.segment_bytes = 1 << 20;
    open_log();
    write_batches(6);
    close_log();
    const auto end = batch_end_offsets.back();
    write_file(dir.path() / segment_file_name(end, "log"), {});

    open_log();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(log->segment_count(), 2u);
    EXPECT_EQ(log->segments().back()->base_offset(), end);
    EXPECT_EQ(log->recovery().damaged_segments, 0u);
    EXPECT_EQ(log->durable_end(), end);
    expect_model();
    ASSERT_TRUE(append(2).has_value());
    flush_and_wait();
    EXPECT_EQ(log->segments().back()->end_offset().value, end.value + 2);
    close_and_reopen();
    EXPECT_EQ(log->segment_count(), 2u);
    expect_model();
}

// A leftover that is not the last file (its roll failed, a later one worked)
// is deleted too; the segment before stays sealed.
TEST_F(PartitionRecovery, AnEmptyLeftoverBetweenSegmentsIsDeleted) {
    options.segment_bytes = 2048;
    open_log();
    write_batches(30);
    ASSERT_GE(log->segment_count(), 3u);
    const auto segments = log->segment_count();
    const auto& first = *log->segments()[0];
    ASSERT_GT(first.end_offset().value, first.base_offset().value + 1);
    const auto leftover =
        dir.path() / segment_file_name(offset{first.base_offset().value + 1}, "log");
    close_log();
    write_file(leftover, {});

    open_log();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_FALSE(std::filesystem::exists(leftover));
    EXPECT_EQ(log->segment_count(), segments);
    EXPECT_EQ(log->recovery().damaged_segments, 0u);
    expect_model();
}

}  // namespace
}  // namespace nagare::storage
