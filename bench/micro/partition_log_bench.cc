// Partition log through sync_file_io: append 256 records of 128 bytes + one
// flush per iteration (durability none and fsync), and reading back with
// every batch verified. Files go to the temporary directory (set TMPDIR to
// measure another disk).
#include <filesystem>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include "storage/partition_log.h"
#include "storage/sync_file_io.h"

namespace nagare::storage {
namespace {

constexpr std::size_t batch_records = 256;
constexpr std::size_t payload_bytes = 128;

struct bench_dir {
    std::filesystem::path path =
        std::filesystem::temp_directory_path() / ("nagare-bench-" + std::to_string(::getpid()));
    bench_dir() { std::filesystem::remove_all(path); }
    ~bench_dir() { std::filesystem::remove_all(path); }
};

struct sample {
    std::string payload = std::string(payload_bytes, 'x');
    std::vector<std::string> msg_ids;
    std::vector<record_ref> records;

    sample() {
        for (std::size_t i = 0; i < batch_records; ++i) {
            msg_ids.push_back("01JD00000000000000000" + std::to_string(10000 + i));
        }
        for (const auto& id : msg_ids) {
            records.push_back(
                {"project-1", "task.updated", id, {}, std::as_bytes(std::span{payload})});
        }
    }
};

void BM_AppendFlush256x128(benchmark::State& state) {
    bench_dir dir;
    sample s;
    sync_file_io io;
    partition_options options;
    options.durability_mode = static_cast<durability>(state.range(0));
    auto log = partition_log::open(dir.path, options, io);
    if (!log) {
        state.SkipWithError("open failed");
        return;
    }
    std::uint64_t now_ns = 1;
    for (auto _ : state) {
        if (!(*log)->append(s.records, ++now_ns)) state.SkipWithError("append failed");
        (*log)->flush();
        while (io.pending() > 0) io.poll(true);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch_records));
    state.SetBytesProcessed(static_cast<std::int64_t>((*log)->bytes()));
    (void)(*log)->close();
}
BENCHMARK(BM_AppendFlush256x128)
    ->Arg(static_cast<int>(durability::none))
    ->Arg(static_cast<int>(durability::fsync))
    ->UseRealTime();

void BM_ReadVerified(benchmark::State& state) {
    bench_dir dir;
    sample s;
    sync_file_io io;
    partition_options options;
    options.durability_mode = durability::none;
    auto log = partition_log::open(dir.path, options, io);
    if (!log) {
        state.SkipWithError("open failed");
        return;
    }
    for (int i = 0; i < 2000; ++i) {  // about 80 MiB
        (void)(*log)->append(s.records, 1);
        (*log)->flush();
        while (io.pending() > 0) io.poll(true);
    }
    std::vector<std::byte> buffer(1 << 20);
    std::uint64_t bytes = 0;
    for (auto _ : state) {
        offset from = (*log)->first_offset();
        while (from < (*log)->durable_end()) {
            const auto result = (*log)->read(from, buffer);
            if (!result) {
                state.SkipWithError("read failed");
                break;
            }
            bytes += result->batches.size();
            from = result->next_offset;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
    (void)(*log)->close();
}
BENCHMARK(BM_ReadVerified)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace nagare::storage
