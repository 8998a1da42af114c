#include "protocol/frame.h"

#include <gtest/gtest.h>

#include "tests/protocol/alloc_counter.h"
#include "tests/protocol/sample_frames.h"

namespace nagare::protocol {
namespace {

using testing::frame_bytes;

std::vector<frame_bytes> decode_all(frame_decoder& decoder, std::span<const std::byte> input,
                                    std::expected<void, errc>* status = nullptr) {
    std::vector<frame_bytes> frames;
    auto result = decoder.feed(input, [&](const frame_view& f) {
        frames.emplace_back(f.bytes.begin(), f.bytes.end());
    });
    if (status != nullptr) *status = result;
    return frames;
}

TEST(FrameCodec, EveryFrameTypeRoundTrips) {
    const auto objects = testing::sample_frame_objects();
    ASSERT_EQ(objects.size(), static_cast<std::size_t>(fb::Body::MAX));
    for (std::size_t i = 0; i < objects.size(); ++i) {
        const auto bytes = testing::pack(objects[i]);
        frame_decoder decoder;
        std::unique_ptr<fb::FrameT> decoded;
        fb::Body type = fb::Body::NONE;
        const auto ok = decoder.feed(bytes, [&](const frame_view& f) {
            type = f.type();
            decoded = testing::unpack(f);
        });
        ASSERT_TRUE(ok.has_value()) << "frame " << i;
        ASSERT_NE(decoded, nullptr) << "frame " << i;
        EXPECT_EQ(static_cast<std::size_t>(type), i + 1) << fb::EnumNameBody(type);
        EXPECT_TRUE(*decoded == objects[i]) << "frame " << fb::EnumNameBody(type);
        EXPECT_EQ(decoder.buffered_bytes(), 0u);
    }
}

TEST(FrameCodec, ComparisonSeesAChangedField) {
    // Guards the round-trip test: the generated operator== must look inside.
    auto a = testing::sample_frame_objects();
    auto b = testing::sample_frame_objects();
    EXPECT_TRUE(a[2] == b[2]);
    b[2].body.AsPublish()->messages[1]->payload[5] ^= 1;
    EXPECT_FALSE(a[2] == b[2]);
}

TEST(FrameCodec, EncoderConveniencesDecodeToTheirFields) {
    frame_encoder enc;
    frame_decoder dec;
    auto decode_one = [&](std::span<const std::byte> bytes) {
        std::unique_ptr<fb::FrameT> out;
        EXPECT_TRUE(dec.feed(bytes, [&](const frame_view& f) { out = testing::unpack(f); }));
        return out;
    };

    auto hello = decode_one(enc.hello("cli", "tok"));
    ASSERT_EQ(hello->body.type, fb::Body::Hello);
    EXPECT_EQ(hello->body.AsHello()->protocol_version, protocol_version);
    EXPECT_EQ(hello->body.AsHello()->client_name, "cli");
    EXPECT_EQ(hello->body.AsHello()->auth_token, "tok");

    const std::string payload(128, 'x');
    const header_ref headers[] = {{"trace_id", "abc"}};
    std::vector<message_ref> messages;
    for (int i = 0; i < 64; ++i) {
        messages.push_back({"proj", "task.updated", "id", headers, std::as_bytes(std::span{payload})});
    }
    auto publish = decode_one(enc.publish(7, messages));
    ASSERT_EQ(publish->body.type, fb::Body::Publish);
    const auto* p = publish->body.AsPublish();
    EXPECT_EQ(p->request_id, 7u);
    ASSERT_EQ(p->messages.size(), 64u);
    EXPECT_EQ(p->messages[63]->subject, "task.updated");
    EXPECT_EQ(p->messages[63]->headers[0]->value, "abc");
    EXPECT_EQ(p->messages[63]->payload.size(), 128u);

    auto error = decode_one(enc.error(3, errc::storage_full, "disk full"));
    ASSERT_EQ(error->body.type, fb::Body::Error);
    EXPECT_EQ(error->body.AsError()->code, fb::ErrorCode::STORAGE_FULL);
    EXPECT_EQ(error->body.AsError()->message, "disk full");

    EXPECT_EQ(decode_one(enc.ping(11))->body.AsPing()->nonce, 11u);
    EXPECT_EQ(decode_one(enc.pong(12))->body.AsPong()->nonce, 12u);
}

TEST(FrameDecoder, StreamSplitAtEveryByteBoundaryDecodesTheSameFrames) {
    const auto frames = testing::sample_frames();
    const auto stream = testing::concat(frames);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        frame_decoder decoder;
        const std::span<const std::byte> all(stream);
        auto got = decode_all(decoder, all.first(cut));
        auto rest = decode_all(decoder, all.subspan(cut));
        got.insert(got.end(), rest.begin(), rest.end());
        ASSERT_EQ(got, frames) << "cut at byte " << cut;
        ASSERT_EQ(decoder.buffered_bytes(), 0u);
    }
}

TEST(FrameDecoder, ByteByByteFeedDecodesTheSameFrames) {
    const auto frames = testing::sample_frames();
    const auto stream = testing::concat(frames);
    frame_decoder decoder;
    std::vector<frame_bytes> got;
    for (const std::byte b : stream) {
        auto some = decode_all(decoder, std::span{&b, 1});
        got.insert(got.end(), some.begin(), some.end());
    }
    EXPECT_EQ(got, frames);
}

TEST(FrameDecoder, MisalignedFrameStillDecodes) {
    const auto frames = testing::sample_frames();
    std::vector<std::byte> shifted(1);
    const auto stream = testing::concat(frames);
    shifted.insert(shifted.end(), stream.begin(), stream.end());
    frame_decoder decoder;
    EXPECT_EQ(decode_all(decoder, std::span(shifted).subspan(1)), frames);
}

// Found by the random subscription frames system test: a builder may place an
// empty vector of u64 structs at a 4-aligned address; nothing is read there,
// so every frame with empty or non-empty struct vectors must verify.
TEST(FrameDecoder, StructVectorsOfAnyLengthVerify) {
    frame_encoder enc;
    frame_decoder decoder;
    for (std::uint32_t n = 0; n < 4; ++n) {
        for (std::uint32_t delay = 0; delay < 300; ++delay) {
            std::vector<fb::PartitionPosition> positions;
            for (std::uint32_t k = 0; k < n; ++k) positions.emplace_back(k, delay + k);
            enc.reset();
            auto& b = enc.builder();
            const auto ack = enc.finish(fb::CreateAck(b, delay % 16, fb::AckKind::ACK, delay, b.CreateVectorOfStructs(positions)));
            const std::vector<std::byte> ack_copy(ack.begin(), ack.end());
            const auto decoded = decoder.verify(ack_copy);
            ASSERT_TRUE(decoded.has_value()) << "Ack with " << n << " positions, delay " << delay;
            ASSERT_EQ(decoded->as<fb::Ack>()->positions()->size(), n);
            fb::SubscribeT s;
            s.subscription_id = delay;
            s.stream = "events";
            s.max_inflight = delay;
            for (std::uint32_t k = 0; k < n; ++k) s.start_positions.emplace_back(k, delay);
            enc.reset();
            const auto sub = enc.finish(fb::CreateSubscribe(enc.builder(), &s));
            const std::vector<std::byte> sub_copy(sub.begin(), sub.end());
            ASSERT_TRUE(decoder.verify(sub_copy).has_value()) << "Subscribe with " << n << " start positions";
        }
    }
}

TEST(FrameDecoder, OversizedLengthPrefixIsRejectedWithoutAllocating) {
    frame_decoder decoder;
    const std::byte huge[] = {std::byte{0xff}, std::byte{0xff}, std::byte{0xff},
                              std::byte{0xff}, std::byte{0x01}};
    const auto before = testing::allocations();
    std::expected<void, errc> status;
    const auto got = [&] {
        // decode_all allocates for its result vector only when a frame arrives.
        auto result = decoder.feed(huge, [](const frame_view&) {});
        status = result;
        return testing::allocations() - before;
    }();
    EXPECT_EQ(got, 0u);
    ASSERT_FALSE(status.has_value());
    EXPECT_EQ(status.error(), errc::frame_too_large);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
    // Sticky: the connection must be closed.
    EXPECT_EQ(decoder.feed(testing::sample_frames()[0], [](const frame_view&) {}).error(),
              errc::frame_too_large);
}

TEST(FrameDecoder, PrefixOneAboveTheLimitIsRejectedAndTheLimitIsAccepted) {
    const auto frame = testing::sample_frames()[2];  // Publish
    const auto length = frame.size() - frame_prefix_bytes;
    {
        frame_decoder at_limit({.frame_bytes_max = length});
        EXPECT_EQ(decode_all(at_limit, frame).size(), 1u);
    }
    {
        frame_decoder below({.frame_bytes_max = length - 1});
        std::expected<void, errc> status;
        EXPECT_TRUE(decode_all(below, frame, &status).empty());
        EXPECT_EQ(status.error(), errc::frame_too_large);
    }
    {
        // The prefix alone, cut in two, is enough to reject.
        frame_decoder below({.frame_bytes_max = length - 1});
        EXPECT_TRUE(below.feed(std::span(frame).first(2), [](const frame_view&) {}));
        EXPECT_EQ(below.feed(std::span(frame).subspan(2, 2), [](const frame_view&) {}).error(),
                  errc::frame_too_large);
    }
}

TEST(FrameDecoder, FramesBeforeAnErrorAreHandedOut) {
    auto frames = testing::sample_frames();
    auto stream = testing::concat({frames[0], frames[1]});
    const std::byte zero_frame[] = {std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
    stream.insert(stream.end(), std::begin(zero_frame), std::end(zero_frame));
    frame_decoder decoder;
    std::expected<void, errc> status;
    EXPECT_EQ(decode_all(decoder, stream, &status).size(), 2u);
    EXPECT_EQ(status.error(), errc::bad_frame);
}

TEST(FrameDecoder, WrongFileIdentifierIsABadFrame) {
    auto frame = testing::sample_frames()[11];  // Ping
    // Size prefix (4) + root offset (4), then the identifier "NGR1".
    ASSERT_EQ(static_cast<char>(frame[8]), 'N');
    frame[8] = std::byte{'X'};
    frame_decoder decoder;
    std::expected<void, errc> status;
    EXPECT_TRUE(decode_all(decoder, frame, &status).empty());
    EXPECT_EQ(status.error(), errc::bad_frame);
}

TEST(FrameDecoder, UnknownOrMissingBodyTypeIsABadFrame) {
    for (const auto type : {fb::Body::NONE, static_cast<fb::Body>(200)}) {
        flatbuffers::FlatBufferBuilder b;
        auto ping = fb::CreatePing(b, 1);
        b.FinishSizePrefixed(fb::CreateFrame(b, type, ping.Union()), fb::FrameIdentifier());
        const std::span<const std::byte> bytes(
            reinterpret_cast<const std::byte*>(b.GetBufferPointer()), b.GetSize());
        frame_decoder decoder;
        std::expected<void, errc> status;
        EXPECT_TRUE(decode_all(decoder, bytes, &status).empty());
        EXPECT_EQ(status.error(), errc::bad_frame);
    }
}

TEST(FrameDecoder, VerifierTableLimitRejectsAFrameWithTooManyTables) {
    const auto publish = testing::sample_frames()[2];  // 3 messages, 2 headers each
    frame_decoder strict({.verifier_tables_max = 4});
    std::expected<void, errc> status;
    EXPECT_TRUE(decode_all(strict, publish, &status).empty());
    EXPECT_EQ(status.error(), errc::bad_frame);
    frame_decoder normal;
    EXPECT_EQ(decode_all(normal, publish).size(), 1u);
}

TEST(FrameDecoder, LargeFrameReleasesItsPendingBuffer) {
    frame_encoder enc;
    const std::string payload(300u << 10, 'x');
    const message_ref m[] = {{"p", "a.b", "id", {}, std::as_bytes(std::span{payload})}};
    const auto frame = testing::copy(enc.publish(1, m));
    frame_decoder decoder;
    EXPECT_TRUE(decode_all(decoder, std::span(frame).first(1000)).empty());
    EXPECT_EQ(decoder.buffered_bytes(), 1000u);
    EXPECT_EQ(decode_all(decoder, std::span(frame).subspan(1000)).size(), 1u);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

}  // namespace
}  // namespace nagare::protocol
