#include "protocol/ulid.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "protocol/validate.h"

namespace nagare::protocol {
namespace {

TEST(Ulid, KnownTimestampEncodesAsCrockfordBase32) {
    ulid_generator gen(1);
    // 1469918176385 ms is the example of the ULID specification: 01ARYZ6S41.
    const auto id = gen.next(1469918176385ULL);
    EXPECT_EQ(ulid_generator::view(id).substr(0, 10), "01ARYZ6S41");
    for (const char c : id) {
        EXPECT_NE(std::string_view("0123456789ABCDEFGHJKMNPQRSTVWXYZ").find(c),
                  std::string_view::npos);
    }
    EXPECT_EQ(validate_msg_id(ulid_generator::view(id)), errc::none);
}

TEST(Ulid, IdsAreStrictlyIncreasingWithinAndAcrossMilliseconds) {
    ulid_generator gen(7);
    std::string previous;
    std::set<std::string> seen;
    for (std::uint64_t i = 0; i < 10'000; ++i) {
        const auto id = gen.next(1'700'000'000'000ULL + i / 1000);
        std::string s(ulid_generator::view(id));
        EXPECT_GT(s, previous);
        EXPECT_TRUE(seen.insert(s).second);
        previous = std::move(s);
    }
}

TEST(Ulid, ClockSteppingBackStaysMonotonic) {
    ulid_generator gen(3);
    const auto a = gen.next(2'000'000'000'000ULL);
    const auto b = gen.next(1'000'000'000'000ULL);
    EXPECT_GT(ulid_generator::view(b), ulid_generator::view(a));
}

TEST(Ulid, DifferentSeedsDifferInTheRandomPart) {
    ulid_generator a(1), b(2);
    EXPECT_NE(ulid_generator::view(a.next(5)), ulid_generator::view(b.next(5)));
    ulid_generator live;
    EXPECT_EQ(ulid_generator::view(live.next()).size(), ulid_chars);
}

}  // namespace
}  // namespace nagare::protocol
