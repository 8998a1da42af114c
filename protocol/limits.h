// Every limit of the wire protocol, in one place. Brokers may lower the
// configurable ones (the *_default values); none may go above *_limit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nagare::protocol {

inline constexpr std::uint32_t protocol_version = 1;

// A frame is a u32 little-endian length prefix, then that many bytes.
inline constexpr std::size_t frame_prefix_bytes = 4;
inline constexpr std::size_t frame_bytes_max_default = 8u << 20;  // 8 MiB
inline constexpr std::size_t frame_bytes_max_limit = 64u << 20;   // hard ceiling
inline constexpr std::size_t frame_alignment_bytes = 8;  // largest scalar in the schema

// FlatBuffers verifier limits.
inline constexpr std::uint32_t verifier_depth_max = 16;
inline constexpr std::uint32_t verifier_tables_max = 1u << 20;

inline constexpr std::size_t subject_bytes_max = 256;
inline constexpr std::size_t subject_tokens_max = 16;
inline constexpr std::size_t subject_tokens_min = 2;  // <entity>.<action>
inline constexpr std::size_t project_bytes_max = 128;
inline constexpr std::size_t msg_id_bytes_max = 128;
inline constexpr std::size_t stream_name_bytes_max = 64;
inline constexpr std::size_t headers_max = 64;
inline constexpr std::size_t header_key_bytes_max = 64;
inline constexpr std::size_t header_value_bytes_max = 1024;
inline constexpr std::size_t payload_bytes_max_default = 1u << 20;  // 1 MiB
inline constexpr std::size_t messages_per_publish_max = 4096;
inline constexpr std::size_t patterns_per_subscribe_max = 32;

inline constexpr std::size_t ulid_chars = 26;

static_assert(frame_bytes_max_default <= frame_bytes_max_limit);
static_assert(payload_bytes_max_default < frame_bytes_max_default,
              "a maximal payload must fit in a frame");
static_assert(frame_bytes_max_limit < (std::size_t{1} << 31),
              "FlatBuffers offsets are 32-bit and signed in places");
static_assert(ulid_chars <= msg_id_bytes_max);

}  // namespace nagare::protocol
