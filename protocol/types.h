// Strong types for the numbers that must never mix: an offset, a partition
// and a shard are all integers, but passing one for another is a bug.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>

namespace nagare {

template <class Tag, class Rep>
struct strong_id {
    Rep value{};

    constexpr strong_id() = default;
    constexpr explicit strong_id(Rep v) : value(v) {}
    constexpr auto operator<=>(const strong_id&) const = default;
};

using offset = strong_id<struct offset_tag, std::uint64_t>;
using partition_id = strong_id<struct partition_tag, std::uint32_t>;
using shard_id = strong_id<struct shard_tag, std::uint32_t>;

}  // namespace nagare

template <class Tag, class Rep>
struct std::hash<nagare::strong_id<Tag, Rep>> {
    std::size_t operator()(const nagare::strong_id<Tag, Rep>& id) const noexcept {
        return std::hash<Rep>{}(id.value);
    }
};
