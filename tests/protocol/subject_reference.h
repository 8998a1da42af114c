// A slow, obviously right subject matcher for tests and the fuzz target:
// split both on '.', compare token by token.
#pragma once

#include <string_view>
#include <vector>

namespace nagare::protocol::testing {

inline std::vector<std::string_view> split_tokens(std::string_view s) {
    std::vector<std::string_view> out;
    std::size_t start = 0;
    for (;;) {
        const auto dot = s.find('.', start);
        out.push_back(s.substr(start, dot - start));
        if (dot == std::string_view::npos) return out;
        start = dot + 1;
    }
}

inline bool reference_match(std::string_view pattern, std::string_view subject) {
    const auto p = split_tokens(pattern);
    const auto s = split_tokens(subject);
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] == ">") return s.size() > i;
        if (i >= s.size()) return false;
        if (p[i] != "*" && p[i] != s[i]) return false;
    }
    return p.size() == s.size();
}

}  // namespace nagare::protocol::testing
