// Record batch: encode 256 records of 128 bytes, and verify + read them back.
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "storage/record_batch.h"

namespace nagare::storage {
namespace {

constexpr std::size_t batch_records = 256;
constexpr std::size_t payload_bytes = 128;

struct sample {
    std::string payload = std::string(payload_bytes, 'x');
    std::vector<std::string> msg_ids;
    std::vector<record_ref> records;
    std::vector<std::byte> buffer = std::vector<std::byte>(1 << 20);

    sample() {
        for (std::size_t i = 0; i < batch_records; ++i) {
            msg_ids.push_back("01JD00000000000000000" + std::to_string(10000 + i));
        }
        for (const auto& id : msg_ids) {
            records.push_back(
                {"project-1", "task.updated", id, {}, std::as_bytes(std::span{payload})});
        }
    }

    std::span<const std::byte> encode() {
        batch_builder builder(buffer);
        (void)builder.open(offset{1000});
        for (const auto& r : records) (void)builder.add(r, 1'700'000'000'000'000'000ull);
        return builder.seal();
    }
};

void BM_EncodeBatch256x128(benchmark::State& state) {
    sample s;
    for (auto _ : state) {
        const auto batch = s.encode();
        benchmark::DoNotOptimize(batch.data());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch_records));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * s.encode().size()));
}
BENCHMARK(BM_EncodeBatch256x128);

void BM_VerifyAndReadBatch256x128(benchmark::State& state) {
    sample s;
    const auto batch = s.encode();
    for (auto _ : state) {
        const auto view = batch_view::parse(batch);
        std::size_t bytes = 0;
        (void)view->for_each([&](const record_view& r) {
            bytes += r.payload.size();
            return true;
        });
        benchmark::DoNotOptimize(bytes);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch_records));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * batch.size()));
}
BENCHMARK(BM_VerifyAndReadBatch256x128);

}  // namespace
}  // namespace nagare::storage
