// Exit codes of every `nagare` command, in one place.
#pragma once

namespace nagare::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_refused = 1;   // the broker refused, or --timeout passed first
inline constexpr int exit_faults = 1;    // log verify found a fault; log dump met one
inline constexpr int exit_unusable = 2;  // unusable input, no broker, or an unreadable directory

}  // namespace nagare::cli
