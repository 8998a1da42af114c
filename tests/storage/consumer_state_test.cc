#include "storage/consumer_state.h"

#include <atomic>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <xxhash.h>

#include "tests/protocol/alloc_counter.h"
#include "tests/storage/test_file_io.h"

namespace nagare::storage {
namespace {

namespace fs = std::filesystem;

// ---- helpers ----------------------------------------------------------------

std::vector<std::uint64_t> acked_list(const partition_ack_state& p) {
    std::vector<std::uint64_t> out;
    p.for_each_acked([&](offset o) { out.push_back(o.value); });
    return out;
}

std::map<std::uint64_t, std::uint32_t> delivery_map(const partition_ack_state& p) {
    std::map<std::uint64_t, std::uint32_t> out;
    p.for_each_delivery([&](offset o, std::uint32_t count) { out.emplace(o.value, count); });
    return out;
}

void ack_ok(partition_ack_state& p, std::uint64_t o) {
    const auto r = p.ack(offset{o});
    ASSERT_TRUE(r.has_value()) << "ack " << o;
    EXPECT_TRUE(*r) << "ack " << o << " was not new";
}

std::uint32_t deliver_ok(partition_ack_state& p, std::uint64_t o) {
    const auto r = p.record_delivery(offset{o});
    EXPECT_TRUE(r.has_value()) << "deliver " << o;
    return r.value_or(0);
}

// A state with several partitions, acked offsets above each floor and
// delivery counts: what a busy consumer looks like.
consumer_state sample_state(std::uint64_t variant) {
    consumer_state state("projector-1", "events", 0xfeedface00000000ull + variant, 3);
    state.counters = {.redelivered = 7 + variant, .dead_lettered = 2, .terminated = 1};
    auto& p0 = state.partition(partition_id{0});
    for (std::uint64_t o = 0; o < 40 + variant; ++o) ack_ok(p0, o);
    for (std::uint64_t o = 100 + variant; o < 300; o += 3) ack_ok(p0, o);
    EXPECT_EQ(deliver_ok(p0, 40 + variant), 1u);
    EXPECT_EQ(deliver_ok(p0, 40 + variant), 2u);
    EXPECT_EQ(deliver_ok(p0, 400), 1u);
    auto& p1 = state.partition(partition_id{1});
    p1.advance_floor(offset{1'000'000'000'000ull + variant});
    ack_ok(p1, p1.floor().value + 63);
    ack_ok(p1, p1.floor().value + 64);
    ack_ok(p1, p1.floor().value + 1'000);
    EXPECT_EQ(deliver_ok(p1, p1.floor().value), 1u);
    // Partition 2 stays empty.
    return state;
}

// Overwrites the header checksum (and body length) so a tampered body passes
// the checksum and reaches the structure checks.
void reseal(std::vector<std::byte>& file) {
    const auto body = static_cast<std::uint32_t>(file.size() - state_header_bytes);
    std::memcpy(file.data() + state_body_bytes_pos, &body, sizeof(body));
    const auto sum =
        XXH3_64bits(file.data() + state_checksummed_from, file.size() - state_checksummed_from);
    std::memcpy(file.data() + state_checksum_pos, &sum, sizeof(sum));
}

template <class T>
void poke(std::vector<std::byte>& file, std::size_t at, T value) {
    ASSERT_LE(at + sizeof(T), file.size());
    std::memcpy(file.data() + at, &value, sizeof(T));
}

std::vector<std::byte> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

// Overwrites in place, then cuts to length: unlike O_TRUNC this does not make
// ext4 (auto_da_alloc) start writeback on close, which kept the loops slow.
void write_bytes(const fs::path& path, std::span<const std::byte> bytes) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0) << path;
    const auto written = ::pwrite(fd, bytes.data(), bytes.size(), 0);
    EXPECT_EQ(written, static_cast<ssize_t>(bytes.size())) << path;
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(bytes.size())), 0) << path;
    ::close(fd);
}

// ---- partition_ack_state ---------------------------------------------------------

TEST(PartitionAckState, StartsEmptyAtInitialFloor) {
    partition_ack_state p({}, offset{500});
    EXPECT_EQ(p.floor(), offset{500});
    EXPECT_EQ(p.window_end(), offset{500 + ack_window_offsets_default});
    EXPECT_EQ(p.acked_above_floor_count(), 0u);
    EXPECT_TRUE(p.is_acked(offset{499}));
    EXPECT_FALSE(p.is_acked(offset{500}));
    EXPECT_EQ(p.delivery_count(offset{500}), 0u);
    EXPECT_TRUE(acked_list(p).empty());
    p.check_invariants();
}

TEST(PartitionAckState, FloorAdvancesOverOutOfOrderAcks) {
    partition_ack_state p;
    for (const std::uint64_t o : {3u, 1u, 4u, 2u}) ack_ok(p, o);
    EXPECT_EQ(p.floor(), offset{0});
    EXPECT_EQ(acked_list(p), (std::vector<std::uint64_t>{1, 2, 3, 4}));
    EXPECT_EQ(p.acked_above_floor_count(), 4u);
    ack_ok(p, 0);
    EXPECT_EQ(p.floor(), offset{5});
    EXPECT_EQ(p.acked_above_floor_count(), 0u);
    // A run crossing several bitmap words is slid past in one ack.
    for (std::uint64_t o = 6; o < 300; ++o) ack_ok(p, o);
    ack_ok(p, 301);
    EXPECT_EQ(p.floor(), offset{5});
    ack_ok(p, 5);
    EXPECT_EQ(p.floor(), offset{300});
    EXPECT_EQ(acked_list(p), (std::vector<std::uint64_t>{301}));
    EXPECT_TRUE(p.is_acked(offset{299}));
    EXPECT_FALSE(p.is_acked(offset{300}));
    EXPECT_TRUE(p.is_acked(offset{301}));
    p.check_invariants();
}

TEST(PartitionAckState, RepeatedAndBelowFloorAcksAreNotNew) {
    partition_ack_state p;
    ack_ok(p, 0);
    ack_ok(p, 5);
    const auto below = p.ack(offset{0});
    ASSERT_TRUE(below.has_value());
    EXPECT_FALSE(*below);
    const auto again = p.ack(offset{5});
    ASSERT_TRUE(again.has_value());
    EXPECT_FALSE(*again);
    EXPECT_EQ(p.acked_above_floor_count(), 1u);
}

TEST(PartitionAckState, AckBeyondWindowIsOutOfRange) {
    partition_ack_state p({.window_offsets = 128, .delivery_entries_max = 8}, offset{1000});
    ack_ok(p, 1127);  // last offset of the window
    EXPECT_EQ(p.ack(offset{1128}).error(), errc::out_of_range);
    EXPECT_EQ(p.ack(offset{1'000'000}).error(), errc::out_of_range);
    EXPECT_EQ(p.ack(offset{ack_offset_end}).error(), errc::out_of_range);
    EXPECT_FALSE(p.is_acked(offset{1128}));
    EXPECT_EQ(acked_list(p), (std::vector<std::uint64_t>{1127}));
    // Once the floor moves, the window moves with it.
    for (std::uint64_t o = 1000; o < 1010; ++o) ack_ok(p, o);
    EXPECT_EQ(p.window_end(), offset{1138});
    ack_ok(p, 1128);
    p.check_invariants();
}

TEST(PartitionAckState, WindowNearOffsetEndStaysRepresentable) {
    partition_ack_state p({.window_offsets = 64, .delivery_entries_max = 4},
                          offset{ack_offset_end - 10});
    EXPECT_EQ(p.window_end(), offset{ack_offset_end});
    for (std::uint64_t o = ack_offset_end - 10; o < ack_offset_end; ++o) ack_ok(p, o);
    EXPECT_EQ(p.floor(), offset{ack_offset_end});
    EXPECT_EQ(p.ack(offset{ack_offset_end}).error(), errc::out_of_range);
    p.check_invariants();
}

TEST(PartitionAckState, RingWrapsManyTimes) {
    // Holes every 7 offsets, filled one window later: the ring index wraps.
    partition_ack_state p({.window_offsets = 64, .delivery_entries_max = 4});
    std::uint64_t next_hole = 0;
    for (std::uint64_t o = 0; o < 10'000; ++o) {
        if (o % 7 != 0) ack_ok(p, o);
        if (o >= 50 && next_hole <= o - 50) {
            ack_ok(p, next_hole);
            next_hole += 7;
        }
        ASSERT_LE(p.window_end().value - p.floor().value, 64u);
    }
    EXPECT_EQ(p.floor().value, next_hole);
    p.check_invariants();
}

TEST(PartitionAckState, AdvanceFloorSettlesBelowAndDropsCounts) {
    partition_ack_state p({.window_offsets = 256, .delivery_entries_max = 16});
    ack_ok(p, 3);
    ack_ok(p, 10);
    ack_ok(p, 11);
    ack_ok(p, 40);
    EXPECT_EQ(deliver_ok(p, 5), 1u);
    EXPECT_EQ(deliver_ok(p, 30), 1u);
    p.advance_floor(offset{10});  // 10 and 11 were acked: slides to 12
    EXPECT_EQ(p.floor(), offset{12});
    EXPECT_EQ(p.delivery_count(offset{5}), 0u);
    EXPECT_EQ(p.delivery_count(offset{30}), 1u);
    EXPECT_EQ(p.delivery_entries(), 1u);
    EXPECT_EQ(acked_list(p), (std::vector<std::uint64_t>{40}));
    p.advance_floor(offset{4});  // below the floor: no-op
    EXPECT_EQ(p.floor(), offset{12});
    p.advance_floor(offset{100'000});  // beyond the window: everything settled
    EXPECT_EQ(p.floor(), offset{100'000});
    EXPECT_EQ(p.acked_above_floor_count(), 0u);
    EXPECT_EQ(p.delivery_entries(), 0u);
    p.check_invariants();
}

TEST(PartitionAckState, DeliveryCountsIncrementAndClearOnAck) {
    partition_ack_state p;
    EXPECT_EQ(deliver_ok(p, 7), 1u);
    EXPECT_EQ(deliver_ok(p, 7), 2u);
    EXPECT_EQ(deliver_ok(p, 7), 3u);
    EXPECT_EQ(deliver_ok(p, 9), 1u);
    EXPECT_EQ(p.delivery_count(offset{7}), 3u);
    EXPECT_EQ(p.delivery_count(offset{8}), 0u);
    EXPECT_EQ(p.delivery_entries(), 2u);
    ack_ok(p, 7);
    EXPECT_EQ(p.delivery_count(offset{7}), 0u);
    EXPECT_EQ(p.delivery_entries(), 1u);
    EXPECT_EQ(delivery_map(p), (std::map<std::uint64_t, std::uint32_t>{{9, 1}}));
    p.check_invariants();
}

TEST(PartitionAckState, DeliveryOfSettledOrBeyondWindowIsRejected) {
    partition_ack_state p({.window_offsets = 64, .delivery_entries_max = 4}, offset{10});
    ack_ok(p, 12);
    EXPECT_EQ(p.record_delivery(offset{9}).error(), errc::invalid_argument);   // below floor
    EXPECT_EQ(p.record_delivery(offset{12}).error(), errc::invalid_argument);  // acked
    EXPECT_EQ(p.record_delivery(offset{74}).error(), errc::out_of_range);
    EXPECT_EQ(p.restore_delivery_count(offset{11}, 0).error(), errc::invalid_argument);
    EXPECT_TRUE(p.restore_delivery_count(offset{11}, 4).has_value());
    EXPECT_EQ(p.restore_delivery_count(offset{11}, 4).error(), errc::invalid_argument);
    EXPECT_EQ(p.delivery_count(offset{11}), 4u);
    EXPECT_EQ(p.delivery_entries(), 1u);
}

TEST(PartitionAckState, DeliveryTableFullIsAnError) {
    partition_ack_state p({.window_offsets = 1024, .delivery_entries_max = 8});
    for (std::uint64_t o = 0; o < 8; ++o) EXPECT_EQ(deliver_ok(p, o * 64), 1u);
    EXPECT_EQ(p.record_delivery(offset{1}).error(), errc::invalid_argument);
    EXPECT_EQ(deliver_ok(p, 64), 2u);  // a known offset still counts
    ack_ok(p, 128);                    // frees an entry
    EXPECT_EQ(deliver_ok(p, 1), 1u);
    EXPECT_EQ(p.delivery_entries(), 8u);
    p.check_invariants();
}

TEST(PartitionAckState, NoAllocationAfterConstruction) {
    partition_ack_state p({.window_offsets = 4096, .delivery_entries_max = 256});
    std::uint64_t sink = 0;
    const auto before = protocol::testing::allocations();
    for (std::uint64_t o = 0; o < 20'000; ++o) {
        sink += p.record_delivery(offset{o}).value_or(0);
        sink += p.record_delivery(offset{o}).value_or(0);
        if (o % 5 != 4) sink += p.ack(offset{o}).value_or(false) ? 1u : 0u;
        if (o % 5 == 4 && o >= 200) sink += p.ack(offset{o - 200}).value_or(false) ? 1u : 0u;
        sink += p.delivery_count(offset{o}) + (p.is_acked(offset{o}) ? 1u : 0u);
    }
    p.advance_floor(offset{30'000});
    p.for_each_acked([&](offset o) { sink += o.value; });
    EXPECT_EQ(protocol::testing::allocations(), before);
    EXPECT_GT(sink, 0u);
    EXPECT_EQ(p.floor(), offset{30'000});
}

// The randomized model: a floor plus a std::set of acked offsets above it
// and a std::map of delivery counts, driven by the same operations.
struct ack_model {
    std::uint64_t floor = 0;
    std::set<std::uint64_t> acked;
    std::map<std::uint64_t, std::uint32_t> deliveries;
    std::uint64_t window = 0;
    std::uint32_t entries_max = 0;

    void slide() {
        while (!acked.empty() && *acked.begin() == floor) {
            acked.erase(acked.begin());
            ++floor;
        }
    }
    std::expected<bool, errc> ack(std::uint64_t o) {
        if (o < floor) return false;
        if (o - floor >= window) return std::unexpected(errc::out_of_range);
        const bool fresh = acked.insert(o).second;
        deliveries.erase(o);
        slide();
        return fresh;
    }
    std::expected<std::uint32_t, errc> deliver(std::uint64_t o) {
        if (o < floor || acked.contains(o)) return std::unexpected(errc::invalid_argument);
        if (o - floor >= window) return std::unexpected(errc::out_of_range);
        if (auto it = deliveries.find(o); it != deliveries.end()) return ++it->second;
        if (deliveries.size() >= entries_max) return std::unexpected(errc::invalid_argument);
        deliveries.emplace(o, 1u);
        return 1u;
    }
    void advance(std::uint64_t to) {
        if (to <= floor) return;
        floor = to;
        acked.erase(acked.begin(), acked.lower_bound(to));
        deliveries.erase(deliveries.begin(), deliveries.lower_bound(to));
        slide();
    }
};

void expect_same(const partition_ack_state& p, const ack_model& m, std::uint64_t seed, int step) {
    ASSERT_EQ(p.floor().value, m.floor) << "seed " << seed << " step " << step;
    ASSERT_EQ(p.acked_above_floor_count(), m.acked.size()) << "seed " << seed << " step " << step;
    ASSERT_EQ(acked_list(p), std::vector<std::uint64_t>(m.acked.begin(), m.acked.end()))
        << "seed " << seed << " step " << step;
    ASSERT_EQ(delivery_map(p), m.deliveries) << "seed " << seed << " step " << step;
    p.check_invariants();
}

TEST(PartitionAckState, RandomizedAgainstSetModel) {
    const ack_state_limits limits{.window_offsets = 256, .delivery_entries_max = 32};
    for (const std::uint64_t seed : {1u, 7u, 42u, 20250525u}) {
        std::mt19937_64 rng(seed);
        partition_ack_state p(limits);
        ack_model m;
        m.window = limits.window_offsets;
        m.entries_max = limits.delivery_entries_max;
        auto pick = [&] {
            // Mostly near the floor, sometimes below it or past the window.
            std::uniform_int_distribution<std::uint64_t> spread(0, 300);
            const auto d = spread(rng);
            const auto base = m.floor >= 20 ? m.floor - 20 : 0;
            return base + d;
        };
        for (int step = 0; step < 20'000; ++step) {
            const auto op = rng() % 100;
            const auto o = pick();
            if (op < 55) {
                ASSERT_EQ(p.ack(offset{o}), m.ack(o)) << "seed " << seed << " ack " << o;
            } else if (op < 90) {
                ASSERT_EQ(p.record_delivery(offset{o}), m.deliver(o))
                    << "seed " << seed << " deliver " << o;
            } else if (op < 92) {
                const auto to = m.floor + rng() % 400;
                p.advance_floor(offset{to});
                m.advance(to);
            } else {
                ASSERT_EQ(p.is_acked(offset{o}), o < m.floor || m.acked.contains(o));
                const auto it = m.deliveries.find(o);
                ASSERT_EQ(p.delivery_count(offset{o}), it == m.deliveries.end() ? 0u : it->second);
            }
            if (step % 500 == 0) {
                expect_same(p, m, seed, step);
                consumer_state state("model", "events", seed, 1, limits);
                state.partitions[0] = p;
                std::vector<std::byte> file;
                ASSERT_TRUE(encode_consumer_state(state, file).has_value());
                const auto back = decode_consumer_state(file);
                ASSERT_TRUE(back.has_value()) << "seed " << seed << " step " << step;
                ASSERT_TRUE(*back == state) << "seed " << seed << " step " << step;
            }
        }
        expect_same(p, m, seed, -1);
        EXPECT_GT(m.floor, 1000u) << "the floor should have moved a long way, seed " << seed;
    }
}

// ---- encode / decode ----------------------------------------------------------

TEST(ConsumerStateCodec, RoundTripsSeveralPartitions) {
    auto state = sample_state(0);
    ack_ok(state.partitions[2], ack_window_offsets_default - 1);  // the window's last bit
    std::vector<std::byte> file;
    ASSERT_TRUE(encode_consumer_state(state, file).has_value());
    EXPECT_TRUE(verify_consumer_state(file).has_value());
    const auto back = decode_consumer_state(file);
    ASSERT_TRUE(back.has_value());
    EXPECT_TRUE(*back == state);
    EXPECT_EQ(back->name, "projector-1");
    EXPECT_EQ(back->stream, "events");
    EXPECT_EQ(back->stream_epoch, state.stream_epoch);
    EXPECT_EQ(back->counters, state.counters);
    ASSERT_EQ(back->partitions.size(), 3u);
    EXPECT_EQ(back->partition(partition_id{0}).delivery_count(offset{40}), 2u);
    EXPECT_TRUE(back->partition(partition_id{1}).is_acked(offset{1'000'000'001'000ull}));
    EXPECT_EQ(back->partition(partition_id{2}).floor(), offset{0});
    EXPECT_EQ(acked_list(back->partition(partition_id{2})),
              std::vector<std::uint64_t>{ack_window_offsets_default - 1});
    // A changed field is seen by the comparison (guards the test above).
    auto changed = *back;
    ASSERT_TRUE(changed.partitions[0].record_delivery(offset{40}).has_value());
    EXPECT_FALSE(changed == state);
}

TEST(ConsumerStateCodec, HeaderBytesAreAsDocumented) {
    std::vector<std::byte> file;
    ASSERT_TRUE(encode_consumer_state(consumer_state("c", "events", 9, 0), file).has_value());
    ASSERT_EQ(file.size(), state_header_bytes + state_body_fixed_bytes + 1 + 6);
    EXPECT_EQ(std::memcmp(file.data(), "NGCS", 4), 0);
    EXPECT_EQ(file[state_version_pos], std::byte{1});
    std::uint32_t body = 0;
    std::memcpy(&body, file.data() + state_body_bytes_pos, sizeof(body));
    EXPECT_EQ(body, file.size() - state_header_bytes);
    std::uint64_t epoch = 0;
    std::memcpy(&epoch, file.data() + state_header_bytes, sizeof(epoch));
    EXPECT_EQ(epoch, 9u);
}

TEST(ConsumerStateCodec, EncodeRejectsBadNames) {
    std::vector<std::byte> file;
    for (const auto* name : {"", "a.b", "../x", "a b"}) {
        EXPECT_EQ(encode_consumer_state(consumer_state(name, "events", 0, 1), file).error(),
                  errc::invalid_argument)
            << name;
    }
    EXPECT_EQ(
        encode_consumer_state(consumer_state(std::string(65, 'a'), "events", 0, 1), file).error(),
        errc::invalid_argument);
    EXPECT_EQ(encode_consumer_state(consumer_state("ok", "bad stream", 0, 1), file).error(),
              errc::invalid_argument);
    EXPECT_TRUE(
        encode_consumer_state(consumer_state(std::string(64, 'a'), "$dlq.events.w", 0, 1), file)
            .has_value());
}

TEST(ConsumerStateCodec, EveryTruncationIsCorrupt) {
    std::vector<std::byte> file;
    ASSERT_TRUE(encode_consumer_state(sample_state(0), file).has_value());
    for (std::size_t length = 0; length < file.size(); ++length) {
        EXPECT_EQ(decode_consumer_state(std::span(file).first(length)).error(), errc::corrupt)
            << length;
    }
}

// Faults behind a valid checksum: the structure checks must catch them.
TEST(ConsumerStateCodec, StructureIsCheckedBehindAValidChecksum) {
    std::vector<std::byte> good;
    consumer_state state("c", "events", 1, 1);
    ack_ok(state.partitions[0], 1);            // floor 0, bit 1 set
    (void)deliver_ok(state.partitions[0], 0);  // one delivery entry
    ASSERT_TRUE(encode_consumer_state(state, good).has_value());
    const std::size_t part = state_header_bytes + state_body_fixed_bytes + 1 + 6;
    ASSERT_EQ(good.size(), part + state_partition_fixed_bytes + 8 + state_delivery_entry_bytes);
    const std::size_t word = part + state_partition_fixed_bytes;
    const std::size_t entry = word + 8;
    const std::size_t body = state_header_bytes;

    struct tamper {
        const char* what;
        std::function<void(std::vector<std::byte>&)> change;
    };
    const std::vector<tamper> cases = {
        {"unknown flag", [](auto& f) { poke<std::uint16_t>(f, state_flags_pos, 1); }},
        {"partition count above the limit",
         [&](auto& f) { poke<std::uint32_t>(f, body + 32, consumer_partitions_max + 1); }},
        {"partition count beyond the bytes",
         [&](auto& f) { poke<std::uint32_t>(f, body + 32, 2); }},
        {"name length beyond the bytes", [&](auto& f) { poke<std::uint16_t>(f, body + 36, 60); }},
        {"empty name", [&](auto& f) { poke<std::uint16_t>(f, body + 36, 0); }},
        {"bad name character", [&](auto& f) { poke<char>(f, body + 40, '/'); }},
        {"ack beyond ack_offset_end",
         [&](auto& f) { poke<std::uint64_t>(f, part, ack_offset_end - 1); }},
        {"window not a power of two", [&](auto& f) { poke<std::uint32_t>(f, part + 8, 1000); }},
        {"window above the limit",
         [&](auto& f) { poke<std::uint32_t>(f, part + 8, ack_window_offsets_limit * 2); }},
        {"no delivery entries allowed", [&](auto& f) { poke<std::uint32_t>(f, part + 12, 0); }},
        {"delivery entries above the limit",
         [&](auto& f) { poke<std::uint32_t>(f, part + 12, delivery_entries_max_limit + 1); }},
        {"acked words beyond the window",
         [&](auto& f) { poke<std::uint32_t>(f, part + 16, 65536 / 64 + 1); }},
        {"acked words beyond the bytes", [&](auto& f) { poke<std::uint32_t>(f, part + 16, 900); }},
        {"more entries than allowed",
         [&](auto& f) { poke<std::uint32_t>(f, part + 20, delivery_entries_max_default + 1); }},
        {"floor bit set", [&](auto& f) { poke<std::uint64_t>(f, word, 3); }},
        {"trailing zero word", [&](auto& f) { poke<std::uint64_t>(f, word, 0); }},
        {"entry offset beyond the window", [&](auto& f) { poke<std::uint32_t>(f, entry, 70'000); }},
        {"entry for an acked offset", [&](auto& f) { poke<std::uint32_t>(f, entry, 1); }},
        {"entry with count 0", [&](auto& f) { poke<std::uint32_t>(f, entry + 4, 0); }},
        {"trailing bytes", [](auto& f) { f.resize(f.size() + 8); }},
        {"missing bytes", [](auto& f) { f.resize(f.size() - 4); }},
    };
    for (const auto& c : cases) {
        auto file = good;
        c.change(file);
        reseal(file);
        const auto decoded = decode_consumer_state(file);
        ASSERT_FALSE(decoded.has_value()) << c.what;
        EXPECT_EQ(decoded.error(), errc::corrupt) << c.what;
    }
    auto same = good;
    reseal(same);
    EXPECT_TRUE(decode_consumer_state(same).has_value()) << "reseal alone must keep it valid";
}

// ---- consumer_state_store -------------------------------------------------------

class ConsumerStateStore : public ::testing::Test {
protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        _dir =
            fs::temp_directory_path() / ("nagare-cstate-" + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter.fetch_add(1)) + "-" + info->name());
        fs::create_directories(_dir);
        auto opened = consumer_state_store::open(_dir);
        ASSERT_TRUE(opened.has_value());
        _store.emplace(std::move(*opened));
    }
    void TearDown() override {
        _store.reset();
        std::error_code ignored;
        fs::remove_all(_dir, ignored);
    }

    consumer_state_store& store() { return *_store; }
    fs::path file(std::string_view suffix) const {
        return _dir / "consumers" / ("projector-1" + std::string(suffix));
    }
    // Saves A then B: .state holds B, .state.prev holds A.
    void save_two(const consumer_state& a, const consumer_state& b) {
        ASSERT_TRUE(store().save(a).has_value());
        ASSERT_TRUE(store().save(b).has_value());
        ASSERT_TRUE(fs::exists(file(".state")));
        ASSERT_TRUE(fs::exists(file(".state.prev")));
    }
    void expect_loads(const consumer_state& expected, state_copy copy, bool newest_corrupt,
                      const std::string& context) {
        const auto loaded = store().load("projector-1");
        ASSERT_TRUE(loaded.has_value()) << context << ": " << to_string(loaded.error());
        EXPECT_TRUE(loaded->state == expected) << context;
        EXPECT_EQ(loaded->copy_used, copy) << context;
        EXPECT_EQ(loaded->newest_corrupt, newest_corrupt) << context;
    }

    fs::path _dir;
    std::optional<consumer_state_store> _store;
};

TEST_F(ConsumerStateStore, SaveLoadRoundTrip) {
    const auto a = sample_state(0);
    ASSERT_TRUE(store().save(a).has_value());
    expect_loads(a, state_copy::newest, false, "first save");
    EXPECT_FALSE(fs::exists(file(".state.tmp")));
    EXPECT_FALSE(fs::exists(file(".state.prev")));
    const auto b = sample_state(1);
    ASSERT_TRUE(store().save(b).has_value());
    expect_loads(b, state_copy::newest, false, "second save");
    const auto previous = decode_consumer_state(read_bytes(file(".state.prev")));
    ASSERT_TRUE(previous.has_value());
    EXPECT_TRUE(*previous == a);
}

TEST_F(ConsumerStateStore, MissingIsNotFound) {
    EXPECT_EQ(store().load("nobody").error(), errc::not_found);
    EXPECT_EQ(store().remove("nobody").error(), errc::not_found);
}

TEST_F(ConsumerStateStore, InvalidNamesAreRejected) {
    EXPECT_EQ(store().load("../etc").error(), errc::invalid_argument);
    EXPECT_EQ(store().load("").error(), errc::invalid_argument);
    EXPECT_EQ(store().remove("a/b").error(), errc::invalid_argument);
    EXPECT_EQ(store().save(consumer_state("a.b", "events", 0, 1)).error(), errc::invalid_argument);
}

TEST_F(ConsumerStateStore, OpenOfAMissingDirectoryIsNotFound) {
    EXPECT_EQ(consumer_state_store::open(_dir / "no" / "such").error(), errc::not_found);
    // Opening again finds the existing consumers/ directory and its files.
    ASSERT_TRUE(store().save(sample_state(0)).has_value());
    auto again = consumer_state_store::open(_dir);
    ASSERT_TRUE(again.has_value());
    EXPECT_TRUE(again->load("projector-1").has_value());
}

TEST_F(ConsumerStateStore, TornNewestFallsBackAtEveryLength) {
    const auto a = sample_state(0);
    const auto b = sample_state(1);
    save_two(a, b);
    const auto newest = read_bytes(file(".state"));
    ASSERT_GT(newest.size(), state_header_bytes + state_body_fixed_bytes);
    for (std::size_t length = 0; length < newest.size(); ++length) {
        write_bytes(file(".state"), std::span(newest).first(length));
        expect_loads(a, state_copy::previous, true, "torn at " + std::to_string(length));
    }
    write_bytes(file(".state"), newest);
    expect_loads(b, state_copy::newest, false, "restored");
}

TEST_F(ConsumerStateStore, FlippedByteAnywhereFallsBack) {
    const auto a = sample_state(0);
    const auto b = sample_state(1);
    save_two(a, b);
    const auto newest = read_bytes(file(".state"));
    for (std::size_t at = 0; at < newest.size(); ++at) {
        for (const auto flip : {std::byte{0x01}, std::byte{0x80}, std::byte{0xff}}) {
            auto damaged = newest;
            damaged[at] ^= flip;
            write_bytes(file(".state"), damaged);
            expect_loads(a, state_copy::previous, true, "flip at " + std::to_string(at));
        }
    }
}

TEST_F(ConsumerStateStore, BothCorruptIsCorrupt) {
    save_two(sample_state(0), sample_state(1));
    auto newest = read_bytes(file(".state"));
    auto previous = read_bytes(file(".state.prev"));
    newest[newest.size() / 2] ^= std::byte{0x10};
    previous.resize(previous.size() - 1);
    write_bytes(file(".state"), newest);
    write_bytes(file(".state.prev"), previous);
    EXPECT_EQ(store().load("projector-1").error(), errc::corrupt);
    // A corrupt newest file with no previous copy is corrupt too, not missing.
    fs::remove(file(".state.prev"));
    EXPECT_EQ(store().load("projector-1").error(), errc::corrupt);
    // A corrupt previous copy behind a good newest one does not matter.
    ASSERT_TRUE(store().save(sample_state(2)).has_value());
    write_bytes(file(".state.prev"), previous);
    expect_loads(sample_state(2), state_copy::newest, false, "good newest");
}

TEST_F(ConsumerStateStore, StrayTemporaryFileIsIgnored) {
    // A crash after writing .tmp, before the rename: the old state stands.
    const auto a = sample_state(0);
    ASSERT_TRUE(store().save(a).has_value());
    std::vector<std::byte> newer;
    ASSERT_TRUE(encode_consumer_state(sample_state(1), newer).has_value());
    write_bytes(file(".state.tmp"), std::span(newer).first(newer.size() / 2));
    expect_loads(a, state_copy::newest, false, "stray tmp");
    auto listed = store().list();
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(*listed, std::vector<std::string>{"projector-1"});
    // The next save overwrites it.
    const auto c = sample_state(2);
    ASSERT_TRUE(store().save(c).has_value());
    EXPECT_FALSE(fs::exists(file(".state.tmp")));
    expect_loads(c, state_copy::newest, false, "after next save");
}

TEST_F(ConsumerStateStore, CrashBetweenRenamesUsesPrevious) {
    // Step 2 done, step 3 not: only .state.prev (and the .tmp) exist.
    const auto a = sample_state(0);
    save_two(sample_state(5), a);
    fs::rename(file(".state"), file(".state.prev"));
    std::vector<std::byte> newer;
    ASSERT_TRUE(encode_consumer_state(sample_state(1), newer).has_value());
    write_bytes(file(".state.tmp"), newer);
    expect_loads(a, state_copy::previous, false, "only previous");
    auto listed = store().list();
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(*listed, std::vector<std::string>{"projector-1"});
    const auto c = sample_state(2);
    ASSERT_TRUE(store().save(c).has_value());
    expect_loads(c, state_copy::newest, false, "after next save");
}

TEST_F(ConsumerStateStore, CorruptNewestIsNeverRotatedOverTheGoodCopy) {
    const auto a = sample_state(0);
    save_two(a, sample_state(1));
    auto newest = read_bytes(file(".state"));
    newest[state_header_bytes + 3] ^= std::byte{0x04};
    write_bytes(file(".state"), newest);
    const auto c = sample_state(2);
    ASSERT_TRUE(store().save(c).has_value());  // must keep A as .prev
    expect_loads(c, state_copy::newest, false, "after save");
    write_bytes(file(".state"), newest);  // damage the newest again
    expect_loads(a, state_copy::previous, true, "fallback is still A");
}

TEST_F(ConsumerStateStore, FileOfAnotherConsumerIsCorrupt) {
    ASSERT_TRUE(store().save(sample_state(0)).has_value());
    fs::copy_file(file(".state"), _dir / "consumers" / "other.state");
    EXPECT_EQ(store().load("other").error(), errc::corrupt);
}

TEST_F(ConsumerStateStore, ListAndRemove) {
    auto empty = store().list();
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->empty());
    for (const auto* name : {"zeta", "alpha", "mid_1"}) {
        ASSERT_TRUE(store().save(consumer_state(name, "events", 1, 2)).has_value());
        ASSERT_TRUE(store().save(consumer_state(name, "events", 2, 2)).has_value());
    }
    write_bytes(_dir / "consumers" / "junk.txt", {});
    write_bytes(_dir / "consumers" / "bad.name.state", {});
    auto listed = store().list();
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(*listed, (std::vector<std::string>{"alpha", "mid_1", "zeta"}));
    ASSERT_TRUE(store().remove("mid_1").has_value());
    EXPECT_FALSE(fs::exists(_dir / "consumers" / "mid_1.state"));
    EXPECT_FALSE(fs::exists(_dir / "consumers" / "mid_1.state.prev"));
    EXPECT_EQ(store().load("mid_1").error(), errc::not_found);
    EXPECT_EQ(store().remove("mid_1").error(), errc::not_found);
    listed = store().list();
    ASSERT_TRUE(listed.has_value());
    EXPECT_EQ(*listed, (std::vector<std::string>{"alpha", "zeta"}));
    const auto alpha = store().load("alpha");
    ASSERT_TRUE(alpha.has_value());
    EXPECT_EQ(alpha->state.stream_epoch, 2u);
}

TEST_F(ConsumerStateStore, OversizedFileIsCorruptWithoutReadingIt) {
    const auto a = sample_state(0);
    save_two(a, sample_state(1));
    fs::resize_file(file(".state"), state_header_bytes + state_body_bytes_max + 1);
    expect_loads(a, state_copy::previous, true, "oversized newest");
}

// ---- consumer_state_store::save_async ------------------------------------------------
//
// A save_async is six file_io operations when it rotates (five when not):
//   0 open .tmp, 1 write + fdatasync, 2 close, 3 rename .state -> .prev,
//   4 rename .tmp -> .state, 5 fsync the directory.

using testing::counting_file_io;

constexpr std::size_t rotating_save_operations = 6;

// Polls until the save finished; its outcome.
std::expected<void, errc> finish(consumer_state_store& store, counting_file_io& io) {
    for (int i = 0; i < 100 && store.save_in_flight(); ++i) io.poll(true);
    EXPECT_FALSE(store.save_in_flight());
    auto result = store.take_save_result();
    EXPECT_TRUE(result.has_value());
    return result.value_or(std::unexpected(errc::closed));
}

TEST_F(ConsumerStateStore, SaveAsyncReturnsAtOnceAndSavesOnCompletions) {
    counting_file_io io;
    auto a = sample_state(0);
    ASSERT_TRUE(store().save_async(a, io).has_value());
    EXPECT_TRUE(store().save_in_flight());
    EXPECT_EQ(io.pending(), 1u);  // only the open is queued: nothing touched the disk yet
    EXPECT_FALSE(fs::exists(file(".state.tmp")));
    EXPECT_EQ(store().save_async(a, io).error(), errc::busy);
    EXPECT_FALSE(store().take_save_result().has_value());
    const auto saved = a;
    a.counters.terminated += 100;  // encoded at the start: later changes wait for the next save
    ASSERT_TRUE(finish(store(), io).has_value());
    EXPECT_FALSE(store().take_save_result().has_value()) << "an outcome is taken once";
    EXPECT_EQ(io.operations, rotating_save_operations - 1) << "nothing known to rotate";
    EXPECT_EQ(io.datasyncs, 1u);
    expect_loads(saved, state_copy::newest, false, "first async save");
    EXPECT_FALSE(fs::exists(file(".state.tmp")));
    EXPECT_FALSE(fs::exists(file(".state.prev")));
    // The store installed that .state itself: the next save rotates it without reading it.
    ASSERT_TRUE(store().save_async(a, io).has_value());
    ASSERT_TRUE(finish(store(), io).has_value());
    EXPECT_EQ(io.operations, 2 * rotating_save_operations - 1);
    expect_loads(a, state_copy::newest, false, "second async save");
    const auto previous = decode_consumer_state(read_bytes(file(".state.prev")));
    ASSERT_TRUE(previous.has_value());
    EXPECT_TRUE(*previous == saved);
}

TEST_F(ConsumerStateStore, SaveAsyncRejectsBadStatesWithoutStarting) {
    counting_file_io io;
    EXPECT_EQ(store().save_async(consumer_state("a.b", "events", 0, 1), io).error(),
              errc::invalid_argument);
    EXPECT_FALSE(store().save_in_flight());
    EXPECT_EQ(io.operations, 0u);
}

// Opens a fresh store on `dir` (a restarted broker) and expects `expected`
// from the copy named, with a .prev (if any) that verifies.
void expect_after_restart(const fs::path& dir, const consumer_state& expected, state_copy copy,
                          const std::string& context) {
    auto reopened = consumer_state_store::open(dir);
    ASSERT_TRUE(reopened.has_value()) << context;
    const auto loaded = reopened->load(expected.name);
    ASSERT_TRUE(loaded.has_value()) << context << ": " << to_string(loaded.error());
    EXPECT_TRUE(loaded->state == expected) << context;
    EXPECT_EQ(loaded->copy_used, copy) << context;
    EXPECT_FALSE(loaded->newest_corrupt) << context;
    const auto previous = dir / "consumers" / (expected.name + ".state.prev");
    if (fs::exists(previous)) {
        EXPECT_TRUE(verify_consumer_state(read_bytes(previous)).has_value()) << context;
    }
}

TEST_F(ConsumerStateStore, SaveAsyncCrashAtEveryStepLeavesALoadableDirectory) {
    const auto a = sample_state(0);
    const auto b = sample_state(1);
    const auto c = sample_state(2);
    for (std::size_t crash_at = 0; crash_at <= rotating_save_operations; ++crash_at) {
        const auto context = "crash at operation " + std::to_string(crash_at);
        const auto dir = _dir / ("crash-" + std::to_string(crash_at));
        fs::create_directories(dir);
        {
            auto store = consumer_state_store::open(dir);
            ASSERT_TRUE(store.has_value());
            ASSERT_TRUE(store->save(a).has_value());
            ASSERT_TRUE(store->save(b).has_value());
        }
        auto store = consumer_state_store::open(dir);  // as the broker: a new store, checked
        ASSERT_TRUE(store.has_value());
        ASSERT_TRUE(store->check_newest(b.name));
        counting_file_io io;
        io.crash_at = crash_at;
        ASSERT_TRUE(store->save_async(c, io).has_value());
        for (int i = 0; i < 20 && io.pending() > 0; ++i) io.poll(true);
        EXPECT_EQ(store->save_in_flight(), crash_at < rotating_save_operations) << context;
        EXPECT_EQ(io.vanished(), crash_at < rotating_save_operations ? 1u : 0u) << context;
        if (crash_at <= 3) {  // .tmp at most: the old files stand
            expect_after_restart(dir, b, state_copy::newest, context);
        } else if (crash_at == 4) {  // between the renames: only .prev, which is B
            EXPECT_FALSE(fs::exists(dir / "consumers" / "projector-1.state")) << context;
            expect_after_restart(dir, b, state_copy::previous, context);
        } else {
            expect_after_restart(dir, c, state_copy::newest, context);
        }
        // The restarted broker saves again over whatever the crash left.
        auto again = consumer_state_store::open(dir);
        ASSERT_TRUE(again.has_value());
        (void)again->check_newest(c.name);
        counting_file_io next_io;
        const auto d = sample_state(3);
        ASSERT_TRUE(again->save_async(d, next_io).has_value());
        ASSERT_TRUE(finish(*again, next_io).has_value()) << context;
        expect_after_restart(dir, d, state_copy::newest, context + ", then saved");
    }
}

TEST_F(ConsumerStateStore, SaveAsyncFailureAtEveryStepLeavesALoadableDirectory) {
    const auto a = sample_state(0);
    const auto b = sample_state(1);
    const auto c = sample_state(2);
    const auto d = sample_state(3);
    for (std::size_t failing = 0; failing < rotating_save_operations; ++failing) {
        const auto context = "operation " + std::to_string(failing) + " fails";
        const auto dir = _dir / ("fail-" + std::to_string(failing));
        fs::create_directories(dir);
        auto store = consumer_state_store::open(dir);
        ASSERT_TRUE(store.has_value());
        counting_file_io io;
        ASSERT_TRUE(store->save_async(a, io).has_value());
        ASSERT_TRUE(finish(*store, io).has_value());
        ASSERT_TRUE(store->save_async(b, io).has_value());
        ASSERT_TRUE(finish(*store, io).has_value());
        io.operations = 0;
        io.fail_operation = failing;
        io.fail_errno = EIO;
        ASSERT_TRUE(store->save_async(c, io).has_value());
        const auto failed = finish(*store, io);
        ASSERT_FALSE(failed.has_value()) << context;
        EXPECT_EQ(failed.error(), errc::io_error) << context;
        EXPECT_EQ(store->last_errno(), EIO) << context;
        EXPECT_EQ(io.pending(), 0u) << context;
        if (failing <= 3) {
            expect_after_restart(dir, b, state_copy::newest, context);
        } else if (failing == 4) {
            expect_after_restart(dir, b, state_copy::previous, context);
        } else {
            expect_after_restart(dir, c, state_copy::newest, context);  // not known durable
        }
        // The same store saves again; .prev is always a copy that verified.
        io.fail_operation = counting_file_io::never;
        ASSERT_TRUE(store->save_async(d, io).has_value());
        ASSERT_TRUE(finish(*store, io).has_value()) << context;
        expect_after_restart(dir, d, state_copy::newest, context + ", then saved");
        const auto previous =
            decode_consumer_state(read_bytes(dir / "consumers" / "projector-1.state.prev"));
        ASSERT_TRUE(previous.has_value()) << context;
        EXPECT_TRUE(*previous == (failing == 5 ? c : b)) << context;
    }
}

TEST_F(ConsumerStateStore, SaveAsyncNeverRotatesATornNewestOverTheGoodCopy) {
    const auto a = sample_state(0);
    save_two(a, sample_state(1));
    const auto newest = read_bytes(file(".state"));
    for (const bool checked : {true, false}) {
        const auto context = checked ? std::string("checked") : std::string("never looked at");
        write_bytes(file(".state"), std::span(newest).first(newest.size() / 2));  // torn
        auto restarted = consumer_state_store::open(_dir);
        ASSERT_TRUE(restarted.has_value());
        if (checked) {
            EXPECT_FALSE(restarted->check_newest("projector-1"));
        }
        counting_file_io io;
        const auto c = sample_state(2);
        ASSERT_TRUE(restarted->save_async(c, io).has_value());
        ASSERT_TRUE(finish(*restarted, io).has_value()) << context;
        EXPECT_EQ(io.operations, rotating_save_operations - 1) << context << ": no rotation";
        expect_loads(c, state_copy::newest, false, context);
        write_bytes(file(".state"), std::span(newest).first(1));  // damage the new one
        expect_loads(a, state_copy::previous, true, context + ": .prev is still A");
    }
}

TEST_F(ConsumerStateStore, RemoveForgetsTheInstalledNewest) {
    counting_file_io io;
    ASSERT_TRUE(store().save_async(sample_state(0), io).has_value());
    ASSERT_TRUE(finish(store(), io).has_value());
    ASSERT_TRUE(store().remove("projector-1").has_value());
    io.operations = 0;
    ASSERT_TRUE(store().save_async(sample_state(1), io).has_value());
    ASSERT_TRUE(finish(store(), io).has_value());
    EXPECT_EQ(io.operations, rotating_save_operations - 1) << "nothing to rotate after remove";
    EXPECT_FALSE(fs::exists(file(".state.prev")));
    expect_loads(sample_state(1), state_copy::newest, false, "after remove");
}

}  // namespace
}  // namespace nagare::storage
