// nagare::client::error: what every failing call of the client library
// returns. `code` is a protocol code (docs/protocol.md) or one of the client's
// own codes below, numbered outside the wire's closed set.
#pragma once

#include <string>
#include <string_view>

#include "protocol/errc.h"

namespace nagare::client {

using errc = protocol::errc;

// Failures on the client's side of the wire, which have no protocol code.
// Numbered from 100 so they never meet the wire's closed set (0..22).
// The broker cannot be reached (connect failed or timed out, or
// give_up_after exceeded).
inline constexpr errc errc_unavailable = static_cast<errc>(100);
// The client was closed before the publish was acknowledged, or is closed.
inline constexpr errc errc_closed = static_cast<errc>(101);

// The wire name ("BAD_SUBJECT"), or "UNAVAILABLE" / "CLOSED".
// (Not to_string: protocol::to_string is found by ADL for the same type.)
[[nodiscard]] std::string_view errc_name(errc code) noexcept;

struct error {
    errc code = errc::none;
    std::string message;
};

}  // namespace nagare::client
