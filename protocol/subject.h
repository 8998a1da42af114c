// Subjects and subject patterns (DESIGN.md section 2).
//
// A subject is `<entity>.<action>[.<more>]`: 2..16 tokens of [A-Za-z0-9_-]+
// joined by '.', at most 256 bytes. A pattern has the same shape, may have a
// single token, and may use `*` for exactly one token and `>` as its last
// token for one or more trailing tokens (NATS semantics).
//
// Pure functions, callable from any thread.
#pragma once

#include <string_view>

#include "protocol/errc.h"

namespace nagare::protocol {

// errc::none, or errc::bad_subject.
[[nodiscard]] errc validate_subject(std::string_view subject) noexcept;

// errc::none, or errc::bad_pattern.
[[nodiscard]] errc validate_pattern(std::string_view pattern) noexcept;

// REQUIRES: validate_pattern(pattern) and validate_subject(subject) succeeded.
[[nodiscard]] bool subject_matches(std::string_view pattern, std::string_view subject) noexcept;

// True when some subject matches both patterns (streams may not overlap).
// REQUIRES: both patterns valid.
[[nodiscard]] bool patterns_overlap(std::string_view a, std::string_view b) noexcept;

// True when every subject `inner` matches also matches `outer` (a token may
// read only what its permissions allow). REQUIRES: both patterns valid.
[[nodiscard]] bool pattern_covers(std::string_view outer, std::string_view inner) noexcept;

}  // namespace nagare::protocol
