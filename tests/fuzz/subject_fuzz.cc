// AFL++ target: the input is "pattern\nsubject"; validation and matching
// must agree with a slow token-by-token reference implementation.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/subject.h"
#include "tests/protocol/subject_reference.h"

using nagare::protocol::testing::reference_match;

int main(int argc, char** argv) {
    using namespace nagare::protocol;
    FILE* in = argc > 1 ? std::fopen(argv[1], "rb") : stdin;
    if (in == nullptr) return 1;
    std::string data;
    char buffer[1024];
    while (const auto n = std::fread(buffer, 1, sizeof buffer, in)) data.append(buffer, n);
    const auto newline = data.find('\n');
    const std::string_view pattern = std::string_view(data).substr(0, newline);
    const std::string_view subject =
        newline == std::string::npos ? std::string_view{} : std::string_view(data).substr(newline + 1);
    const bool pattern_ok = validate_pattern(pattern) == errc::none;
    const bool subject_ok = validate_subject(subject) == errc::none;
    if (pattern_ok && subject_ok &&
        subject_matches(pattern, subject) != reference_match(pattern, subject)) {
        std::abort();  // a disagreement is a finding
    }
    return 0;
}
