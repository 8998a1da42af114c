// Corrupt, truncated and randomly mutated input must yield an error or a
// valid frame, never a crash or a sanitizer report. Every frame the decoder
// hands out is unpacked whole, so any read the verifier let through is touched.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "protocol/frame.h"
#include "tests/protocol/sample_frames.h"

namespace nagare::protocol {
namespace {

using testing::frame_bytes;

struct outcome {
    std::size_t frames = 0;
    bool failed = false;
};

outcome decode_and_touch(std::span<const std::byte> input, std::size_t chunk_bytes = 0) {
    frame_decoder decoder;
    outcome out;
    auto on_frame = [&](const frame_view& f) {
        auto unpacked = testing::unpack(f);
        EXPECT_NE(unpacked, nullptr);
        ++out.frames;
    };
    if (chunk_bytes == 0) chunk_bytes = input.size() + 1;
    while (!input.empty()) {
        const auto n = std::min(chunk_bytes, input.size());
        if (!decoder.feed(input.first(n), on_frame)) {
            out.failed = true;
            break;
        }
        input = input.subspan(n);
    }
    return out;
}

void set_prefix(frame_bytes& frame, std::uint32_t length) {
    std::memcpy(frame.data(), &length, sizeof length);
}

TEST(FrameMutation, EverySingleByteCorruptionIsAnErrorOrAValidFrame) {
    std::size_t inputs = 0;
    std::size_t accepted = 0;
    for (const auto& original : testing::sample_frames()) {
        for (std::size_t at = 0; at < original.size(); ++at) {
            for (int delta = 1; delta < 256; ++delta) {
                auto frame = original;
                frame[at] ^= static_cast<std::byte>(delta);
                const auto out = decode_and_touch(frame);
                ASSERT_LE(out.frames, 1u);
                accepted += out.frames;
                ++inputs;
            }
        }
    }
    // Some corruptions land in payload bytes and stay valid; most do not.
    EXPECT_GT(accepted, 0u);
    EXPECT_LT(accepted, inputs);
}

TEST(FrameMutation, EveryTruncationIsHeldOrRejected) {
    for (const auto& original : testing::sample_frames()) {
        for (std::size_t keep = 0; keep < original.size(); ++keep) {
            // As a stream: the decoder waits for the rest.
            frame_decoder decoder;
            const auto status = decoder.feed(std::span(original).first(keep), [](const frame_view&) {
                ADD_FAILURE() << "a truncated frame was handed out";
            });
            ASSERT_TRUE(status.has_value());
            ASSERT_EQ(decoder.buffered_bytes(), keep);
            // With its prefix shortened to match: an error or a valid frame.
            if (keep >= frame_prefix_bytes) {
                frame_bytes cut(original.begin(), original.begin() + static_cast<long>(keep));
                set_prefix(cut, static_cast<std::uint32_t>(keep - frame_prefix_bytes));
                ASSERT_LE(decode_and_touch(cut).frames, 1u);
            }
        }
    }
}

// Random mutations of a stream of frames fed in random chunks. Fixed seeds,
// at least 100,000 inputs, bounded in time.
TEST(FrameMutation, RandomizedMutationsNeverCrash) {
    const auto samples = testing::sample_frames();
    constexpr std::size_t inputs_per_seed = 26'000;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::size_t inputs = 0;
    std::size_t frames = 0;
    std::size_t failures = 0;
    for (const std::uint64_t seed : {1u, 2u, 3u, 4u}) {
        std::mt19937_64 rng(seed);
        auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
        for (std::size_t i = 0; i < inputs_per_seed; ++i) {
            std::vector<frame_bytes> parts;
            const auto count = 1 + pick(3);
            for (std::size_t k = 0; k < count; ++k) parts.push_back(samples[pick(samples.size())]);
            auto& victim = parts[pick(parts.size())];
            switch (pick(5)) {
                case 0:  // flip a few bytes
                    for (auto n = 1 + pick(4); n > 0; --n) {
                        victim[pick(victim.size())] ^= static_cast<std::byte>(1 + pick(255));
                    }
                    break;
                case 1:  // a random length prefix
                    set_prefix(victim, static_cast<std::uint32_t>(rng()) >> pick(32));
                    break;
                case 2: {  // delete a range
                    const auto from = pick(victim.size());
                    const auto n = 1 + pick(victim.size() - from);
                    victim.erase(victim.begin() + static_cast<long>(from),
                                 victim.begin() + static_cast<long>(from + n));
                    break;
                }
                case 3: {  // insert random bytes
                    const auto at = pick(victim.size() + 1);
                    frame_bytes noise(1 + pick(16));
                    for (auto& b : noise) b = static_cast<std::byte>(rng());
                    victim.insert(victim.begin() + static_cast<long>(at), noise.begin(),
                                  noise.end());
                    break;
                }
                default:  // overwrite a 4-byte word with an interesting value
                    if (victim.size() >= 4) {
                        const std::uint32_t values[] = {0, 1, 0x7fffffff, 0xffffffff, 0x80000000,
                                                        static_cast<std::uint32_t>(victim.size())};
                        const auto at = pick(victim.size() - 3);
                        std::memcpy(victim.data() + at, &values[pick(6)], 4);
                    }
                    break;
            }
            const auto stream = testing::concat(parts);
            const auto out = decode_and_touch(stream, 1 + pick(stream.size() + 1));
            frames += out.frames;
            failures += out.failed ? 1 : 0;
            ++inputs;
        }
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "mutation test too slow";
    }
    EXPECT_GE(inputs, 100'000u);
    EXPECT_GT(frames, 0u);
    EXPECT_GT(failures, 0u);
}

}  // namespace
}  // namespace nagare::protocol
