#include "bench/target.h"

#include <initializer_list>

namespace nagare::bench {

namespace {

// The value of `values` whose name is `text`; else "<option> must be a, b or c, not 'text'".
template <typename Enum>
std::expected<Enum, std::string> parse_named(std::string_view text, std::string_view option,
                                             std::initializer_list<Enum> values) {
    std::string names;
    std::size_t i = 0;
    for (const auto value : values) {
        if (text == to_string(value)) return value;
        names += (i == 0 ? "" : i + 1 == values.size() ? " or " : ", ");
        names += to_string(value);
        ++i;
    }
    return std::unexpected(std::string(option) + " must be " + names + ", not '" +
                           std::string(text) + "'");
}

}  // namespace

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
    return parse_named(text, "durability",
                       {durability::fsync, durability::interval, durability::none});
}

std::string_view to_string(ack_mode mode) noexcept {
    return mode == ack_mode::none ? "none" : "explicit";
}

std::expected<ack_mode, std::string> parse_ack_mode(std::string_view text) {
    return parse_named(text, "ack", {ack_mode::explicit_each, ack_mode::none});
}

void add_counter(target_counters& into, std::string_view name, double value) {
    for (auto& [n, v] : into) {
        if (n == name) {
            v += value;
            return;
        }
    }
    into.emplace_back(std::string(name), value);
}

}  // namespace nagare::bench
