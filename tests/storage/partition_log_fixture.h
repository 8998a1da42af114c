// A partition log in a temporary directory with a model of what it must hold.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "storage/partition_log.h"
#include "tests/storage/test_file_io.h"
#include "tests/storage/test_records.h"

namespace nagare::storage::testing {

class partition_fixture : public ::testing::Test {
protected:
    temp_dir dir;
    counting_file_io io;
    recording_listener listener;
    partition_options options;
    std::unique_ptr<partition_log> log;
    // The model: records[i] and timestamps[i] for offset i (below first_offset too).
    std::vector<owned_record> records;
    std::vector<std::uint64_t> timestamps;
    std::mt19937_64 rng{42};
    std::uint64_t now_ns = 1'000'000'000;
    std::uint64_t last_timestamp_ns = 0;  // the log's: survives rollbacks, not reopens

    partition_fixture() {
        options.durability_mode = durability::none;
        options.segment_bytes = 4096;
        options.index_interval_bytes = 128;
        options.write_buffer_bytes = 8192;
        options.batch_bytes_target = 1024;
        options.preallocate_step_bytes = 2048;
    }

    ~partition_fixture() override {
        if (log) {
            while (io.pending() > 0) io.poll(true);
        }
    }

    void open_log() {
        auto opened = partition_log::open(dir.path(), options, io);
        ASSERT_TRUE(opened.has_value()) << to_string(opened.error());
        log = std::move(*opened);
        log->set_listener(&listener);
        // A reopened log continues from the newest timestamp it holds.
        const auto end = log->durable_end().value;
        last_timestamp_ns =
            end > log->first_offset().value && end <= timestamps.size() ? timestamps[end - 1] : 0;
    }

    // Appends n random records at now_ns; the model learns them on success.
    std::expected<offset, errc> append(std::size_t n, std::size_t payload_bytes_max = 100) {
        std::vector<owned_record> batch;
        for (std::size_t i = 0; i < n; ++i) batch.push_back(random_record(rng, payload_bytes_max));
        std::vector<record_ref> refs;
        for (auto& r : batch) refs.push_back(r.ref());
        const auto base = log->append(refs, now_ns);
        if (!base) return base;
        EXPECT_EQ(base->value, records.size());
        const auto ts = std::max(now_ns, last_timestamp_ns);
        last_timestamp_ns = ts;
        for (auto& r : batch) {
            records.push_back(std::move(r));
            timestamps.push_back(ts);
        }
        return base;
    }

    void drain() {
        while (io.pending() > 0) io.poll(true);
    }

    void flush_and_wait() {
        log->flush();
        drain();
    }

    // The model forgets records >= end (they were lost, truncated or rolled back).
    void model_cut(offset end) {
        records.resize(end.value);
        timestamps.resize(end.value);
    }

    void close_and_reopen() {
        flush_and_wait();
        ASSERT_TRUE(log->close().has_value());
        log.reset();
        open_log();
    }

    // Every durable record equals the model.
    void expect_model() {
        ASSERT_EQ(log->durable_end().value, records.size());
        std::uint64_t expected = log->first_offset().value;
        const auto end = log->for_each_record(log->first_offset(), [&](const record_view& r) {
            EXPECT_EQ(r.record_offset.value, expected);
            if (r.record_offset.value >= records.size()) return false;
            EXPECT_EQ(r.timestamp_ns, timestamps[r.record_offset.value]);
            expect_same(r, records[r.record_offset.value]);
            ++expected;
            return true;
        });
        ASSERT_TRUE(end.has_value()) << to_string(end.error());
        EXPECT_EQ(end->value, records.size());
        EXPECT_EQ(expected, records.size());
    }
};

}  // namespace nagare::storage::testing
