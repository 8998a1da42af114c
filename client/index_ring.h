// A double-ended queue of slot indices with a capacity fixed at
// construction: it never allocates afterwards. Not synchronised: the owner
// says which mutex or thread guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "protocol/assert.h"

namespace nagare::client {

class index_ring {
public:
    explicit index_ring(std::size_t capacity) : _items(capacity) {
        NG_ASSERT(capacity > 0, "a ring holds at least one index");
    }

    [[nodiscard]] std::size_t size() const noexcept { return _size; }
    [[nodiscard]] bool empty() const noexcept { return _size == 0; }
    [[nodiscard]] std::size_t capacity() const noexcept { return _items.size(); }

    // REQUIRES: size() < capacity().
    void push_back(std::uint32_t index) noexcept {
        NG_ASSERT(_size < _items.size(), "index_ring overflow");
        _items[wrap(_head + _size)] = index;
        ++_size;
    }
    // REQUIRES: size() < capacity().
    void push_front(std::uint32_t index) noexcept {
        NG_ASSERT(_size < _items.size(), "index_ring overflow");
        _head = _head == 0 ? _items.size() - 1 : _head - 1;
        _items[_head] = index;
        ++_size;
    }
    // REQUIRES: !empty().
    [[nodiscard]] std::uint32_t front() const noexcept {
        NG_DEBUG_ASSERT(_size > 0, "front of an empty index_ring");
        return _items[_head];
    }
    // REQUIRES: !empty().
    std::uint32_t pop_front() noexcept {
        NG_ASSERT(_size > 0, "pop from an empty index_ring");
        const auto index = _items[_head];
        _head = wrap(_head + 1);
        --_size;
        return index;
    }

private:
    [[nodiscard]] std::size_t wrap(std::size_t i) const noexcept {
        return i >= _items.size() ? i - _items.size() : i;
    }

    std::vector<std::uint32_t> _items;
    std::size_t _head = 0;
    std::size_t _size = 0;
};

}  // namespace nagare::client
