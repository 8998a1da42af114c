#include "storage/record_batch.h"

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

#include "tests/protocol/alloc_counter.h"
#include "tests/storage/test_records.h"

namespace nagare::storage {
namespace {

using testing::owned_record;

struct encoded {
    std::vector<owned_record> records;
    std::vector<std::uint64_t> timestamps_ns;
    std::vector<std::byte> bytes;
};

encoded encode(std::uint64_t seed, std::size_t count, offset base) {
    std::mt19937_64 rng(seed);
    encoded out;
    out.bytes.resize(64 * 1024);
    batch_builder builder(out.bytes);
    EXPECT_TRUE(builder.open(base));
    std::uint64_t ts = 1'700'000'000'000'000'000ull;
    for (std::size_t i = 0; i < count; ++i) {
        out.records.push_back(testing::random_record(rng, 64));
        ts += rng() % 3 == 0 ? 0 : rng() % 1'000'000;
        out.timestamps_ns.push_back(ts);
        EXPECT_TRUE(builder.add(out.records.back().ref(), ts));
    }
    const auto batch = builder.seal();
    out.bytes.assign(batch.begin(), batch.end());
    return out;
}

// Parses and reads every record; returns how many matched `want` in order.
// A record that differs from `want` fails the test.
std::expected<std::size_t, errc> read_all(std::span<const std::byte> bytes, const encoded& want,
                                          offset base) {
    const auto batch = batch_view::parse(bytes);
    if (!batch) return std::unexpected(batch.error());
    std::size_t i = 0;
    auto status = batch->for_each([&](const record_view& r) {
        EXPECT_LT(i, want.records.size());
        if (i >= want.records.size()) return false;
        EXPECT_EQ(r.record_offset, offset{base.value + i});
        EXPECT_EQ(r.timestamp_ns, want.timestamps_ns[i]);
        testing::expect_same(r, want.records[i]);
        ++i;
        return true;
    });
    if (!status) return std::unexpected(status.error());
    return i;
}

TEST(RecordBatch, RoundTrip) {
    const offset base{1234567};
    const auto batch = encode(1, 25, base);
    const auto view = batch_view::parse(batch.bytes);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->header().base_offset, base);
    EXPECT_EQ(view->header().record_count, 25u);
    EXPECT_EQ(view->header().end_offset(), offset{base.value + 25});
    EXPECT_EQ(view->header().batch_bytes, batch.bytes.size());
    EXPECT_EQ(view->header().first_timestamp_ns, batch.timestamps_ns.front());
    EXPECT_EQ(view->header().last_timestamp_ns, batch.timestamps_ns.back());
    const auto n = read_all(batch.bytes, batch, base);
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(*n, 25u);
}

TEST(RecordBatch, ParseIgnoresBytesAfterTheBatch) {
    auto batch = encode(2, 3, offset{0});
    const auto size = batch.bytes.size();
    batch.bytes.resize(size + 100, std::byte{0x5a});
    const auto view = batch_view::parse(batch.bytes);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->bytes().size(), size);
}

TEST(RecordBatch, HeaderLayoutIsPinned) {
    const auto batch = encode(3, 2, offset{0x1122334455667788ull});
    std::uint32_t magic = 0;
    std::uint64_t base = 0;
    std::memcpy(&magic, batch.bytes.data() + batch_layout::magic, 4);
    std::memcpy(&base, batch.bytes.data() + batch_layout::base_offset, 8);
    EXPECT_EQ(magic, batch_magic);
    EXPECT_EQ(base, 0x1122334455667788ull);
    EXPECT_EQ(std::to_integer<int>(batch.bytes[0]), 'N');
    EXPECT_EQ(std::to_integer<int>(batch.bytes[3]), '1');
}

TEST(RecordBatch, EveryTruncationIsCorrupt) {
    const auto batch = encode(4, 6, offset{10});
    for (std::size_t keep = 0; keep < batch.bytes.size(); ++keep) {
        const auto view = batch_view::parse(std::span(batch.bytes).first(keep));
        ASSERT_FALSE(view.has_value()) << "kept " << keep;
        EXPECT_EQ(view.error(), errc::corrupt);
    }
}

TEST(RecordBatch, EverySingleByteFlipIsCorrupt) {
    const auto batch = encode(5, 4, offset{99});
    for (std::size_t at = 0; at < batch.bytes.size(); ++at) {
        for (int delta = 1; delta < 256; ++delta) {
            auto bytes = batch.bytes;
            bytes[at] ^= static_cast<std::byte>(delta);
            const auto n = read_all(bytes, batch, offset{99});
            ASSERT_FALSE(n.has_value()) << "byte " << at << " delta " << delta;
            ASSERT_EQ(n.error(), errc::corrupt);
        }
    }
}

// With the checksum recomputed, damage reaches the record decoder: every
// result must be an error or records that stay inside the batch (ASan checks).
TEST(RecordBatch, DamageBehindAValidChecksumIsBoundsChecked) {
    const auto batch = encode(6, 4, offset{7});
    std::size_t rejected = 0;
    std::size_t inputs = 0;
    for (std::size_t at = batch_layout::checksummed; at < batch.bytes.size(); ++at) {
        for (int delta : {1, 0x7f, 0x80, 0xff}) {
            auto bytes = batch.bytes;
            bytes[at] ^= static_cast<std::byte>(delta);
            const auto covered = std::span(bytes).subspan(batch_layout::checksummed);
            const std::uint64_t sum = XXH3_64bits(covered.data(), covered.size());
            std::memcpy(bytes.data() + batch_layout::checksum, &sum, sizeof sum);
            ++inputs;
            const auto view = batch_view::parse(bytes);
            if (!view) {
                ++rejected;
                continue;
            }
            std::size_t touched = 0;
            const auto status = view->for_each([&](const record_view& r) {
                for (const auto& h : r.headers) touched += h.key.size() + h.value.size();
                touched += r.project.size() + r.subject.size() + r.msg_id.size() + r.payload.size();
                return true;
            });
            if (!status) ++rejected;
            EXPECT_LE(touched, bytes.size());
        }
    }
    EXPECT_GT(rejected, 0u);
    EXPECT_LT(rejected, inputs);  // payload bytes change without breaking the structure
}

TEST(RecordBatchBuilder, RefusesWhatDoesNotFitAndWritesNothing) {
    std::vector<std::byte> buffer(200);
    batch_builder builder(buffer);
    ASSERT_TRUE(builder.open(offset{0}));
    testing::owned_record big;
    big.project = "p";
    big.subject = "a.b";
    big.msg_id = "m";
    big.payload.resize(500);
    const auto before = builder.used_bytes();
    EXPECT_FALSE(builder.add(big.ref(), 1));
    EXPECT_EQ(builder.used_bytes(), before);
    big.payload.resize(10);
    EXPECT_TRUE(builder.add(big.ref(), 1));
    const auto batch = builder.seal();
    EXPECT_TRUE(batch_view::parse(batch).has_value());
}

TEST(RecordBatchBuilder, RewindDropsRecordsAndBatches) {
    std::vector<std::byte> buffer(4096);
    batch_builder builder(buffer);
    std::mt19937_64 rng(7);
    auto a = testing::random_record(rng, 10);
    auto b = testing::random_record(rng, 10);
    ASSERT_TRUE(builder.open(offset{0}));
    ASSERT_TRUE(builder.add(a.ref(), 5));
    const auto mark = builder.save();
    ASSERT_TRUE(builder.add(b.ref(), 6));
    builder.seal();
    ASSERT_TRUE(builder.open(offset{2}));
    ASSERT_TRUE(builder.add(b.ref(), 7));
    builder.rewind(mark);
    EXPECT_TRUE(builder.is_open());
    EXPECT_EQ(builder.open_records(), 1u);
    const auto batch = builder.seal();
    const auto view = batch_view::parse(batch);
    ASSERT_TRUE(view.has_value());
    EXPECT_EQ(view->header().record_count, 1u);
    EXPECT_EQ(view->header().last_timestamp_ns, 5u);
    EXPECT_EQ(batch.size(), builder.used_bytes());
}

TEST(RecordBatchBuilder, EncodingAllocatesNothing) {
    std::vector<std::byte> buffer(1 << 16);
    batch_builder builder(buffer);
    std::mt19937_64 rng(8);
    auto r = testing::random_record(rng, 100);
    const auto ref = r.ref();
    const auto before = protocol::testing::allocations();
    for (int round = 0; round < 10; ++round) {
        builder.reset(buffer);
        ASSERT_TRUE(builder.open(offset{0}));
        for (int i = 0; i < 50; ++i) ASSERT_TRUE(builder.add(ref, 1));
        const auto batch = builder.seal();
        const auto view = batch_view::parse(batch);
        ASSERT_TRUE(view.has_value());
        ASSERT_TRUE(view->validate_records().has_value());
    }
    EXPECT_EQ(protocol::testing::allocations(), before);
}

TEST(RecordBatch, EncodedRecordBytesMatchesTheEncoding) {
    std::vector<std::byte> buffer(4096);
    batch_builder builder(buffer);
    std::mt19937_64 rng(9);
    auto r = testing::random_record(rng, 300);
    ASSERT_TRUE(builder.open(offset{0}));
    ASSERT_TRUE(builder.add(r.ref(), 1));
    EXPECT_EQ(builder.open_bytes(), batch_header_bytes + encoded_record_bytes(r.ref(), 0, 0));
    EXPECT_TRUE(within_record_limits(r.ref()));
    r.project = std::string(protocol::project_bytes_max + 1, 'p');
    EXPECT_FALSE(within_record_limits(r.ref()));
}

}  // namespace
}  // namespace nagare::storage
