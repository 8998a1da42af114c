// ULID generator for client-side msg_ids: 26 characters of Crockford base32,
// a 48-bit millisecond timestamp then 80 random bits. Ids from one generator
// are strictly increasing: within one millisecond the random part is
// incremented instead of redrawn (the monotonic ULID variant).
//
// Not thread-safe: one generator per thread (the client has one per connection).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "protocol/limits.h"

namespace nagare::protocol {

class ulid_generator {
public:
    // Seeds from std::random_device.
    ulid_generator();
    // Deterministic, for tests.
    explicit ulid_generator(std::uint64_t seed);

    using ulid = std::array<char, ulid_chars>;

    // A new id for the current wall-clock time.
    [[nodiscard]] ulid next();
    // A new id for the given time (milliseconds since the Unix epoch).
    [[nodiscard]] ulid next(std::uint64_t unix_ms);

    [[nodiscard]] static std::string_view view(const ulid& id) noexcept {
        return {id.data(), id.size()};
    }

private:
    std::uint64_t draw() noexcept;

    std::uint64_t _state;  // splitmix64
    std::uint64_t _last_ms = 0;
    std::uint16_t _random_high = 0;  // 80 random bits: 16 high ...
    std::uint64_t _random_low = 0;   // ... and 64 low
};

}  // namespace nagare::protocol
