// Durations and sizes as people write them in config files and on command
// lines. Pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace nagare::protocol {

// "250ms", "30s", "5m", "1h", "7d", or a plain number of milliseconds.
[[nodiscard]] std::expected<std::uint64_t, std::string> parse_duration_ms(std::string_view text);
// "512", "4KiB", "64MiB", "1GiB" (also KB/MB/GB as powers of 1000).
[[nodiscard]] std::expected<std::uint64_t, std::string> parse_bytes(std::string_view text);

}  // namespace nagare::protocol
