#include "protocol/ulid.h"

#include <chrono>
#include <random>

namespace nagare::protocol {
namespace {

constexpr std::string_view crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

}  // namespace

ulid_generator::ulid_generator()
    : _state((static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

ulid_generator::ulid_generator(std::uint64_t seed) : _state(seed) {}

std::uint64_t ulid_generator::draw() noexcept {
    std::uint64_t z = (_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

ulid_generator::ulid ulid_generator::next() {
    const auto now = std::chrono::system_clock::now().time_since_epoch();
    return next(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now).count()));
}

ulid_generator::ulid ulid_generator::next(std::uint64_t unix_ms) {
    unix_ms &= (std::uint64_t{1} << 48) - 1;
    if (unix_ms > _last_ms) {
        _last_ms = unix_ms;
        _random_low = draw();
        _random_high = static_cast<std::uint16_t>(draw());
    } else {
        // Same (or earlier: clock stepped back) millisecond: stay monotonic.
        if (++_random_low == 0 && ++_random_high == 0) ++_last_ms;  // 80-bit overflow
    }
    ulid id{};
    // 10 chars of time (50 bits, top 2 zero), 16 chars of randomness (80 bits).
    for (int i = 9; i >= 0; --i) {
        id[static_cast<std::size_t>(i)] = crockford[(_last_ms >> (5 * (9 - i))) & 31];
    }
    for (int i = 25; i >= 10; --i) {
        const int bit = 5 * (25 - i);  // bit position in the 80-bit random part
        std::uint64_t chunk = 0;
        if (bit >= 64) {
            chunk = static_cast<std::uint64_t>(_random_high) >> (bit - 64);
        } else {
            chunk = _random_low >> bit;
            if (bit > 59) chunk |= static_cast<std::uint64_t>(_random_high) << (64 - bit);
        }
        id[static_cast<std::size_t>(i)] = crockford[chunk & 31];
    }
    return id;
}

}  // namespace nagare::protocol
