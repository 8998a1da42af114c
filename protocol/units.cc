#include "protocol/units.h"

#include <charconv>
#include <cstdint>
#include <span>

namespace nagare::protocol {
namespace {

struct unit {
    std::string_view suffix;
    std::uint64_t factor;
};

std::expected<std::uint64_t, std::string> parse_with_units(std::string_view text,
                                                           std::span<const unit> units,
                                                           std::string_view what) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || rest == text.data()) {
        return std::unexpected("'" + std::string(text) + "' is not a " + std::string(what));
    }
    const std::string_view suffix(rest, static_cast<std::size_t>(end - rest));
    for (const auto& u : units) {
        if (suffix == u.suffix) {
            if (u.factor != 0 && value > UINT64_MAX / u.factor) {
                return std::unexpected("'" + std::string(text) + "' is too large");
            }
            return value * u.factor;
        }
    }
    return std::unexpected("'" + std::string(text) + "' has an unknown unit for a " +
                           std::string(what));
}

}  // namespace

std::expected<std::uint64_t, std::string> parse_duration_ms(std::string_view text) {
    static constexpr unit units[] = {{"", 1},          {"ms", 1},           {"s", 1000},
                                     {"m", 60'000},    {"h", 3'600'000},   {"d", 86'400'000}};
    return parse_with_units(text, units, "duration");
}

std::expected<std::uint64_t, std::string> parse_bytes(std::string_view text) {
    static constexpr unit units[] = {{"", 1},           {"B", 1},
                                     {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30},
                                     {"TiB", 1ULL << 40}, {"KB", 1'000},       {"MB", 1'000'000},
                                     {"GB", 1'000'000'000}};
    return parse_with_units(text, units, "size");
}

}  // namespace nagare::protocol
