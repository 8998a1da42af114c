#include "protocol/subject.h"

#include <array>
#include <cstddef>

#include "protocol/limits.h"

namespace nagare::protocol {
namespace {

constexpr std::array<bool, 256> token_chars = [] {
    std::array<bool, 256> table{};
    for (char c = 'a'; c <= 'z'; ++c) table[static_cast<unsigned char>(c)] = true;
    for (char c = 'A'; c <= 'Z'; ++c) table[static_cast<unsigned char>(c)] = true;
    for (char c = '0'; c <= '9'; ++c) table[static_cast<unsigned char>(c)] = true;
    table['_'] = true;
    table['-'] = true;
    return table;
}();

bool is_token_char(char c) noexcept { return token_chars[static_cast<unsigned char>(c)]; }

// Counts tokens if every token is a literal token; 0 if any token is empty
// or holds a character outside the token set.
std::size_t literal_tokens(std::string_view text) noexcept {
    std::size_t tokens = 1;
    std::size_t token_bytes = 0;
    for (const char c : text) {
        if (c == '.') {
            if (token_bytes == 0) return 0;
            ++tokens;
            token_bytes = 0;
        } else if (is_token_char(c)) {
            ++token_bytes;
        } else {
            return 0;
        }
    }
    return token_bytes == 0 ? 0 : tokens;
}

}  // namespace

errc validate_subject(std::string_view subject) noexcept {
    if (subject.empty() || subject.size() > subject_bytes_max) return errc::bad_subject;
    const auto tokens = literal_tokens(subject);
    if (tokens < subject_tokens_min || tokens > subject_tokens_max) return errc::bad_subject;
    return errc::none;
}

errc validate_pattern(std::string_view pattern) noexcept {
    if (pattern.empty() || pattern.size() > subject_bytes_max) return errc::bad_pattern;
    std::size_t tokens = 0;
    std::size_t start = 0;
    while (start <= pattern.size()) {
        auto end = pattern.find('.', start);
        if (end == std::string_view::npos) end = pattern.size();
        const auto token = pattern.substr(start, end - start);
        ++tokens;
        const bool last = end == pattern.size();
        if (token == "*") {
            // one token, any value
        } else if (token == ">") {
            if (!last) return errc::bad_pattern;
        } else if (token.empty() || literal_tokens(token) != 1) {
            return errc::bad_pattern;
        }
        start = end + 1;
    }
    return tokens <= subject_tokens_max ? errc::none : errc::bad_pattern;
}

bool subject_matches(std::string_view pattern, std::string_view subject) noexcept {
    const char* p = pattern.data();
    const char* const p_end = p + pattern.size();
    const char* s = subject.data();
    const char* const s_end = s + subject.size();
    while (p != p_end) {
        if (s == s_end) return false;  // pattern has tokens left, subject none
        if (*p == '>' && p + 1 == p_end) return true;  // s has at least one token left
        if (*p == '*' && (p + 1 == p_end || p[1] == '.')) {
            ++p;
            while (s != s_end && *s != '.') ++s;
        } else {
            while (p != p_end && *p != '.') {
                if (s == s_end || *s != *p) return false;
                ++p;
                ++s;
            }
            if (s != s_end && *s != '.') return false;
        }
        // Both at a token end: '.' or end of text.
        if (p == p_end) return s == s_end;
        if (s == s_end) return false;
        ++p;
        ++s;
    }
    return s == s_end;
}

bool patterns_overlap(std::string_view a, std::string_view b) noexcept {
    for (;;) {
        const auto a_dot = a.find('.');
        const auto b_dot = b.find('.');
        const auto a_token = a.substr(0, a_dot);
        const auto b_token = b.substr(0, b_dot);
        if (a_token == ">" || b_token == ">") return true;  // each side has >= 1 token here
        if (a_token != "*" && b_token != "*" && a_token != b_token) return false;
        const bool a_last = a_dot == std::string_view::npos;
        const bool b_last = b_dot == std::string_view::npos;
        if (a_last || b_last) {
            // One pattern ends here: the other must end too, or continue only with ">"...
            // which needs one more token, so no common subject.
            return a_last && b_last;
        }
        a = a.substr(a_dot + 1);
        b = b.substr(b_dot + 1);
    }
}

bool pattern_covers(std::string_view outer, std::string_view inner) noexcept {
    // Subjects have at least two tokens: a leading `>` matches what `*.>` matches.
    if (inner == ">" && outer == "*.>") return true;
    for (;;) {
        const auto o_dot = outer.find('.');
        const auto i_dot = inner.find('.');
        const auto o_token = outer.substr(0, o_dot);
        const auto i_token = inner.substr(0, i_dot);
        if (o_token == ">") return true;  // inner has >= 1 token left, and so do its subjects
        if (i_token == ">") return false;  // inner reaches deeper than a single outer token
        if (o_token != "*" && o_token != i_token) return false;  // literal vs literal or `*`
        const bool o_last = o_dot == std::string_view::npos;
        const bool i_last = i_dot == std::string_view::npos;
        if (o_last || i_last) return o_last && i_last;
        outer = outer.substr(o_dot + 1);
        inner = inner.substr(i_dot + 1);
    }
}

}  // namespace nagare::protocol
