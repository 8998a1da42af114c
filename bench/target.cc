#include "bench/target.h"

namespace nagare::bench {

std::string_view to_string(durability mode) noexcept {
    switch (mode) {
        case durability::fsync:
            return "fsync";
        case durability::interval:
            return "interval";
        case durability::none:
            return "none";
    }
    return "fsync";
}

std::expected<durability, std::string> parse_durability(std::string_view text) {
    for (const auto mode : {durability::fsync, durability::interval, durability::none}) {
        if (text == to_string(mode)) return mode;
    }
    return std::unexpected("durability must be fsync, interval or none, not '" + std::string(text) +
                           "'");
}

}  // namespace nagare::bench
