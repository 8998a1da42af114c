// Reading the newest data of a partition (what live subscribers read): from
// the tail cache (memcpy of whole batches, no system call) against from the
// segment file (pread from the page cache, checksums verified), the same
// batches into the same 64 KiB buffer; and cached_batch() (a view, no copy).
// Two batch shapes: 16 records of 128 B (~3 KiB: a quiet partition flushing
// each loop turn) and 60 KiB (near the 64 KiB batch target, under load). Both logs hold
// the same 4 MiB; the cache one keeps it all (tail_cache_bytes 8 MiB).
// The data directory is $NAGARE_BENCH_DIR (default build/bench-data).
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "protocol/assert.h"
#include "storage/partition_log.h"
#include "storage/sync_file_io.h"

namespace nagare::storage {
namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t data_bytes = 4 * mib;

fs::path bench_dir(const std::string& name) {
    const char* base = std::getenv("NAGARE_BENCH_DIR");
    return fs::path(base != nullptr ? base : "build/bench-data") / name;
}

// A partition of data_bytes in batches of `records` x `payload_bytes`.
struct filled_log {
    sync_file_io io;
    std::unique_ptr<partition_log> log;

    filled_log(const std::string& name, std::size_t cache_bytes, std::size_t records,
               std::size_t payload_bytes) {
        const auto dir = bench_dir(name);
        fs::remove_all(dir);
        partition_options options;
        options.durability_mode = durability::none;
        options.tail_cache_bytes = cache_bytes;
        auto opened = partition_log::open(dir, options, io);
        NG_ASSERT(opened.has_value(), "cannot open the bench partition");
        log = std::move(*opened);
        const std::string payload(payload_bytes, 'x');
        std::vector<std::string> msg_ids;
        std::vector<record_ref> refs;
        for (std::size_t i = 0; i < records; ++i) msg_ids.push_back("msg-" + std::to_string(i));
        for (std::size_t i = 0; i < records; ++i) {
            refs.push_back(
                {"project-42", "task.updated", msg_ids[i], {}, std::as_bytes(std::span{payload})});
        }
        std::uint64_t now_ns = 1;
        while (log->bytes() < data_bytes) {
            NG_ASSERT(log->append(refs, ++now_ns).has_value(), "append failed");
            log->flush();  // one batch per flush
            while (io.pending() > 0) io.poll(true);
        }
    }
    ~filled_log() { (void)log->close(); }
};

// Walks [from, durable_end) again and again with read(), 64 KiB at a time.
void read_loop(benchmark::State& state, partition_log& log, offset first) {
    std::vector<std::byte> buffer(64 * kib);
    std::uint64_t bytes = 0;
    offset from = first;
    for (auto _ : state) {
        const auto result = log.read(from, buffer);
        NG_ASSERT(result.has_value() && !result->batches.empty(), "read failed");
        bytes += result->batches.size();
        from = result->next_offset == log.durable_end() ? first : result->next_offset;
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.counters["cache_hits"] = static_cast<double>(log.counters().read_cache_hits);
    state.counters["cache_misses"] = static_cast<double>(log.counters().read_cache_misses);
}

// state.range(0): records per batch; range(1): payload bytes.
void BM_TailCacheRead(benchmark::State& state) {
    const auto records = static_cast<std::size_t>(state.range(0));
    const auto payload = static_cast<std::size_t>(state.range(1));
    filled_log l("tail-cache-on", 2 * data_bytes, records, payload);
    NG_ASSERT(l.log->cache().first_offset() == l.log->first_offset(), "all of it cached");
    read_loop(state, *l.log, l.log->first_offset());
}
BENCHMARK(BM_TailCacheRead)->Args({16, 128})->Args({60, 1000});

void BM_TailCachePreadRead(benchmark::State& state) {
    const auto records = static_cast<std::size_t>(state.range(0));
    const auto payload = static_cast<std::size_t>(state.range(1));
    filled_log l("tail-cache-off", 0, records, payload);
    read_loop(state, *l.log, l.log->first_offset());
}
BENCHMARK(BM_TailCachePreadRead)->Args({16, 128})->Args({60, 1000});

// cached_batch(): the batch holding each offset in turn, as a view.
void BM_TailCacheCachedBatch(benchmark::State& state) {
    const auto records = static_cast<std::size_t>(state.range(0));
    const auto payload = static_cast<std::size_t>(state.range(1));
    filled_log l("tail-cache-view", 2 * data_bytes, records, payload);
    const auto first = l.log->first_offset();
    offset at = first;
    std::uint64_t bytes = 0;
    for (auto _ : state) {
        const auto batch = l.log->cached_batch(at);
        NG_ASSERT(batch.has_value() && !batch->empty(), "not cached");
        benchmark::DoNotOptimize(batch->data());
        bytes += batch->size();
        at = offset{at.value + records};  // the next batch (one per flush)
        if (at >= l.log->durable_end()) at = first;
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TailCacheCachedBatch)->Args({16, 128})->Args({60, 1000});

}  // namespace
}  // namespace nagare::storage
