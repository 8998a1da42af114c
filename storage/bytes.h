// Little-endian loads and stores of fixed-width integers at any address, for
// the on-disk formats (record batches, indexes). memcpy keeps unaligned
// access defined; on x86-64 it compiles to one move.
#pragma once

#include <bit>
#include <cstddef>
#include <cstring>

namespace nagare::storage {

static_assert(std::endian::native == std::endian::little,
              "the on-disk formats are little-endian; a big-endian port must swap here");

template <class T>
[[nodiscard]] T load(const std::byte* at) noexcept {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
}

template <class T>
void store(std::byte* at, T value) noexcept {
    std::memcpy(at, &value, sizeof value);
}

}  // namespace nagare::storage
