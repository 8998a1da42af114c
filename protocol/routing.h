// Where a message lives and which shard owns it (DESIGN.md sections 2 and 4).
// The client library uses the same functions for shard-aware routing, so a
// change here is a protocol change (HelloOk.partition_rule).
#pragma once

#include <cstdint>
#include <string_view>

#include "protocol/types.h"

namespace nagare::protocol {

// xxh3_64 of the bytes, seed 0.
[[nodiscard]] std::uint64_t hash64(std::string_view bytes) noexcept;

// REQUIRES: partitions > 0.
[[nodiscard]] partition_id partition_for_project(std::string_view project,
                                                 std::uint32_t partitions) noexcept;

// Owner of partition p of a stream: (xxh3_64(stream) + p) % shards.
// REQUIRES: shards > 0.
[[nodiscard]] shard_id shard_for_partition(std::string_view stream, partition_id partition,
                                           std::uint32_t shards) noexcept;

}  // namespace nagare::protocol
