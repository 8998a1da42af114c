#include "broker/mesh.h"

namespace nagare::broker {

mesh::mesh(std::uint32_t shard_count, std::size_t queue_capacity) : _shard_count(shard_count) {
    NG_ASSERT(shard_count > 0 && shard_count <= shards_max, "shard count out of range");
    NG_ASSERT(queue_capacity > 0, "mesh queues need room");
    _queues.resize(static_cast<std::size_t>(shard_count) * shard_count);
    for (std::uint32_t from = 0; from < shard_count; ++from) {
        for (std::uint32_t to = 0; to < shard_count; ++to) {
            if (from != to) _queues[from * shard_count + to] = std::make_unique<spsc>(queue_capacity);
        }
    }
}

}  // namespace nagare::broker
