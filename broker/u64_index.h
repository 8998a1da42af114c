// A fixed-capacity map from u64 keys to u32 values: open addressing, linear
// probing, backward-shift deletion. Sized once; no operation allocates after
// construction. Used by the consumer engine for offset -> in-flight slot and
// project hash -> in-flight slot (ordered consumers).
//
// Owned by one thread; not thread-safe.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "protocol/assert.h"

namespace nagare::broker {

class u64_index {
public:
    static constexpr std::uint32_t empty_value = std::numeric_limits<std::uint32_t>::max();

    // Holds at most `capacity` keys (the table has twice as many slots).
    explicit u64_index(std::uint32_t capacity)
        : _mask(std::bit_ceil(std::max<std::uint32_t>(2, capacity * 2)) - 1),
          _capacity(capacity),
          _keys(_mask + 1, 0),
          _values(_mask + 1, empty_value) {}

    [[nodiscard]] std::uint32_t size() const noexcept { return _size; }
    [[nodiscard]] std::uint32_t capacity() const noexcept { return _capacity; }

    [[nodiscard]] std::optional<std::uint32_t> find(std::uint64_t key) const noexcept {
        for (std::uint32_t i = home(key);; i = (i + 1) & _mask) {
            if (_values[i] == empty_value) return std::nullopt;
            if (_keys[i] == key) return _values[i];
        }
    }

    // REQUIRES: key absent, size() < capacity(), value != empty_value.
    void insert(std::uint64_t key, std::uint32_t value) noexcept {
        NG_ASSERT(_size < _capacity && value != empty_value, "u64_index full");
        std::uint32_t i = home(key);
        while (_values[i] != empty_value) {
            NG_DEBUG_ASSERT(_keys[i] != key, "u64_index: key inserted twice");
            i = (i + 1) & _mask;
        }
        _keys[i] = key;
        _values[i] = value;
        ++_size;
    }

    // false when the key was absent.
    bool erase(std::uint64_t key) noexcept {
        std::uint32_t i = home(key);
        for (;; i = (i + 1) & _mask) {
            if (_values[i] == empty_value) return false;
            if (_keys[i] == key) break;
        }
        // Backward shift: pull later members of the probe run into the hole.
        for (std::uint32_t j = (i + 1) & _mask; _values[j] != empty_value; j = (j + 1) & _mask) {
            const std::uint32_t h = home(_keys[j]);
            // Move j into i when its home is not in the cyclic range (i, j].
            const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
            if (stays) continue;
            _keys[i] = _keys[j];
            _values[i] = _values[j];
            i = j;
        }
        _values[i] = empty_value;
        --_size;
        return true;
    }

    void clear() noexcept {
        std::fill(_values.begin(), _values.end(), empty_value);
        _size = 0;
    }

private:
    [[nodiscard]] std::uint32_t home(std::uint64_t key) const noexcept {
        return static_cast<std::uint32_t>((key * 0x9e3779b97f4a7c15ULL) >> 32) & _mask;
    }

    std::uint32_t _mask;
    std::uint32_t _capacity;
    std::uint32_t _size = 0;
    std::vector<std::uint64_t> _keys;
    std::vector<std::uint32_t> _values;
};

}  // namespace nagare::broker
