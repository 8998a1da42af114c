// AFL++ target: the input is a byte stream fed to frame_decoder in chunks
// whose sizes come from the first byte; every frame handed out is unpacked.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.h"
#include "tests/protocol/sample_frames.h"

namespace {

// Writes one seed per sample frame and one with all of them, each preceded
// by the chunk-size byte.
int write_seeds(const std::string& dir) {
    auto frames = nagare::protocol::testing::sample_frames();
    frames.push_back(nagare::protocol::testing::concat(frames));
    for (std::size_t i = 0; i < frames.size(); ++i) {
        FILE* out = std::fopen((dir + "/seed-" + std::to_string(i)).c_str(), "wb");
        if (out == nullptr) return 1;
        const unsigned char chunk = static_cast<unsigned char>(17 * i);
        std::fwrite(&chunk, 1, 1, out);
        std::fwrite(frames[i].data(), 1, frames[i].size(), out);
        std::fclose(out);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace nagare::protocol;
    if (argc > 2 && std::string_view(argv[1]) == "--write-seeds") return write_seeds(argv[2]);
    FILE* in = argc > 1 ? std::fopen(argv[1], "rb") : stdin;
    if (in == nullptr) return 1;
    std::vector<std::byte> data;
    std::byte buffer[4096];
    while (const auto n = std::fread(buffer, 1, sizeof buffer, in)) {
        data.insert(data.end(), buffer, buffer + n);
    }
    if (data.empty()) return 0;
    const auto chunk = 1 + static_cast<std::size_t>(data[0]);
    std::span<const std::byte> rest(data);
    rest = rest.subspan(1);
    frame_decoder decoder({.frame_bytes_max = 1u << 20});
    std::size_t frames = 0;
    while (!rest.empty()) {
        const auto n = std::min(chunk, rest.size());
        const auto ok = decoder.feed(rest.first(n), [&](const frame_view& f) {
            std::unique_ptr<fb::FrameT> unpacked(f.frame->UnPack());
            frames += unpacked != nullptr ? 1 : 0;
        });
        if (!ok) break;
        rest = rest.subspan(n);
    }
    return frames > 1'000'000 ? 2 : 0;
}
