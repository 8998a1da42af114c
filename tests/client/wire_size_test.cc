// message_wire_bytes and frame_overhead_bytes are upper bounds of a real
// Publish encoding: the I/O thread cuts frames with them.
#include "client/wire_size.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/frame.h"

namespace nagare::client {
namespace {

struct owned_message {
    std::string project, subject, msg_id, payload;
    std::vector<std::pair<std::string, std::string>> headers;
    std::vector<protocol::header_ref> refs;

    [[nodiscard]] std::size_t field_bytes() const {
        std::size_t n = project.size() + subject.size() + msg_id.size() + payload.size();
        for (const auto& [k, v] : headers) n += k.size() + v.size();
        return n;
    }
};

TEST(WireSize, BoundsRealEncodings) {
    std::mt19937 rng(42);
    protocol::frame_encoder encoder;
    for (int round = 0; round < 200; ++round) {
        const std::size_t count = 1 + rng() % 300;
        std::vector<owned_message> messages(count);
        std::vector<protocol::message_ref> refs;
        std::size_t bound = frame_overhead_bytes;
        for (auto& m : messages) {
            m.project = std::string(1 + rng() % 128, 'p');
            m.subject = std::string(1 + rng() % 100, 's') + ".x";
            m.msg_id = std::string(1 + rng() % 128, 'm');
            m.payload = std::string(rng() % 700, 'x');
            const std::size_t headers = rng() % 4 == 0 ? rng() % 65 : 0;
            for (std::size_t h = 0; h < headers; ++h) {
                m.headers.emplace_back(std::string(1 + rng() % 64, 'k'),
                                       std::string(rng() % 50, 'v'));
            }
            for (const auto& [k, v] : m.headers) m.refs.push_back({k, v});
            bound += message_wire_bytes(m.field_bytes(), m.headers.size());
        }
        for (const auto& m : messages) {
            refs.push_back({m.project, m.subject, m.msg_id, m.refs,
                            std::as_bytes(std::span(m.payload.data(), m.payload.size()))});
        }
        const auto frame = encoder.publish(rng(), refs);
        ASSERT_LE(frame.size(), bound) << "round " << round << ", " << count << " messages";
    }
}

TEST(WireSize, EmptyFieldsStillBounded) {
    protocol::frame_encoder encoder;
    std::vector<protocol::message_ref> refs(4096);
    const auto frame = encoder.publish(~0ull, refs);
    EXPECT_LE(frame.size(), frame_overhead_bytes + 4096 * message_wire_bytes(0, 0));
}

}  // namespace
}  // namespace nagare::client
