#include "protocol/frame.h"

#include <bit>

#include "protocol/assert.h"

namespace nagare::protocol {

static_assert(std::endian::native == std::endian::little,
              "the wire is little-endian; a big-endian port must swap the prefix");

frame_encoder::frame_encoder(std::size_t initial_bytes) : _builder(initial_bytes) {
    _message_offsets.reserve(messages_per_publish_max);
    _header_offsets.reserve(headers_max);
}

std::span<const std::byte> frame_encoder::hello(std::string_view client_name,
                                                std::string_view auth_token) {
    reset();
    const auto name = _builder.CreateString(client_name);
    const auto token = _builder.CreateString(auth_token);
    return finish(fb::CreateHello(_builder, protocol_version, name, token));
}

flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Header>>> frame_encoder::headers(
    std::span<const header_ref> headers) {
    if (headers.empty()) return 0;
    _header_offsets.clear();
    for (const auto& h : headers) {
        const auto key = _builder.CreateString(h.key);
        const auto value = _builder.CreateString(h.value);
        _header_offsets.push_back(fb::CreateHeader(_builder, key, value));
    }
    return _builder.CreateVector(_header_offsets);
}

std::span<const std::byte> frame_encoder::publish(std::uint64_t request_id,
                                                  std::span<const message_ref> messages) {
    reset();
    _message_offsets.clear();
    for (const auto& m : messages) {
        const auto project = _builder.CreateString(m.project);
        const auto subject = _builder.CreateString(m.subject);
        const auto msg_id = _builder.CreateString(m.msg_id);
        const auto hdrs = headers(m.headers);
        const auto payload = _builder.CreateVector(
            reinterpret_cast<const std::uint8_t*>(m.payload.data()), m.payload.size());
        _message_offsets.push_back(
            fb::CreatePublishMessage(_builder, project, subject, msg_id, hdrs, payload));
    }
    const auto list = _builder.CreateVector(_message_offsets);
    return finish(fb::CreatePublish(_builder, request_id, list));
}

std::span<const std::byte> frame_encoder::ping(std::uint64_t nonce) {
    reset();
    return finish(fb::CreatePing(_builder, nonce));
}

std::span<const std::byte> frame_encoder::pong(std::uint64_t nonce) {
    reset();
    return finish(fb::CreatePong(_builder, nonce));
}

std::span<const std::byte> frame_encoder::error(std::uint64_t request_id, errc code,
                                                std::string_view message) {
    reset();
    const auto text = _builder.CreateString(message);
    return finish(fb::CreateError(_builder, request_id, static_cast<fb::ErrorCode>(code), text));
}

namespace {

template <class T>
bool aligned(const flatbuffers::Vector<const T*>* v) noexcept {
    // An empty vector's data is never read: the builder may leave it unaligned.
    return v == nullptr || v->size() == 0 ||
           reinterpret_cast<std::uintptr_t>(v->data()) % alignof(T) == 0;
}

// FlatBuffers 2.0.8's verifier checks a vector of structs for 4-byte
// alignment only; ours hold u64 fields and need 8. Frames are verified at
// an 8-aligned address, so the absolute address tells.
bool struct_vectors_aligned(const fb::Frame& frame) noexcept {
    switch (frame.body_type()) {
        case fb::Body::PubAck: return aligned(frame.body_as_PubAck()->entries());
        case fb::Body::SubOk: return aligned(frame.body_as_SubOk()->start_positions());
        case fb::Body::Ack: return aligned(frame.body_as_Ack()->positions());
        case fb::Body::Subscribe: return aligned(frame.body_as_Subscribe()->start_positions());
        case fb::Body::AdminResult: {
            const auto* consumers = frame.body_as_AdminResult()->consumers();
            if (consumers == nullptr) return true;
            for (const auto* c : *consumers) {
                if (!aligned(c->ack_floors())) return false;
            }
            return true;
        }
        default: return true;
    }
}

}  // namespace

frame_decoder::frame_decoder(decoder_options options) : _options(options) {
    NG_ASSERT(_options.frame_bytes_max <= frame_bytes_max_limit,
              "frame_bytes_max above the protocol's hard limit");
}

std::expected<std::size_t, errc> frame_decoder::frame_bytes(const std::byte* prefix) {
    std::uint32_t length = 0;
    std::memcpy(&length, prefix, sizeof length);
    if (length > _options.frame_bytes_max) return fail(errc::frame_too_large);
    return length;
}

std::unexpected<errc> frame_decoder::fail(errc code) noexcept {
    _failure = code;
    release_pending();
    return std::unexpected(code);
}

void frame_decoder::release_pending() noexcept {
    if (_pending.capacity() > decoder_pending_keep_bytes) {
        std::vector<std::byte>{}.swap(_pending);
    } else {
        _pending.clear();
    }
}

std::expected<frame_view, errc> frame_decoder::verify(std::span<const std::byte> frame) {
    if (frame.size() < frame_prefix_bytes ||
        frame.size() - frame_prefix_bytes > _options.frame_bytes_max) {
        return std::unexpected(frame.size() < frame_prefix_bytes ? errc::bad_frame
                                                                  : errc::frame_too_large);
    }
    // FlatBuffers reads scalars in place: give it an aligned copy when the
    // frame starts at an odd address (frames written by a FlatBufferBuilder
    // are padded to keep the next one aligned, so this is rare).
    if (reinterpret_cast<std::uintptr_t>(frame.data()) % frame_alignment_bytes != 0) {
        _aligned.assign(frame.begin(), frame.end());
        frame = _aligned;
    }
    const auto* data = reinterpret_cast<const std::uint8_t*>(frame.data());
    flatbuffers::Verifier::Options verifier_options;
    verifier_options.max_depth = _options.verifier_depth_max;
    verifier_options.max_tables = _options.verifier_tables_max;
    flatbuffers::Verifier verifier(data, frame.size(), verifier_options);
    if (!fb::VerifySizePrefixedFrameBuffer(verifier)) return std::unexpected(errc::bad_frame);
    const auto* root = fb::GetSizePrefixedFrame(data);
    const auto type = root->body_type();
    if (type == fb::Body::NONE || type > fb::Body::MAX || root->body() == nullptr ||
        !struct_vectors_aligned(*root)) {
        return std::unexpected(errc::bad_frame);
    }
    return frame_view{root, frame};
}

}  // namespace nagare::protocol
