#include "storage/partition_log.h"

#include <fstream>

#include <gtest/gtest.h>

#include "tests/protocol/alloc_counter.h"
#include "tests/storage/partition_log_fixture.h"

namespace nagare::storage {
namespace {

using PartitionLog = testing::partition_fixture;

TEST_F(PartitionLog, AppendFlushReadRoundTrip) {
    open_log();
    EXPECT_EQ(log->first_offset(), offset{0});
    EXPECT_EQ(log->next_offset(), offset{0});
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(append(1 + rng() % 5).has_value());
        now_ns += 1000;
        flush_and_wait();
    }
    EXPECT_EQ(log->next_offset().value, records.size());
    EXPECT_GT(log->segment_count(), 1u);
    expect_model();
    close_and_reopen();
    expect_model();
    EXPECT_EQ(log->recovery().truncated_bytes, 0u);
    EXPECT_EQ(log->recovery().indexes_rebuilt, 0u);
    const auto base = append(3);
    ASSERT_TRUE(base.has_value());
    EXPECT_EQ(base->value, records.size() - 3);
    flush_and_wait();
    expect_model();
}

TEST_F(PartitionLog, FsyncModeIsDurableOnlyAfterPollAndGroupCommits) {
    options.durability_mode = durability::fsync;
    open_log();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(append(2).has_value());
    const auto writes = io.writes;
    const auto syncs = io.datasyncs;
    log->flush();
    EXPECT_EQ(log->durable_end(), offset{0});
    EXPECT_TRUE(listener.durable.empty());
    std::vector<std::byte> buffer(8192);
    const auto before = log->read(offset{0}, buffer);
    ASSERT_TRUE(before.has_value());
    EXPECT_TRUE(before->batches.empty());  // nothing durable to read yet
    io.poll(true);
    EXPECT_EQ(io.writes - writes, 1u);
    EXPECT_EQ(io.datasyncs - syncs, 1u);
    ASSERT_EQ(listener.durable.size(), 1u);
    EXPECT_EQ(listener.durable.back(), offset{20});
    EXPECT_EQ(log->durable_end(), offset{20});
    expect_model();
}

TEST_F(PartitionLog, AFlushDuringAWriteStartsWhenItCompletes) {
    options.durability_mode = durability::fsync;
    open_log();
    ASSERT_TRUE(append(2).has_value());
    log->flush();
    ASSERT_TRUE(append(3).has_value());  // into the second buffer
    log->flush();                        // remembered
    EXPECT_EQ(io.writes, 1u);
    EXPECT_EQ(log->unflushed_bytes() > 0, true);
    io.poll(true);  // completes the first write, which starts the second
    EXPECT_EQ(io.writes, 2u);
    EXPECT_EQ(listener.durable, std::vector<offset>{offset{2}});
    io.poll(true);
    EXPECT_EQ(listener.durable, (std::vector<offset>{offset{2}, offset{5}}));
    expect_model();
}

TEST_F(PartitionLog, IntervalModeSyncsFromTick) {
    options.durability_mode = durability::interval;
    options.fsync_interval_ns = 50'000'000;
    open_log();
    const auto syncs = io.datasyncs;
    ASSERT_TRUE(append(2).has_value());
    flush_and_wait();
    EXPECT_EQ(listener.durable.back(), offset{2});  // durable after the write alone
    EXPECT_EQ(io.datasyncs, syncs);
    log->tick(now_ns + 60'000'000);
    EXPECT_EQ(io.datasyncs, syncs + 1);
    drain();
    log->tick(now_ns + 200'000'000);  // nothing new written: no sync
    EXPECT_EQ(io.datasyncs, syncs + 1);
    ASSERT_TRUE(append(1).has_value());
    flush_and_wait();
    log->tick(now_ns + 205'000'000);  // dirty, and 145 ms since the last sync
    EXPECT_EQ(io.datasyncs, syncs + 2);
    drain();
    ASSERT_TRUE(append(1).has_value());
    flush_and_wait();
    log->tick(now_ns + 220'000'000);  // dirty, but within the interval of the last sync
    EXPECT_EQ(io.datasyncs, syncs + 2);
    log->tick(now_ns + 260'000'000);
    EXPECT_EQ(io.datasyncs, syncs + 3);
    drain();
    EXPECT_TRUE(listener.sync_failed.empty());
}

TEST_F(PartitionLog, NoneModeNeverSyncs) {
    open_log();
    for (int i = 0; i < 30; ++i) {
        ASSERT_TRUE(append(3).has_value());
        flush_and_wait();
        log->tick(now_ns += 100'000'000);
    }
    EXPECT_GT(log->segment_count(), 1u);
    EXPECT_EQ(io.datasyncs, 0u);
}

TEST_F(PartitionLog, AFullBufferIsBackpressure) {
    options.write_buffer_bytes = 4096;
    open_log();
    std::size_t appended = 0;
    while (true) {
        const auto result = append(1, 200);
        if (!result) {
            EXPECT_EQ(result.error(), errc::busy);
            break;
        }
        ++appended;
    }
    EXPECT_GT(appended, 5u);
    EXPECT_EQ(log->next_offset().value, appended);
    log->flush();
    ASSERT_TRUE(append(1, 200).has_value());  // the second buffer takes it
    drain();
    flush_and_wait();
    expect_model();
    // A record larger than an empty buffer can never be stored.
    testing::owned_record huge;
    huge.project = "p";
    huge.subject = "a.b";
    huge.msg_id = "m";
    huge.payload.resize(5000);
    const auto ref = huge.ref();
    const auto too_big = log->append(std::span(&ref, 1), now_ns);
    ASSERT_FALSE(too_big.has_value());
    EXPECT_EQ(too_big.error(), errc::invalid_argument);
    EXPECT_EQ(log->next_offset().value, records.size());
}

TEST_F(PartitionLog, AppendAndFlushAllocateNothing) {
    options.durability_mode = durability::fsync;
    options.segment_bytes = 1 << 20;
    options.write_buffer_bytes = 1 << 16;
    open_log();
    std::vector<testing::owned_record> owned;
    for (int i = 0; i < 8; ++i) owned.push_back(testing::random_record(rng, 100));
    std::vector<record_ref> refs;
    for (auto& r : owned) refs.push_back(r.ref());
    ASSERT_TRUE(log->append(refs, now_ns).has_value());  // warm up
    flush_and_wait();
    listener.durable.reserve(100);  // the test's own bookkeeping must not count
    const auto before = protocol::testing::allocations();
    for (int i = 0; i < 20; ++i) {
        ASSERT_TRUE(log->append(refs, now_ns + static_cast<std::uint64_t>(i)).has_value());
        ASSERT_TRUE(log->append(refs, now_ns + static_cast<std::uint64_t>(i)).has_value());
        log->flush();
        io.poll(true);
    }
    EXPECT_EQ(protocol::testing::allocations(), before);
}

TEST_F(PartitionLog, TimestampsNeverDecrease) {
    open_log();
    std::vector<testing::owned_record> owned{testing::random_record(rng)};
    std::vector<record_ref> refs{owned[0].ref()};
    ASSERT_TRUE(log->append(refs, 5000).has_value());
    ASSERT_TRUE(log->append(refs, 3000).has_value());  // the clock went back
    ASSERT_TRUE(log->append(refs, 7000).has_value());
    flush_and_wait();
    std::vector<std::uint64_t> seen;
    ASSERT_TRUE(log->for_each_record(offset{0}, [&](const record_view& r) {
        seen.push_back(r.timestamp_ns);
        return true;
    }));
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{5000, 5000, 7000}));
}

TEST_F(PartitionLog, AFailedWriteRollsBackAndLaterAppendsWork) {
    options.durability_mode = durability::fsync;
    open_log();
    ASSERT_TRUE(append(4).has_value());
    flush_and_wait();
    const auto kept = log->durable_end();
    const auto bytes = log->bytes();
    io.fail_writes = 1;
    ASSERT_TRUE(append(3).has_value());
    log->flush();
    ASSERT_TRUE(append(2).has_value());  // in the second buffer, after the failing write
    drain();
    ASSERT_EQ(listener.failed.size(), 1u);
    EXPECT_EQ(listener.failed[0].first, kept);
    EXPECT_EQ(listener.failed[0].second, errc::storage_full);
    EXPECT_EQ(log->next_offset(), kept);
    EXPECT_EQ(log->durable_end(), kept);
    EXPECT_EQ(log->unflushed_bytes(), 0u);
    EXPECT_EQ(log->bytes(), bytes);
    model_cut(kept);
    expect_model();
    const auto again = append(2);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, kept);
    flush_and_wait();
    expect_model();
    close_and_reopen();
    expect_model();
}

TEST_F(PartitionLog, ReopenAfterACrashKeepsWhatWasWritten) {
    open_log();
    for (int i = 0; i < 15; ++i) {
        ASSERT_TRUE(append(2).has_value());
        flush_and_wait();
    }
    ASSERT_TRUE(append(2).has_value());  // appended, never flushed: lost in the crash
    log.reset();                         // no close: index tail unwritten, preallocation left
    model_cut(offset{30});
    open_log();
    EXPECT_EQ(log->next_offset(), offset{30});
    expect_model();
    ASSERT_EQ(append(1).value(), offset{30});
    flush_and_wait();
    expect_model();
}

TEST_F(PartitionLog, RollsBySizeAndByAge) {
    options.segment_bytes = 1024;
    options.segment_age_ns = 1'000'000'000;
    open_log();
    while (log->segment_count() < 3) {
        ASSERT_TRUE(append(2).has_value());
        flush_and_wait();
    }
    for (const auto& seg : log->segments().first(log->segment_count() - 1)) {
        EXPECT_GE(seg->log_bytes(), options.segment_bytes);
        EXPECT_EQ(std::filesystem::file_size(seg->log_path()), seg->log_bytes());  // trimmed
    }
    options.segment_bytes = 1 << 20;
    close_and_reopen();
    const auto segments = log->segment_count();
    ASSERT_TRUE(append(1).has_value());
    flush_and_wait();
    now_ns += 2'000'000'000;  // older than segment_age: the next flush rolls
    ASSERT_TRUE(append(1).has_value());
    flush_and_wait();
    EXPECT_EQ(log->segment_count(), segments + 1);
    EXPECT_EQ(log->segments().back()->base_offset().value, records.size() - 1);
    expect_model();
}

TEST_F(PartitionLog, SeekTime) {
    open_log();
    for (int i = 0; i < 60; ++i) {
        ASSERT_TRUE(append(1 + rng() % 3).has_value());
        if (i % 3 == 0) flush_and_wait();
        now_ns += (rng() % 2) * 1000;
    }
    flush_and_wait();
    ASSERT_GT(log->segment_count(), 2u);
    for (std::uint64_t t = timestamps.front() - 1; t <= timestamps.back() + 1; t += 250) {
        const auto want =
            std::lower_bound(timestamps.begin(), timestamps.end(), t) - timestamps.begin();
        const auto got = log->seek_time(t);
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(got->value, static_cast<std::uint64_t>(want)) << t;
    }
}

TEST_F(PartitionLog, RetentionDeletesWholeSealedSegments) {
    options.segment_bytes = 1024;
    options.max_age_ns = 10'000;
    open_log();
    for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(append(2).has_value());
        flush_and_wait();
        now_ns += 1000;
    }
    const auto segments = log->segment_count();
    ASSERT_GT(segments, 4u);
    const auto removed = log->enforce_retention(now_ns);
    ASSERT_TRUE(removed.has_value());
    EXPECT_GT(*removed, 0u);
    EXPECT_EQ(log->segment_count(), segments - *removed);
    // Every remaining sealed segment holds a record younger than max_age; the first removed did
    // not.
    EXPECT_GE(log->segments().front()->last_timestamp_ns() + options.max_age_ns, now_ns);
    const auto first = log->first_offset();
    EXPECT_GT(first.value, 0u);
    EXPECT_LT(timestamps[first.value - 1] + options.max_age_ns, now_ns);
    std::vector<std::byte> buffer(8192);
    const auto below = log->read(offset{first.value - 1}, buffer);
    ASSERT_FALSE(below.has_value());
    EXPECT_EQ(below.error(), errc::out_of_range);
    expect_model();

    // By size: the active segment is never deleted.
    options.max_age_ns = UINT64_MAX;
    options.max_bytes = 1;
    close_and_reopen();
    ASSERT_TRUE(log->enforce_retention(now_ns).has_value());
    EXPECT_EQ(log->segment_count(), 1u);
    EXPECT_EQ(log->first_offset(), log->segments().front()->base_offset());
    expect_model();
    close_and_reopen();
    EXPECT_EQ(log->segment_count(), 1u);
    expect_model();
}

TEST_F(PartitionLog, TruncateRemovesRecordsFromAnOffset) {
    open_log();
    for (int i = 0; i < 40; ++i) {
        ASSERT_TRUE(append(3).has_value());
        flush_and_wait();
    }
    ASSERT_GT(log->segment_count(), 2u);
    ASSERT_GT(log->segments().back()->base_offset().value, 85u);
    // At a segment boundary: the later segment goes, the sealed one is active again.
    const auto segments = log->segment_count();
    const auto boundary = log->segments().back()->base_offset();
    ASSERT_TRUE(log->truncate(boundary).has_value());
    EXPECT_EQ(log->segment_count(), segments - 1);
    model_cut(boundary);
    ASSERT_EQ(append(3).value(), boundary);
    flush_and_wait();
    expect_model();
    for (std::uint64_t end : {std::uint64_t{85}, std::uint64_t{61}, std::uint64_t{30},
                              std::uint64_t{1}, std::uint64_t{0}}) {
        ASSERT_LE(end, log->durable_end().value);
        ASSERT_TRUE(log->truncate(offset{end}).has_value()) << end;
        model_cut(offset{end});
        EXPECT_EQ(log->next_offset(), offset{end});
        expect_model();
        ASSERT_EQ(append(2).value(), offset{end});
        flush_and_wait();
        model_cut(offset{end});
        ASSERT_TRUE(log->truncate(offset{end}).has_value());
        close_and_reopen();
        EXPECT_EQ(log->next_offset(), offset{end});
        expect_model();
    }
    EXPECT_EQ(log->truncate(offset{5}).error(), errc::out_of_range);
}

TEST_F(PartitionLog, CloseRefusesWhileDataIsNotWritten) {
    open_log();
    ASSERT_TRUE(append(1).has_value());
    EXPECT_EQ(log->close().error(), errc::busy);
    log->flush();
    EXPECT_EQ(log->close().error(), errc::busy);
    drain();
    EXPECT_TRUE(log->close().has_value());
    EXPECT_EQ(log->append({}, 0).error(), errc::closed);
}

}  // namespace
}  // namespace nagare::storage

namespace nagare::storage {
namespace {

std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

TEST_F(PartitionLog, OpenFilesStayBoundedWithManySegments) {
    options.segment_bytes = 512;
    open_log();
    for (int i = 0; i < 80; ++i) {
        ASSERT_TRUE(append(2).has_value());
        flush_and_wait();
    }
    ASSERT_TRUE(log->close().has_value());
    log.reset();
    const auto baseline = open_fds();
    open_log();
    ASSERT_GT(log->segment_count(), 3 * sealed_fds_open_max);
    EXPECT_EQ(open_fds(), baseline + 3);  // the active segment's .log, .idx, .tix
    std::vector<std::byte> buffer(4096);
    for (std::uint64_t from = 0; from < records.size(); from += 3) {
        ASSERT_TRUE(log->read(offset{from}, buffer).has_value());
        // Plus at most sealed_fds_open_max sealed logs, opened for reads.
        ASSERT_LE(open_fds(), baseline + 3 + sealed_fds_open_max);
    }
    expect_model();
}

}  // namespace
}  // namespace nagare::storage
