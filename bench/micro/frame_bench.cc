// Frame codec: encode and decode (verify + read every message) of a Publish
// batch of 64 messages of 128 bytes.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace nagare::protocol {
namespace {

constexpr std::size_t batch_messages = 64;
constexpr std::size_t payload_bytes = 128;

struct publish_batch {
    std::string payload = std::string(payload_bytes, 'x');
    std::vector<std::string> projects;
    std::vector<std::string> msg_ids;
    std::vector<message_ref> messages;

    publish_batch() {
        for (std::size_t i = 0; i < batch_messages; ++i) {
            projects.push_back("project-" + std::to_string(i % 8));
            msg_ids.push_back("01JD0000000000000000000" + std::to_string(100 + i));
        }
        for (std::size_t i = 0; i < batch_messages; ++i) {
            messages.push_back({projects[i], "task.updated", msg_ids[i], {},
                                std::as_bytes(std::span{payload})});
        }
    }
};

void BM_EncodePublish64x128(benchmark::State& state) {
    publish_batch batch;
    frame_encoder enc;
    std::uint64_t request_id = 0;
    for (auto _ : state) {
        auto bytes = enc.publish(++request_id, batch.messages);
        benchmark::DoNotOptimize(bytes.data());
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_messages));
    state.SetBytesProcessed(state.iterations() *
                            static_cast<std::int64_t>(batch_messages * payload_bytes));
}
BENCHMARK(BM_EncodePublish64x128);

void BM_DecodePublish64x128(benchmark::State& state) {
    publish_batch batch;
    frame_encoder enc;
    const auto encoded = enc.publish(1, batch.messages);
    const std::vector<std::byte> frame(encoded.begin(), encoded.end());
    frame_decoder dec;
    std::size_t seen = 0;
    for (auto _ : state) {
        auto ok = dec.feed(frame, [&](const frame_view& f) {
            for (const auto* m : *f.as<fb::Publish>()->messages()) {
                seen += m->payload()->size() + m->subject()->size();
            }
        });
        benchmark::DoNotOptimize(ok);
    }
    benchmark::DoNotOptimize(seen);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_messages));
    state.SetBytesProcessed(state.iterations() *
                            static_cast<std::int64_t>(batch_messages * payload_bytes));
}
BENCHMARK(BM_DecodePublish64x128);

// Baseline measured in the same run: copying the same payload bytes into a
// buffer, the least any encoder must do.
void BM_CopyPayloads64x128(benchmark::State& state) {
    publish_batch batch;
    std::vector<std::byte> out(batch_messages * payload_bytes);
    for (auto _ : state) {
        auto* to = out.data();
        for (const auto& m : batch.messages) {
            std::memcpy(to, m.payload.data(), m.payload.size());
            to += m.payload.size();
        }
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_messages));
    state.SetBytesProcessed(state.iterations() *
                            static_cast<std::int64_t>(batch_messages * payload_bytes));
}
BENCHMARK(BM_CopyPayloads64x128);

}  // namespace
}  // namespace nagare::protocol
