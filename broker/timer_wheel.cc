#include "broker/timer_wheel.h"

#include <bit>

namespace nagare::broker {

timer_wheel::timer_wheel(std::uint32_t capacity, std::uint64_t tick_ns, std::uint32_t slots,
                         std::uint64_t now_ns)
    : _capacity(capacity),
      _slot_mask(slots - 1),
      _pending(capacity + slots),
      _tick_ns(tick_ns),
      _cursor_tick(tick_ns == 0 ? 0 : now_ns / tick_ns) {
    NG_ASSERT(capacity >= 1 && tick_ns >= 1, "a wheel holds ids and ticks take time");
    NG_ASSERT(std::has_single_bit(slots), "slots is a power of two");
    NG_ASSERT(std::uint64_t{capacity} + slots + 1 <= nodes_max, "node indexes fit in a u32");
    const std::size_t nodes = std::size_t{capacity} + slots + 1;
    _next = std::make_unique<std::uint32_t[]>(nodes);
    _prev = std::make_unique<std::uint32_t[]>(nodes);
    _deadline_ns = std::make_unique<std::uint64_t[]>(capacity);
    for (std::size_t node = 0; node < nodes; ++node) {
        _next[node] = _prev[node] = static_cast<std::uint32_t>(node);  // unlinked / empty list
    }
}

void timer_wheel::schedule(std::uint32_t id, std::uint64_t deadline_ns) noexcept {
    NG_ASSERT(id < _capacity, "id below capacity");
    if (armed(id)) {
        unlink(id);
    } else {
        ++_armed;
    }
    _deadline_ns[id] = deadline_ns;
    // A past deadline goes to the cursor's slot, which the next advance visits first.
    link_before(slot_node(std::max(deadline_ns / _tick_ns, _cursor_tick)), id);
}

void timer_wheel::cancel(std::uint32_t id) noexcept {
    NG_ASSERT(id < _capacity, "id below capacity");
    if (!armed(id)) return;
    unlink(id);
    --_armed;
}

bool timer_wheel::armed(std::uint32_t id) const noexcept {
    NG_ASSERT(id < _capacity, "id below capacity");
    return _next[id] != id;
}

std::uint64_t timer_wheel::deadline_ns(std::uint32_t id) const noexcept {
    NG_ASSERT(armed(id), "a deadline of an armed id");
    return _deadline_ns[id];
}

void timer_wheel::link_before(std::uint32_t head, std::uint32_t node) noexcept {
    const std::uint32_t tail = _prev[head];
    _next[node] = head;
    _prev[node] = tail;
    _next[tail] = node;
    _prev[head] = node;
}

void timer_wheel::unlink(std::uint32_t node) noexcept {
    const std::uint32_t before = _prev[node];
    const std::uint32_t after = _next[node];
    _next[before] = after;
    _prev[after] = before;
    _next[node] = _prev[node] = node;
}

void timer_wheel::collect_due(std::uint32_t head, std::uint64_t now_ns) noexcept {
    NG_DEBUG_ASSERT(_next[_pending] == _pending, "the pending list is empty between slots");
    for (std::uint32_t node = _next[head]; node != head;) {
        const std::uint32_t after = _next[node];
        if (_deadline_ns[node] <= now_ns) {
            unlink(node);
            link_before(_pending, node);
        }
        node = after;
    }
}

}  // namespace nagare::broker
