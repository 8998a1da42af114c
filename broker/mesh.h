// The shard mesh: one boost::lockfree::spsc_queue per ordered pair of shards
// (DESIGN.md section 4). The only way shards talk; no locks.
//
// Ownership: queue (from, to) is pushed only by shard `from` and drained
// only by shard `to`; both are asserted against this_shard (set by each
// shard thread at start). A full queue refuses the push: the caller keeps
// the message and tries again after its next loop turn (backpressure, never
// a drop). Waking the target is the caller's business (broker/io/waker.h).
#pragma once

#include <boost/lockfree/spsc_queue.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "protocol/assert.h"
#include "protocol/types.h"

namespace nagare::broker {

inline constexpr std::uint32_t shards_max = 256;
inline constexpr std::size_t mesh_queue_capacity_default = 4096;

// The shard the calling thread runs; shards_max on threads that are not shards.
inline thread_local std::uint32_t this_shard = shards_max;

// A mesh message is small and trivially copyable; bulk data travels as a
// pointer to an object the sender owns until the receiver hands it back.
struct mesh_message {
    std::uint16_t kind = 0;
    std::uint16_t from = 0;
    std::uint32_t arg = 0;
    void* object = nullptr;
    std::uint64_t value = 0;
};
static_assert(std::is_trivially_copyable_v<mesh_message>);
static_assert(sizeof(mesh_message) == 24);

class mesh {
public:
    // REQUIRES: 0 < shard_count <= shards_max.
    mesh(std::uint32_t shard_count, std::size_t queue_capacity = mesh_queue_capacity_default);

    [[nodiscard]] std::uint32_t shard_count() const noexcept { return _shard_count; }

    // REQUIRES: called on shard `from`; from != to.
    [[nodiscard]] bool push(shard_id from, shard_id to, mesh_message message) noexcept {
        NG_ASSERT(this_shard == from.value, "mesh push from a thread that is not the sender");
        NG_ASSERT(from != to && to.value < _shard_count, "mesh push to a bad shard");
        message.from = static_cast<std::uint16_t>(from.value);
        return queue(from, to).push(message);
    }

    // Pops at most `max_per_queue` messages from each queue into `to`, in
    // each queue's order, calling on_message(const mesh_message&).
    // REQUIRES: called on shard `to`.
    template <class OnMessage>
    std::size_t drain(shard_id to, OnMessage&& on_message, std::size_t max_per_queue) noexcept {
        NG_ASSERT(this_shard == to.value, "mesh drain from a thread that is not the receiver");
        std::size_t drained = 0;
        for (std::uint32_t from = 0; from < _shard_count; ++from) {
            if (from == to.value) continue;
            auto& q = queue(shard_id{from}, to);
            mesh_message m;
            for (std::size_t n = 0; n < max_per_queue && q.pop(m); ++n) {
                on_message(static_cast<const mesh_message&>(m));
                ++drained;
            }
        }
        return drained;
    }

private:
    using spsc = boost::lockfree::spsc_queue<mesh_message>;

    spsc& queue(shard_id from, shard_id to) noexcept {
        return *_queues[from.value * _shard_count + to.value];
    }

    std::uint32_t _shard_count;
    std::vector<std::unique_ptr<spsc>> _queues;  // [from * shard_count + to]
};

}  // namespace nagare::broker
