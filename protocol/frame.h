// Frame codec: turns typed frames into size-prefixed FlatBuffers and splits a
// byte stream back into verified frames.
//
// frame_encoder builds one frame at a time in a reusable FlatBufferBuilder:
// after warm-up, encoding allocates nothing. The span it returns stays valid
// until the next reset()/finish() on the same encoder.
//
// frame_decoder is fed the bytes of one connection as they arrive. Whole
// frames inside the input are verified in place (no copy); only the bytes of
// a frame cut by the end of the input are kept until the next feed. A length
// prefix above `frame_bytes_max` is rejected before anything is allocated.
// The first framing error is sticky: the connection must be closed.
//
// Both are owned by one thread (a shard, or a client's I/O thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <expected>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "protocol/errc.h"
#include "protocol/limits.h"
#include "protocol/nagare_generated.h"

namespace nagare::protocol {

namespace fb = nagare::protocol::fb;

// A verified frame. Valid only while the bytes it points into are.
struct frame_view {
    const fb::Frame* frame = nullptr;
    std::span<const std::byte> bytes;  // the whole frame, prefix included

    [[nodiscard]] fb::Body type() const noexcept { return frame->body_type(); }
    template <class T>
    [[nodiscard]] const T* as() const noexcept {
        return frame->body_as<T>();
    }
};

// A FlatBuffers string or byte vector as a view; empty when the field is absent.
[[nodiscard]] inline std::string_view view(const flatbuffers::String* s) noexcept {
    return s == nullptr ? std::string_view{} : std::string_view{s->data(), s->size()};
}
[[nodiscard]] inline std::span<const std::byte> view(
    const flatbuffers::Vector<std::uint8_t>* v) noexcept {
    if (v == nullptr) return {};
    return {reinterpret_cast<const std::byte*>(v->data()), v->size()};
}

struct header_ref {
    std::string_view key;
    std::string_view value;
};

// One message of a Publish, as the caller holds it.
struct message_ref {
    std::string_view project;
    std::string_view subject;
    std::string_view msg_id;
    std::span<const header_ref> headers;
    std::span<const std::byte> payload;
};

class frame_encoder {
public:
    explicit frame_encoder(std::size_t initial_bytes = 64u << 10);

    // The builder for a frame body. Call reset() before building a new frame.
    [[nodiscard]] flatbuffers::FlatBufferBuilder& builder() noexcept { return _builder; }
    void reset() noexcept { _builder.Clear(); }

    // Wraps a finished body table into a Frame and returns the frame bytes.
    template <class T>
    std::span<const std::byte> finish(flatbuffers::Offset<T> body) {
        auto frame = fb::CreateFrame(_builder, fb::BodyTraits<T>::enum_value, body.Union());
        _builder.FinishSizePrefixed(frame, fb::FrameIdentifier());
        return {reinterpret_cast<const std::byte*>(_builder.GetBufferPointer()),
                _builder.GetSize()};
    }

    // Convenience encoders for the frames every peer sends.
    std::span<const std::byte> hello(std::string_view client_name, std::string_view auth_token);
    std::span<const std::byte> publish(std::uint64_t request_id,
                                       std::span<const message_ref> messages);
    std::span<const std::byte> ping(std::uint64_t nonce);
    std::span<const std::byte> pong(std::uint64_t nonce);
    std::span<const std::byte> error(std::uint64_t request_id, errc code,
                                     std::string_view message);

private:
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Header>>> headers(
        std::span<const header_ref> headers);

    flatbuffers::FlatBufferBuilder _builder;
    std::vector<flatbuffers::Offset<fb::PublishMessage>> _message_offsets;
    std::vector<flatbuffers::Offset<fb::Header>> _header_offsets;
};

struct decoder_options {
    std::size_t frame_bytes_max = frame_bytes_max_default;  // without the prefix
    std::uint32_t verifier_depth_max = protocol::verifier_depth_max;
    std::uint32_t verifier_tables_max = protocol::verifier_tables_max;
};

class frame_decoder {
public:
    // REQUIRES: options.frame_bytes_max <= frame_bytes_max_limit.
    explicit frame_decoder(decoder_options options = {});

    // Calls on_frame(frame_view) for every whole, verified frame in the
    // stream, in order. Returns the first framing error (frame_too_large,
    // bad_frame); frames before it have been handed out.
    template <class OnFrame>
    std::expected<void, errc> feed(std::span<const std::byte> input, OnFrame&& on_frame);

    // Bytes held for a frame that is not yet whole.
    [[nodiscard]] std::size_t buffered_bytes() const noexcept { return _pending.size(); }
    [[nodiscard]] std::optional<errc> failure() const noexcept { return _failure; }

    // Verifies one whole frame (prefix included) without any stream state.
    [[nodiscard]] std::expected<frame_view, errc> verify(std::span<const std::byte> frame);

private:
    // Reads and checks a length prefix; fails the decoder when it is out of range.
    [[nodiscard]] std::expected<std::size_t, errc> frame_bytes(const std::byte* prefix);
    std::unexpected<errc> fail(errc code) noexcept;
    void release_pending() noexcept;

    decoder_options _options;
    std::vector<std::byte> _pending;  // a frame cut by the end of an input
    std::vector<std::byte> _aligned;  // scratch for a whole frame at a misaligned address
    std::optional<errc> _failure;
};

// Keeps the pending buffer's capacity after a frame up to this size.
inline constexpr std::size_t decoder_pending_keep_bytes = 64u << 10;

template <class OnFrame>
std::expected<void, errc> frame_decoder::feed(std::span<const std::byte> input,
                                              OnFrame&& on_frame) {
    if (_failure) return std::unexpected(*_failure);
    if (!_pending.empty()) {
        if (_pending.size() < frame_prefix_bytes) {
            const auto take = std::min(frame_prefix_bytes - _pending.size(), input.size());
            _pending.insert(_pending.end(), input.begin(), input.begin() + take);
            input = input.subspan(take);
            if (_pending.size() < frame_prefix_bytes) return {};
        }
        const auto length = frame_bytes(_pending.data());
        if (!length) return std::unexpected(length.error());
        const auto whole = frame_prefix_bytes + *length;
        const auto take = std::min(whole - _pending.size(), input.size());
        _pending.insert(_pending.end(), input.begin(), input.begin() + take);
        input = input.subspan(take);
        if (_pending.size() < whole) return {};
        const auto frame = verify(_pending);
        if (!frame) return fail(frame.error());
        on_frame(*frame);
        release_pending();
    }
    while (input.size() >= frame_prefix_bytes) {
        const auto length = frame_bytes(input.data());
        if (!length) return std::unexpected(length.error());
        const auto whole = frame_prefix_bytes + *length;
        if (input.size() < whole) break;
        const auto frame = verify(input.first(whole));
        if (!frame) return fail(frame.error());
        on_frame(*frame);
        input = input.subspan(whole);
    }
    _pending.insert(_pending.end(), input.begin(), input.end());
    return {};
}

}  // namespace nagare::protocol
