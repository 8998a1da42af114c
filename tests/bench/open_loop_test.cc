// bench/open_loop.h: the payload stamps (binary and JSON) and the schedule.
#include "bench/open_loop.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace nagare::bench {
namespace {

std::string_view text_of(const std::vector<std::byte>& bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::vector<stamp> stamps_in(std::string_view text) {
    std::vector<stamp> found;
    const auto n = for_each_json_stamp(text, [&](const stamp& s) { found.push_back(s); });
    EXPECT_EQ(n, found.size());
    return found;
}

TEST(OpenLoop, JsonStampFillsThePayloadAndReadsBack) {
    for (const std::size_t bytes : {json_stamp_bytes_min, std::size_t{128}, std::size_t{1000}}) {
        std::vector<std::byte> payload(bytes, std::byte{0});
        const stamp s{INT64_MAX, UINT64_MAX};  // the longest numbers
        write_json_stamp(payload, s);
        const auto text = text_of(payload);
        EXPECT_TRUE(text.starts_with("{\"nb_seq\":18446744073709551615,")) << text;
        EXPECT_TRUE(text.ends_with("\"}")) << text;
        EXPECT_EQ(text.find('\0'), std::string_view::npos);
        const auto found = stamps_in(text);
        ASSERT_EQ(found.size(), 1u);
        EXPECT_EQ(found[0].index, s.index);
        EXPECT_EQ(found[0].scheduled_ns, s.scheduled_ns);
    }
}

TEST(OpenLoop, JsonStampIsFoundInsideAnEventAndABatch) {
    std::vector<std::byte> payload(100);
    write_json_stamp(payload, {12345, 7});
    const auto event = "{\"event\":\"bench.none.fanout-x\",\"id\":\"1:2\",\"payload\":" +
                       std::string(text_of(payload)) + "}";
    auto found = stamps_in(event);
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].index, 7u);
    EXPECT_EQ(found[0].scheduled_ns, 12345);
    // A batch (array of events), re-serialized with spaces after the colons.
    found = stamps_in(R"([{"payload":{"nb_seq": 1,"nb_t_ns": 10,"pad":"x"}},)"
                      R"({"payload":{"nb_seq":2,"nb_t_ns":20,"pad":"x"}}])");
    ASSERT_EQ(found.size(), 2u);
    EXPECT_EQ(found[0].index, 1u);
    EXPECT_EQ(found[0].scheduled_ns, 10);
    EXPECT_EQ(found[1].index, 2u);
    EXPECT_EQ(found[1].scheduled_ns, 20);
}

TEST(OpenLoop, TextWithoutAWholeStampHasNone) {
    EXPECT_TRUE(stamps_in("").empty());
    EXPECT_TRUE(stamps_in(R"({"type":"welcome","recovered":false})").empty());
    EXPECT_TRUE(stamps_in(R"({"nb_seq":5})").empty());
    EXPECT_TRUE(stamps_in(R"({"nb_seq":"5","nb_t_ns":7})").empty());
    EXPECT_TRUE(stamps_in(R"({"nb_seq":-5,"nb_t_ns":7})").empty());
}

TEST(OpenLoop, BinaryStampRoundTrips) {
    std::vector<std::byte> payload(e2e_message_bytes_min);
    write_binary_stamp(payload, {42, 9});
    const auto s = read_binary_stamp(payload);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->scheduled_ns, 42);
    EXPECT_EQ(s->index, 9u);
    EXPECT_FALSE(read_binary_stamp(std::span(payload).first(15)).has_value());
}

TEST(OpenLoop, ScheduleSpacesMessagesByTheRate) {
    schedule plan;
    plan.t0_ns = 1000;
    plan.rate = 4;
    EXPECT_EQ(plan.at_ns(0), 1000);
    EXPECT_EQ(plan.at_ns(1), 1000 + 250'000'000);
    EXPECT_EQ(plan.at_ns(8), 1000 + 2'000'000'000);
}

}  // namespace
}  // namespace nagare::bench
