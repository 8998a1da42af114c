#include "storage/segment.h"

#include <array>
#include <random>
#include <span>
#include <vector>

#include <gtest/gtest.h>

#include "tests/storage/test_records.h"

namespace nagare::storage {
namespace {

using testing::owned_record;

segment_options small_options() {
    segment_options o;
    o.index_interval_bytes = 256;
    o.preallocate_step_bytes = 4096;
    o.segment_bytes = 64 * 1024;
    return o;
}

// Appends `batches` batches of 1..4 records to `seg` as the log would.
std::vector<owned_record> append_batches(segment& seg, std::mt19937_64& rng, int batches,
                                         std::uint64_t& ts) {
    std::vector<owned_record> out;
    std::vector<std::byte> buffer(8192);
    for (int b = 0; b < batches; ++b) {
        batch_builder builder(buffer);
        EXPECT_TRUE(builder.open(seg.end_offset()));
        const auto n = 1 + rng() % 4;
        for (std::size_t i = 0; i < n; ++i) {
            out.push_back(testing::random_record(rng, 100));
            EXPECT_TRUE(builder.add(out.back().ref(), ++ts));
        }
        const auto batch = builder.seal();
        seg.reserve(seg.log_bytes() + batch.size());
        EXPECT_TRUE(seg.log().write_at(batch, seg.log_bytes()).has_value());
        seg.commit(batch);
    }
    return out;
}

// Reads every record from base to end and compares.
void expect_records(segment& seg, const std::vector<owned_record>& want) {
    std::vector<std::byte> buffer(16384);
    offset from = seg.base_offset();
    while (from < seg.end_offset()) {
        const auto result = seg.read(from, buffer);
        ASSERT_TRUE(result.has_value()) << to_string(result.error()) << " at " << from.value;
        bool first = true;
        auto rest = result->batches;
        while (!rest.empty()) {
            const auto batch = batch_view::parse(rest);
            ASSERT_TRUE(batch.has_value());
            if (first) {
                EXPECT_LE(batch->header().base_offset, from);
                EXPECT_GT(batch->header().end_offset(), from);
                first = false;
            }
            ASSERT_TRUE(batch->for_each([&](const record_view& r) {
                testing::expect_same(r, want[r.record_offset.value - seg.base_offset().value]);
                return true;
            }));
            rest = rest.subspan(batch->bytes().size());
        }
        EXPECT_GT(result->next_offset, from);
        from = result->next_offset;
    }
    EXPECT_EQ(from, seg.end_offset());
}

TEST(Segment, FileNames) {
    EXPECT_EQ(segment_file_name(offset{42}, "log"), "00000000000000000042.log");
    EXPECT_EQ(parse_segment_file_name("00000000000000000042.log"), offset{42});
    EXPECT_EQ(parse_segment_file_name("18446744073709551615.log"), offset{UINT64_MAX});
    EXPECT_FALSE(parse_segment_file_name("18446744073709551616.log"));
    EXPECT_FALSE(parse_segment_file_name("00000000000000000042.idx"));
    EXPECT_FALSE(parse_segment_file_name("0000000000000000042.log"));
    EXPECT_FALSE(parse_segment_file_name("0000000000000000004x.log"));
}

TEST(Segment, CommitReadRecoverRoundTrip) {
    testing::temp_dir dir;
    std::mt19937_64 rng(1);
    std::uint64_t ts = 1000;
    auto seg = segment::create(dir.path(), offset{500}, small_options());
    ASSERT_TRUE(seg.has_value());
    const auto records = append_batches(**seg, rng, 60, ts);
    EXPECT_EQ((*seg)->end_offset().value, 500 + records.size());
    EXPECT_GT((*seg)->index().size(), 5u);
    expect_records(**seg, records);
    ASSERT_TRUE((*seg)->persist_index().has_value());
    const auto log_bytes = (*seg)->log_bytes();
    const auto index = std::vector<index_entry>((*seg)->index().begin(), (*seg)->index().end());
    seg->reset();

    recovery_stats stats;
    auto again = segment::recover(dir.path(), offset{500}, small_options(), true, stats);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ((*again)->log_bytes(), log_bytes);
    EXPECT_EQ((*again)->end_offset().value, 500 + records.size());
    EXPECT_EQ((*again)->last_timestamp_ns(), ts);
    EXPECT_EQ(std::vector<index_entry>((*again)->index().begin(), (*again)->index().end()), index);
    EXPECT_EQ(stats.indexes_rebuilt, 0u);
    EXPECT_EQ(stats.truncated_bytes, 0u);  // the preallocated zeros are not data
    EXPECT_EQ(std::filesystem::file_size((*again)->log_path()), log_bytes);
    expect_records(**again, records);
}

TEST(Segment, LocateTime) {
    testing::temp_dir dir;
    std::mt19937_64 rng(2);
    std::uint64_t ts = 0;
    auto seg = segment::create(dir.path(), offset{0}, small_options());
    ASSERT_TRUE(seg.has_value());
    (void)append_batches(**seg, rng, 40, ts);
    for (const auto& e : (*seg)->index()) {
        EXPECT_LT((*seg)->locate_time(e.timestamp_ns + 1).timestamp_ns, e.timestamp_ns + 1);
        EXPECT_EQ((*seg)->locate(offset{e.relative_offset}), e);
    }
    EXPECT_EQ((*seg)->locate_time(0), (*seg)->index().front());
}

TEST(Segment, TruncateInsideABatchKeepsTheRecordsBefore) {
    testing::temp_dir dir;
    std::mt19937_64 rng(3);
    std::uint64_t ts = 0;
    auto seg = segment::create(dir.path(), offset{10}, small_options());
    ASSERT_TRUE(seg.has_value());
    auto records = append_batches(**seg, rng, 30, ts);
    for (std::uint64_t end : {std::uint64_t{10} + records.size() - 1, std::uint64_t{40},
                              std::uint64_t{25}, std::uint64_t{11}, std::uint64_t{10}}) {
        if (end > (*seg)->end_offset().value) continue;
        ASSERT_TRUE((*seg)->truncate(offset{end}).has_value()) << end;
        EXPECT_EQ((*seg)->end_offset(), offset{end});
        records.resize(end - 10);
        expect_records(**seg, records);
        recovery_stats stats;
        auto again = segment::recover(dir.path(), offset{10}, small_options(), true, stats);
        ASSERT_TRUE(again.has_value());
        EXPECT_EQ((*again)->end_offset(), offset{end});
        EXPECT_EQ(stats.indexes_rebuilt, 0u);
    }
    // And appending continues after the cut.
    auto more = append_batches(**seg, rng, 3, ts);
    records.insert(records.end(), more.begin(), more.end());
    expect_records(**seg, records);
}

TEST(Segment, AMismatchedIndexIsRebuiltOnRead) {
    testing::temp_dir dir;
    std::mt19937_64 rng(4);
    std::uint64_t ts = 0;
    auto seg = segment::create(dir.path(), offset{0}, small_options());
    ASSERT_TRUE(seg.has_value());
    const auto records = append_batches(**seg, rng, 40, ts);
    ASSERT_TRUE((*seg)->persist_index().has_value());
    ASSERT_TRUE((*seg)->seal().has_value());
    // Shift the offsets of the middle entries by one: the index still looks
    // well formed and its last entry verifies.
    auto idx = posix_file::open((*seg)->idx_path(), false);
    ASSERT_TRUE(idx.has_value());
    for (std::size_t i = 1; i + 1 < (*seg)->index().size(); ++i) {
        const std::uint32_t wrong = (*seg)->index()[i].relative_offset - 1;
        ASSERT_TRUE(idx->write_at(std::as_bytes(std::span(&wrong, 1)), i * idx_entry_bytes));
    }
    auto tix = posix_file::open((*seg)->tix_path(), false);
    for (std::size_t i = 1; i + 1 < (*seg)->index().size(); ++i) {
        const std::uint32_t wrong = (*seg)->index()[i].relative_offset - 1;
        ASSERT_TRUE(tix->write_at(std::as_bytes(std::span(&wrong, 1)), i * tix_entry_bytes + 8));
    }
    const auto right = std::vector<index_entry>((*seg)->index().begin(), (*seg)->index().end());
    seg->reset();
    recovery_stats stats;
    auto again = segment::recover(dir.path(), offset{0}, small_options(), false, stats);
    ASSERT_TRUE(again.has_value());
    ASSERT_NE(std::vector<index_entry>((*again)->index().begin(), (*again)->index().end()),
              right);  // wrong, but not detected at open
    std::vector<std::byte> buffer(2048);
    for (std::uint64_t from = 0; from < records.size(); ++from) {
        const auto result = (*again)->read(offset{from}, buffer);
        ASSERT_TRUE(result.has_value()) << from;
        const auto batch = batch_view::parse(result->batches);
        ASSERT_TRUE(batch.has_value());
        EXPECT_LE(batch->header().base_offset.value, from);
        EXPECT_GT(batch->header().end_offset().value, from);
    }
    expect_records(**again, records);
    EXPECT_EQ(std::vector<index_entry>((*again)->index().begin(), (*again)->index().end()), right);
}

// A create that fails part-way (here: an .idx of that name that holds data)
// removes the files it made, and only those: no empty <base>.log is left to
// overlap the segment that goes on taking the offsets.
TEST(Segment, ACreateThatFailsRemovesOnlyWhatItMade) {
    testing::temp_dir dir;
    const auto log_path = dir.path() / segment_file_name(offset{7}, "log");
    const auto idx_path = dir.path() / segment_file_name(offset{7}, "idx");
    const auto tix_path = dir.path() / segment_file_name(offset{7}, "tix");
    {
        auto idx = posix_file::open(idx_path, true);
        ASSERT_TRUE(idx.has_value());
        const std::array<std::byte, idx_entry_bytes> entry{};
        ASSERT_TRUE(idx->write_at(entry, 0).has_value());
    }
    const auto failed = segment::create(dir.path(), offset{7}, small_options());
    ASSERT_FALSE(failed.has_value());
    EXPECT_EQ(failed.error(), errc::invalid_argument);
    EXPECT_FALSE(std::filesystem::exists(log_path)) << "the .log it created is left behind";
    EXPECT_FALSE(std::filesystem::exists(tix_path));
    EXPECT_EQ(std::filesystem::file_size(idx_path), idx_entry_bytes) << "not its file to remove";

    // An empty leftover of that name holds nothing and is reused.
    std::filesystem::remove(idx_path);
    { ASSERT_TRUE(posix_file::open(log_path, true).has_value()); }
    const auto created = segment::create(dir.path(), offset{7}, small_options());
    ASSERT_TRUE(created.has_value()) << to_string(created.error());
    EXPECT_TRUE(std::filesystem::exists(idx_path));
    EXPECT_TRUE(std::filesystem::exists(tix_path));
}

// A torn batch cut from the active segment counts its own bytes, up to the
// last non-zero one, not the preallocated zeros after it.
TEST(Segment, TruncatedBytesCountTheTornBatchNotTheZerosAfterIt) {
    testing::temp_dir dir;
    std::mt19937_64 rng(5);
    std::uint64_t ts = 0;
    auto seg = segment::create(dir.path(), offset{0}, small_options());
    ASSERT_TRUE(seg.has_value());
    const auto records = append_batches(**seg, rng, 10, ts);
    const auto log_bytes = (*seg)->log_bytes();
    constexpr std::size_t torn_bytes = 100;
    std::array<std::byte, torn_bytes> torn{};
    torn.fill(std::byte{0x5a});
    (*seg)->reserve(log_bytes + 3 * small_options().preallocate_step_bytes);
    ASSERT_TRUE((*seg)->log().write_at(torn, log_bytes).has_value());
    ASSERT_GT(std::filesystem::file_size((*seg)->log_path()), log_bytes + torn_bytes + 4096);
    seg->reset();

    recovery_stats stats;
    auto again = segment::recover(dir.path(), offset{0}, small_options(), true, stats);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ((*again)->log_bytes(), log_bytes);
    EXPECT_EQ(stats.truncated_bytes, torn_bytes);
    EXPECT_EQ(std::filesystem::file_size((*again)->log_path()), log_bytes);
    expect_records(**again, records);
}

// The rebuild after an index mismatch serves the read from the index in
// memory when the index files cannot be written (here: the .idx name is a
// directory); the files stay dirty.
TEST(Segment, AMismatchedIndexIsRebuiltOnReadEvenWhenItsFilesCannotBeWritten) {
    testing::temp_dir dir;
    std::mt19937_64 rng(6);
    std::uint64_t ts = 0;
    auto seg = segment::create(dir.path(), offset{0}, small_options());
    ASSERT_TRUE(seg.has_value());
    const auto records = append_batches(**seg, rng, 40, ts);
    ASSERT_TRUE((*seg)->seal().has_value());
    ASSERT_GT((*seg)->index().size(), 3u);
    const auto right = std::vector<index_entry>((*seg)->index().begin(), (*seg)->index().end());
    // Entry 1 claims the offset of entry 2: well formed, wrong.
    auto idx = posix_file::open((*seg)->idx_path(), false);
    ASSERT_TRUE(idx.has_value());
    const std::uint32_t wrong = right[1].relative_offset - 1;
    ASSERT_TRUE(idx->write_at(std::as_bytes(std::span(&wrong, 1)), idx_entry_bytes));
    auto tix = posix_file::open((*seg)->tix_path(), false);
    ASSERT_TRUE(tix.has_value());
    ASSERT_TRUE(tix->write_at(std::as_bytes(std::span(&wrong, 1)), tix_entry_bytes + 8));
    seg->reset();
    recovery_stats stats;
    auto again = segment::recover(dir.path(), offset{0}, small_options(), false, stats);
    ASSERT_TRUE(again.has_value());
    (*again)->close_file();
    ASSERT_TRUE((*again)->reopen().has_value());  // the .log only
    std::filesystem::remove((*again)->idx_path());
    std::filesystem::create_directory((*again)->idx_path());

    std::vector<std::byte> buffer(2048);
    const auto result = (*again)->read(offset{right[1].relative_offset}, buffer);
    ASSERT_TRUE(result.has_value()) << to_string(result.error());
    EXPECT_EQ(std::vector<index_entry>((*again)->index().begin(), (*again)->index().end()), right);
    EXPECT_TRUE((*again)->index_dirty());
    expect_records(**again, records);
}

}  // namespace
}  // namespace nagare::storage
