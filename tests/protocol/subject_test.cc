#include "protocol/subject.h"
#include "tests/protocol/subject_reference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>
#include <string>
#include <vector>

namespace nagare::protocol {
namespace {

struct subject_case {
    std::string_view subject;
    bool valid;
};

const subject_case subject_cases[] = {
    {"task.updated", true},
    {"order.tasks.reordered", true},
    {"a.b", true},
    {"A-1.b_2", true},
    {"task.updated.v2.extra", true},
    {"task", false},               // one token: <entity>.<action> needs two
    {"", false},
    {".task", false},
    {"task.", false},
    {"task..updated", false},
    {"task.*", false},             // wildcards are for patterns only
    {"task.>", false},
    {"task.up dated", false},
    {"task.updé", false},
    {"task/updated.x", false},
    {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", true},    // 16 tokens
    {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", false}, // 17 tokens
};

TEST(Subject, ValidationTable) {
    for (const auto& c : subject_cases) {
        EXPECT_EQ(validate_subject(c.subject) == errc::none, c.valid) << "'" << c.subject << "'";
    }
}

TEST(Subject, LengthLimitIs256Bytes) {
    std::string s = "a." + std::string(254, 'b');
    EXPECT_EQ(s.size(), 256u);
    EXPECT_EQ(validate_subject(s), errc::none);
    s += "b";
    EXPECT_EQ(validate_subject(s), errc::bad_subject);
}

struct pattern_case {
    std::string_view pattern;
    bool valid;
};

const pattern_case pattern_cases[] = {
    {">", true},
    {"*", true},
    {"task.*", true},
    {"*.updated", true},
    {"task.>", true},
    {"*.*.>", true},
    {"audit", true},
    {"task.updated", true},
    {"", false},
    {"task.>.x", false},   // > only last
    {">.x", false},
    {"task.**", false},
    {"task.*x", false},
    {"task.>x", false},
    {"task..*", false},
    {"task.", false},
    {".>", false},
    {"task .*", false},
};

TEST(Pattern, ValidationTable) {
    for (const auto& c : pattern_cases) {
        EXPECT_EQ(validate_pattern(c.pattern) == errc::none, c.valid) << "'" << c.pattern << "'";
    }
}

TEST(Pattern, SeventeenTokensAreTooMany) {
    EXPECT_EQ(validate_pattern("*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*"), errc::none);
    EXPECT_EQ(validate_pattern("*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*"), errc::bad_pattern);
}

struct match_case {
    std::string_view pattern;
    std::string_view subject;
    bool matches;
};

const match_case match_cases[] = {
    {"task.updated", "task.updated", true},
    {"task.updated", "task.update", false},
    {"task.update", "task.updated", false},
    {"task.updated", "task.updated.v2", false},
    {"task.*", "task.updated", true},
    {"task.*", "task.created", true},
    {"task.*", "order.updated", false},
    {"task.*", "task.updated.v2", false},   // * is exactly one token
    {"*.updated", "task.updated", true},
    {"*.updated", "order.updated", true},
    {"*.updated", "task.created", false},
    {"*.*", "a.b", true},
    {"*.*", "a.b.c", false},
    {"task.>", "task.updated", true},
    {"task.>", "task.updated.v2", true},
    {"task.>", "order.updated", false},
    {"order.>", "order.tasks.reordered", true},
    {"order.tasks.>", "order.tasks", false}, // > needs at least one token
    {">", "task.updated", true},
    {">", "a.b.c.d", true},
    {"*.>", "a.b", true},
    {"*.*.>", "a.b", false},
    {"*.*.>", "a.b.c", true},
    {"task.*.v2", "task.updated.v2", true},
    {"task.*.v2", "task.updated.v3", false},
    {"ta.*", "task.updated", false},         // literal token is whole, not a prefix
    {"task.up*", "task.updated", false},     // invalid-looking never matches partially
    {"audit", "audit.login", false},
    {"audit.>", "audit.login", true},
    {"audit.>", "auditx.login", false},
    {"task.*", "task-x.updated", false},
    {"*.tasks.reordered", "order.tasks.reordered", true},
};

TEST(SubjectMatch, MatchTable) {
    for (const auto& c : match_cases) {
        if (validate_pattern(c.pattern) != errc::none) continue;  // task.up* is invalid
        EXPECT_EQ(subject_matches(c.pattern, c.subject), c.matches)
            << "'" << c.pattern << "' vs '" << c.subject << "'";
    }
}

TEST(Pattern, OverlapTable) {
    struct {
        std::string_view a, b;
        bool overlap;
    } cases[] = {
        {"audit.>", "task.>", false},     {"audit.>", ">", true},
        {"task.*", "task.updated", true}, {"task.*", "*.updated", true},
        {"task.*", "task.*.x", false},    {"task.>", "task.*.x", true},
        {"a.b", "a.b", true},             {"a.b", "a.c", false},
        {"a.b.>", "a.b", false},          {"*", "a.b", false},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(patterns_overlap(c.a, c.b), c.overlap) << c.a << " / " << c.b;
        EXPECT_EQ(patterns_overlap(c.b, c.a), c.overlap) << c.b << " / " << c.a;
    }
}

TEST(Pattern, CoversTable) {
    struct {
        std::string_view outer, inner;
        bool covers;
    } cases[] = {
        {">", "task.*", true},         {"task.>", "task.*", true},     {"task.>", "task.updated.x", true},
        {"task.*", "task.updated", true}, {"task.*", "task.*", true},  {"task.*", "task.>", false},
        {"task.updated", "task.*", false}, {"*.updated", "task.updated", true}, {"audit.>", "task.>", false},
        {"task.>", ">", false},        {"task.*.x", "task.*", false},   {"a.b", "a.b", true},
    };
    for (const auto& c : cases) EXPECT_EQ(pattern_covers(c.outer, c.inner), c.covers) << c.outer << " / " << c.inner;
}

// pattern_covers(o, i) == "every subject i matches, o matches", over every
// pattern of up to 3 tokens and subject of up to 5 tokens from a tiny alphabet.
TEST(Pattern, CoversAgreesWithEnumeration) {
    std::vector<std::string> patterns, subjects;
    const std::vector<std::string> ptokens = {"a", "b", "*", ">"};
    std::function<void(std::string, int)> grow_p = [&](std::string p, int n) {
        if (n > 0 && validate_pattern(p) == errc::none) patterns.push_back(p);
        if (n == 3) return;
        for (const auto& t : ptokens) grow_p(n == 0 ? t : p + "." + t, n + 1);
    };
    std::function<void(std::string, int)> grow_s = [&](std::string s, int n) {
        if (n >= 2) subjects.push_back(s);
        if (n == 5) return;
        for (const auto* t : {"a", "b", "c"}) grow_s(n == 0 ? std::string(t) : s + "." + t, n + 1);
    };
    grow_p("", 0);
    grow_s("", 0);
    ASSERT_GT(patterns.size(), 40u);
    for (const auto& o : patterns) {
        for (const auto& i : patterns) {
            bool expected = true;
            for (const auto& subject : subjects) {
                if (subject_matches(i, subject) && !subject_matches(o, subject)) {
                    expected = false;
                    break;
                }
            }
            // A single-token pattern matches no subject (subjects have >= 2 tokens):
            // only compare where the inner pattern matches something.
            const bool inner_matches_any = std::ranges::any_of(subjects, [&](const auto& s) { return subject_matches(i, s); });
            if (!inner_matches_any) continue;
            EXPECT_EQ(pattern_covers(o, i), expected) << o << " / " << i;
        }
    }
}

TEST(SubjectMatch, TableCoversAtLeastFortyCases) {
    EXPECT_GE(std::size(subject_cases) + std::size(pattern_cases) + std::size(match_cases), 40u);
}

}  // namespace
}  // namespace nagare::protocol

namespace nagare::protocol {
namespace {

using testing::reference_match;

TEST(SubjectMatch, AgreesWithTokenByTokenReferenceOnRandomInputs) {
    const std::string_view tokens[] = {"a", "b", "ab", "task", "updated", "x-1", "*", ">"};
    std::mt19937 rng(12345);
    std::size_t compared = 0;
    for (int i = 0; i < 200'000; ++i) {
        auto make = [&](bool wildcards) {
            std::string out;
            const auto n = 1 + rng() % 5;
            for (std::size_t k = 0; k < n; ++k) {
                if (k > 0) out += '.';
                out += tokens[rng() % (wildcards ? 8 : 6)];
            }
            return out;
        };
        const auto pattern = make(true);
        const auto subject = make(false);
        if (validate_pattern(pattern) != errc::none || validate_subject(subject) != errc::none) {
            continue;
        }
        ASSERT_EQ(subject_matches(pattern, subject), reference_match(pattern, subject))
            << pattern << " vs " << subject;
        ++compared;
    }
    EXPECT_GT(compared, 50'000u);
}

}  // namespace
}  // namespace nagare::protocol
