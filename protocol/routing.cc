#include "protocol/routing.h"

#include <xxhash.h>

#include "protocol/assert.h"

namespace nagare::protocol {

std::uint64_t hash64(std::string_view bytes) noexcept {
    return XXH3_64bits(bytes.data(), bytes.size());
}

partition_id partition_for_project(std::string_view project, std::uint32_t partitions) noexcept {
    NG_ASSERT(partitions > 0, "a stream has at least one partition");
    return partition_id{static_cast<std::uint32_t>(hash64(project) % partitions)};
}

shard_id shard_for_partition(std::string_view stream, partition_id partition,
                             std::uint32_t shards) noexcept {
    NG_ASSERT(shards > 0, "a node has at least one shard");
    return shard_id{static_cast<std::uint32_t>((hash64(stream) + partition.value) % shards)};
}

}  // namespace nagare::protocol
