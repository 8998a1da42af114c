// Partition log throughput on the real disk, for the ratios against fio in
// docs/benchmarks.md (scripts/storage_bench.sh runs both in one go):
//  - append of 128-byte records in batches of 256, durability=fsync, through
//    the io_uring backend: one write + fdatasync per batch (the figure to set
//    against fio's write of the same size followed by fdatasync);
//  - append of 16 KiB records, durability=none (page cache);
//  - reading 1 GiB back from the page cache, checksums verified;
//  - reopening a partition of 1 GiB in 64 MiB segments.
// The data directory is $NAGARE_BENCH_DIR (default build/bench-data).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "broker/io/uring_file_io.h"
#include "protocol/assert.h"
#include "storage/partition_log.h"

namespace nagare::storage {
namespace {

namespace fs = std::filesystem;

fs::path bench_dir(const std::string& name) {
    const char* base = std::getenv("NAGARE_BENCH_DIR");
    return fs::path(base != nullptr ? base : "build/bench-data") / name;
}

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
}

struct record_set {
    std::string payload;
    std::vector<std::string> msg_ids;
    std::vector<record_ref> records;

    record_set(std::size_t count, std::size_t payload_bytes) : payload(payload_bytes, 'x') {
        for (std::size_t i = 0; i < count; ++i) {
            msg_ids.push_back("01JD" + std::to_string(1'000'000'000 + i) + "ABCDEFGHJKMN");
        }
        for (std::size_t i = 0; i < count; ++i) {
            records.push_back({"project-42", "task.updated", msg_ids[i], {},
                               std::as_bytes(std::span{payload})});
        }
    }
};

// A partition log on the shard-style io_uring backend.
struct uring_log {
    std::unique_ptr<broker::io::ring> ring;
    std::unique_ptr<broker::io::uring_file_io> io;
    std::unique_ptr<partition_log> log;

    uring_log(const fs::path& dir, partition_options options) {
        fs::remove_all(dir);
        auto r = broker::io::ring::create(256);
        NG_ASSERT(r.has_value(), "io_uring setup failed");
        ring = std::move(*r);
        io = std::make_unique<broker::io::uring_file_io>(*ring, 64);
        auto opened = partition_log::open(dir, options, *io);
        NG_ASSERT(opened.has_value(), "cannot open the bench partition");
        log = std::move(*opened);
    }
    ~uring_log() {
        drain();
        (void)log->close();
        drain();
    }
    void drain() {
        while (log->io_in_flight() || log->durable_end() < log->next_offset()) {
            log->flush();
            io->poll(true);
        }
    }
};

void BM_AppendFsyncUring128x256(benchmark::State& state) {
    record_set set(256, 128);
    partition_options options;
    options.durability_mode = durability::fsync;
    uring_log l(bench_dir("append-fsync"), options);
    for (auto _ : state) {
        auto base = l.log->append(set.records, now_ns());
        NG_ASSERT(base.has_value(), "append failed");
        l.drain();
    }
    const auto bytes = l.log->bytes();
    state.SetItemsProcessed(state.iterations() * 256);
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.counters["write_bytes"] =
        static_cast<double>(bytes) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_AppendFsyncUring128x256)->Iterations(2000)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The same pattern with the drift of the disk taken out: each iteration
// appends one batch of 256 × 128 B through the log (write + fdatasync via
// io_uring) and then pwrite + fdatasync of as many bytes to a plain file (what
// fio's psync engine does), timing both. ratio = raw time / log time: the
// log's share of the raw write+fdatasync bandwidth.
void BM_AppendFsyncVsRawInterleaved(benchmark::State& state) {
    record_set set(256, 128);
    partition_options options;
    options.durability_mode = durability::fsync;
    uring_log l(bench_dir("append-fsync-pair"), options);
    const auto raw_path = bench_dir("append-fsync-raw.bin");
    const int raw = ::open(raw_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    NG_ASSERT(raw >= 0, "cannot open the raw file");
    // Preallocated as fio lays out its file (and as the log preallocates).
    NG_ASSERT(::posix_fallocate(raw, 0, 64 << 20) == 0, "cannot preallocate the raw file");
    std::vector<std::byte> bytes;
    std::uint64_t raw_position = 0;
    double log_s = 0, raw_s = 0;
    for (auto _ : state) {
        const auto before = l.log->bytes();
        const auto t0 = std::chrono::steady_clock::now();
        NG_ASSERT(l.log->append(set.records, now_ns()).has_value(), "append failed");
        l.drain();
        const auto t1 = std::chrono::steady_clock::now();
        bytes.resize(l.log->bytes() - before);
        NG_ASSERT(::pwrite(raw, bytes.data(), bytes.size(), static_cast<off_t>(raw_position)) ==
                      static_cast<ssize_t>(bytes.size()),
                  "raw pwrite failed");
        NG_ASSERT(::fdatasync(raw) == 0, "raw fdatasync failed");
        raw_position += bytes.size();
        const auto t2 = std::chrono::steady_clock::now();
        log_s += std::chrono::duration<double>(t1 - t0).count();
        raw_s += std::chrono::duration<double>(t2 - t1).count();
    }
    ::close(raw);
    fs::remove(raw_path);
    const auto n = static_cast<double>(state.iterations());
    state.counters["log_us_per_batch"] = log_s / n * 1e6;
    state.counters["raw_us_per_write"] = raw_s / n * 1e6;
    state.counters["ratio"] = raw_s / log_s;
    state.counters["write_bytes"] = static_cast<double>(raw_position) / n;
}
BENCHMARK(BM_AppendFsyncVsRawInterleaved)->Iterations(1000)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_AppendNone16KiB(benchmark::State& state) {
    record_set set(64, 16u << 10);  // 1 MiB per append
    partition_options options;
    options.durability_mode = durability::none;
    uring_log l(bench_dir("append-none"), options);
    for (auto _ : state) {
        auto base = l.log->append(set.records, now_ns());
        NG_ASSERT(base.has_value(), "append failed");
        l.log->flush();
        // Keep one write in flight; wait only when both buffers are taken.
        while (l.log->io_in_flight() && l.log->unflushed_bytes() > 0) l.io->poll(true);
        l.io->poll(false);
    }
    l.drain();
    state.SetItemsProcessed(state.iterations() * 64);
    state.SetBytesProcessed(static_cast<std::int64_t>(l.log->bytes()));
}
BENCHMARK(BM_AppendNone16KiB)->Iterations(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);

// 1 GiB in 64 MiB segments, written once for the two benchmarks below.
const fs::path& gib_partition() {
    static const fs::path dir = [] {
        const auto d = bench_dir("gib");
        record_set set(64, 16u << 10);
        partition_options options;
        options.durability_mode = durability::none;
        uring_log l(d, options);
        for (int i = 0; i < 1024; ++i) {
            NG_ASSERT(l.log->append(set.records, now_ns()).has_value(), "append failed");
            l.drain();
        }
        return d;
    }();
    return dir;
}

void BM_ReadBack1GiB(benchmark::State& state) {
    const auto& dir = gib_partition();
    auto ring = broker::io::ring::create(64);
    broker::io::uring_file_io io(**ring, 16);
    auto opened = partition_log::open(dir, {}, io);
    NG_ASSERT(opened.has_value(), "cannot open the 1 GiB partition");
    auto& log = **opened;
    std::vector<std::byte> buffer(1u << 20);
    std::uint64_t bytes = 0;
    for (auto _ : state) {
        offset from = log.first_offset();
        while (from < log.durable_end()) {
            auto r = log.read(from, buffer);
            NG_ASSERT(r.has_value() && !r->batches.empty(), "read failed");
            bytes += r->batches.size();
            from = r->next_offset;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}
BENCHMARK(BM_ReadBack1GiB)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Reopen1GiB(benchmark::State& state) {
    const auto& dir = gib_partition();
    auto ring = broker::io::ring::create(64);
    broker::io::uring_file_io io(**ring, 16);
    std::size_t segments = 0;
    for (auto _ : state) {
        auto opened = partition_log::open(dir, {}, io);
        NG_ASSERT(opened.has_value(), "reopen failed");
        segments = (*opened)->segment_count();
        benchmark::DoNotOptimize(segments);
    }
    state.counters["segments"] = static_cast<double>(segments);
}
BENCHMARK(BM_Reopen1GiB)->Iterations(10)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace nagare::storage
