// Helpers for the storage system tests that drive a partition_log through the
// broker's io_uring backend (storage_crash_test.cc, storage_full_disk_test.cc):
// records whose every byte follows from their offset, so that a reader can
// check what a writer (possibly another process, since killed) stored; a
// read-back of a whole offset range; a bounded wait for the io backend.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/file_io.h"
#include "storage/partition_log.h"

namespace nagare::broker::storage_testing {

inline constexpr std::size_t payload_bytes_max = 2000;
inline constexpr std::size_t batch_records_max = 64;
inline constexpr int drain_polls_max = 10'000;
inline constexpr std::size_t mismatches_reported_max = 5;

// splitmix64: a fixed, well-mixed function of its input.
[[nodiscard]] inline std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// The record these tests store at an offset. Every field follows from the
// offset: payload size 0..payload_bytes_max, payload bytes, msg_id, project,
// subject, and a header on every third offset. Reuses its buffers.
class offset_record {
public:
    void fill(offset at) {
        const std::uint64_t seed = mix(at.value);
        project = "proj-" + std::to_string(at.value % 4);
        subject = "orders.created." + std::to_string(at.value % 10);
        msg_id = "msg-" + std::to_string(at.value) + "-" + std::to_string(seed % 1000);
        header_value = "v" + std::to_string(seed >> 40);
        header_count = at.value % 3 == 0 ? 1 : 0;
        payload.resize(static_cast<std::size_t>(seed % (payload_bytes_max + 1)));
        std::uint64_t state = mix(seed);
        for (std::size_t i = 0; i < payload.size(); ++i) {
            if (i % 8 == 0) state = mix(state + i);
            payload[i] = static_cast<std::byte>(state >> (8 * (i % 8)));
        }
    }

    [[nodiscard]] storage::record_ref ref() noexcept {
        headers[0] = {"trace", header_value};
        return {project, subject, msg_id, std::span(headers).first(header_count), payload};
    }

    // The encoded size is about this (payload plus a few dozen bytes).
    [[nodiscard]] std::size_t approx_bytes() const noexcept { return payload.size() + 64; }

    std::string project;
    std::string subject;
    std::string msg_id;
    std::string header_value;
    std::array<storage::header_ref, 1> headers{};
    std::size_t header_count = 0;
    std::vector<std::byte> payload;
};

// Empty when `got` holds exactly what offset_record::fill(got.record_offset)
// produces; otherwise which field differs.
[[nodiscard]] inline std::string mismatch(const storage::record_view& got) {
    offset_record want;
    want.fill(got.record_offset);
    if (got.project != want.project) return "project";
    if (got.subject != want.subject) return "subject";
    if (got.msg_id != want.msg_id) return "msg_id";
    std::size_t headers = 0;
    for (const auto& h : got.headers) {
        if (headers >= want.header_count || h.key != "trace" || h.value != want.header_value) {
            return "header";
        }
        ++headers;
    }
    if (headers != want.header_count) return "header count";
    if (got.payload.size() != want.payload.size()) return "payload size";
    if (!std::equal(got.payload.begin(), got.payload.end(), want.payload.begin())) {
        return "payload bytes";
    }
    return {};
}

// Wall clock, as a broker stamps records.
[[nodiscard]] inline std::uint64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// Polls until nothing is pending (bounded); false if it never got there.
[[nodiscard]] inline bool drain(storage::file_io& io) {
    for (int i = 0; i < drain_polls_max && io.pending() > 0; ++i) io.poll(true);
    return io.pending() == 0;
}

// Reads [from, end) back: offsets dense and in order, every record equal to
// what was written at its offset, timestamps never decreasing, nothing past end.
inline void expect_records(storage::partition_log& log, offset from, offset end) {
    std::uint64_t expected = from.value;
    std::uint64_t last_timestamp_ns = 0;
    std::size_t reported = 0;
    const auto stopped = log.for_each_record(from, [&](const storage::record_view& r) {
        if (r.record_offset.value != expected) {
            ADD_FAILURE() << "offset " << r.record_offset.value << " where " << expected
                          << " belongs";
            return false;
        }
        if (const auto why = mismatch(r); !why.empty() && reported++ < mismatches_reported_max) {
            ADD_FAILURE() << "record " << expected << " differs from what was written: " << why;
        }
        if (r.timestamp_ns < last_timestamp_ns && reported++ < mismatches_reported_max) {
            ADD_FAILURE() << "timestamp goes back at offset " << expected;
        }
        last_timestamp_ns = r.timestamp_ns;
        ++expected;
        return true;
    });
    ASSERT_TRUE(stopped.has_value())
        << "read failed at offset " << expected << ": " << storage::to_string(stopped.error());
    EXPECT_EQ(expected, end.value) << "records read back";
    EXPECT_EQ(stopped->value, end.value);
    EXPECT_EQ(reported, 0u) << "records that differ from what was written";
}

}  // namespace nagare::broker::storage_testing
