// timer_wheel: a hashed timing wheel over caller-chosen ids 0..capacity-1
// (in the broker: in-flight deliveries awaiting their ack, redelivery
// delays). Fixed capacity; all memory is allocated by the constructor.
//
// Time is cut into ticks of tick_ns; `slots` (a power of two) lists cover
// the ticks modulo slots. An armed id sits in the list of its deadline's tick
// and keeps its exact deadline, so a deadline several revolutions ahead (or
// inside the current tick) fires only once now_ns reaches it.
//
//   schedule, cancel, armed   O(1): intrusive circular doubly linked lists
//                             in arrays (one node per id, one per slot).
//   advance(now_ns, fn)       visits the slots of the ticks from the last
//                             advance's tick through now_ns's tick — at most
//                             `slots` of them however long the gap — and
//                             fires every id there whose deadline <= now_ns.
//                             Cost: one pass over the ids in each visited
//                             slot (armed ids / slots on average).
//
// A deadline at or before the last advance's tick goes to that tick's list,
// which the next advance visits first: it fires then (once now_ns >= the
// deadline, which a later now always is).
//
// Invariants: an id is armed iff its node is linked into one list: a slot's,
// or inside advance() the list of due ids not fired yet; size() counts the armed ids; every armed id sits in the slot of
// max(its deadline's tick, the cursor tick at its schedule time), so the
// next advance that reaches its deadline visits it.
//
// Owned by one thread (in the broker: the shard); not thread-safe.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>

#include "protocol/assert.h"

namespace nagare::broker {

class timer_wheel {
public:
    // The largest capacity + slots the node arrays can index (u32, one spare).
    static constexpr std::uint32_t nodes_max = std::numeric_limits<std::uint32_t>::max() - 1;

    // REQUIRES: capacity >= 1, tick_ns >= 1, slots a power of two,
    // capacity + slots + 1 <= nodes_max.
    timer_wheel(std::uint32_t capacity, std::uint64_t tick_ns, std::uint32_t slots,
                std::uint64_t now_ns);
    timer_wheel(const timer_wheel&) = delete;
    timer_wheel& operator=(const timer_wheel&) = delete;

    // Arms `id` to fire at deadline_ns, or moves it there if armed.
    // REQUIRES: id < capacity().
    void schedule(std::uint32_t id, std::uint64_t deadline_ns) noexcept;
    // Disarms `id`; a no-op when not armed. REQUIRES: id < capacity().
    void cancel(std::uint32_t id) noexcept;
    // REQUIRES: id < capacity().
    [[nodiscard]] bool armed(std::uint32_t id) const noexcept;
    // The deadline `id` was armed with. REQUIRES: armed(id).
    [[nodiscard]] std::uint64_t deadline_ns(std::uint32_t id) const noexcept;
    [[nodiscard]] std::uint32_t size() const noexcept { return _armed; }
    [[nodiscard]] std::uint32_t capacity() const noexcept { return _capacity; }
    [[nodiscard]] std::uint64_t tick_ns() const noexcept { return _tick_ns; }
    [[nodiscard]] std::uint32_t slots() const noexcept { return _slot_mask + 1; }
    // Slot lists advance() has walked, in total (a metric; at most slots() per call).
    [[nodiscard]] std::uint64_t slots_visited() const noexcept { return _slots_visited; }

    // Calls fn(id) for each armed id whose deadline <= now_ns; each is disarmed
    // before its call, and fn may schedule or cancel any id (one scheduled at or
    // before now_ns fires in this advance or the next). Returns how many fired.
    // A now_ns before the last advance's is taken as that one's tick.
    template <class Fn>
    std::size_t advance(std::uint64_t now_ns, Fn&& fn);

private:
    [[nodiscard]] std::uint32_t slot_node(std::uint64_t tick) const noexcept {
        return _capacity + static_cast<std::uint32_t>(tick & _slot_mask);
    }
    // Links `node` in front of `head` (at the list's tail).
    void link_before(std::uint32_t head, std::uint32_t node) noexcept;
    void unlink(std::uint32_t node) noexcept;
    // Moves the ids of the list at `head` whose deadline <= now_ns to the
    // list at _pending (empty before), in order; the others stay.
    void collect_due(std::uint32_t head, std::uint64_t now_ns) noexcept;

    std::uint32_t _capacity;
    std::uint32_t _slot_mask;
    std::uint32_t _pending;  // node index of the list being fired
    std::uint32_t _armed = 0;
    std::uint64_t _tick_ns;
    std::uint64_t _cursor_tick;  // the last advance's tick: slots before it were visited
    std::uint64_t _slots_visited = 0;
    // Nodes 0..capacity-1 are ids, then one head per slot, then _pending. An
    // unlinked id node points at itself.
    std::unique_ptr<std::uint32_t[]> _next;
    std::unique_ptr<std::uint32_t[]> _prev;
    std::unique_ptr<std::uint64_t[]> _deadline_ns;  // per id
};

template <class Fn>
std::size_t timer_wheel::advance(std::uint64_t now_ns, Fn&& fn) {
    const std::uint64_t start_tick = _cursor_tick;
    const std::uint64_t now_tick = std::max(now_ns / _tick_ns, start_tick);
    // Schedules made by fn at or before now go to now's slot: visited last
    // here, first by the next advance.
    _cursor_tick = now_tick;
    const std::uint64_t visits =
        now_tick - start_tick < slots() ? now_tick - start_tick + 1 : slots();
    _slots_visited += visits;
    std::size_t fired = 0;
    for (std::uint64_t i = 0; i < visits; ++i) {
        collect_due(slot_node(start_tick + i), now_ns);
        // fn may cancel or move ids still waiting here: they leave this list.
        while (_next[_pending] != _pending) {
            const std::uint32_t id = _next[_pending];
            unlink(id);
            --_armed;
            ++fired;
            fn(id);
        }
    }
    return fired;
}

}  // namespace nagare::broker
