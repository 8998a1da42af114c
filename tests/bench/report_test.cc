#include "bench/report.h"

#include <sstream>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <gtest/gtest.h>

namespace nagare::bench {
namespace {

namespace pt = boost::property_tree;

run_result sample() {
    run_result r;
    r.scenario = "publish";
    r.target = "nagare";
    r.parameters = {
        {"durability", std::string("none")}, {"producers", std::uint64_t{4}}, {"duration_s", 2.5}};
    r.messages_total = 1'000'000;
    r.messages_measured = 950'000;
    r.measured_s = 0.5;
    r.msgs_per_s = 1'900'000;
    r.mb_per_s = 243.2;
    r.latency_us = {950'000, 100, 200, 300, 400, 5000};
    r.client_cpu_s = 0.75;
    return r;
}

pt::ptree parse(const std::string& json) {
    std::istringstream in(json);
    pt::ptree tree;
    pt::read_json(in, tree);
    return tree;
}

TEST(Report, JsonHoldsEveryFigureAndParses) {
    std::ostringstream out;
    auto r = sample();
    r.server_cpu_s = 1.25;
    r.server_peak_rss_kib = 65536;
    r.target_counters = {{"publish_frames", 4000}};
    r.server_counters = {{"publishes", 950'000}, {"forwards_sent", 0}};
    write_json(out, r);
    const auto tree = parse(out.str());
    EXPECT_EQ(tree.get<std::string>("scenario"), "publish");
    EXPECT_EQ(tree.get<std::string>("target"), "nagare");
    EXPECT_EQ(tree.get<std::string>("parameters.durability"), "none");
    EXPECT_EQ(tree.get<int>("parameters.producers"), 4);
    EXPECT_DOUBLE_EQ(tree.get<double>("parameters.duration_s"), 2.5);
    EXPECT_EQ(tree.get<std::uint64_t>("messages_total"), 1'000'000u);
    EXPECT_EQ(tree.get<std::uint64_t>("messages_measured"), 950'000u);
    EXPECT_DOUBLE_EQ(tree.get<double>("msgs_per_s"), 1'900'000);
    EXPECT_DOUBLE_EQ(tree.get<double>("mb_per_s"), 243.2);
    EXPECT_DOUBLE_EQ(tree.get<double>("latency_us.p50"), 100);
    EXPECT_DOUBLE_EQ(tree.get<double>("latency_us.p90"), 200);
    EXPECT_DOUBLE_EQ(tree.get<double>("latency_us.p99"), 300);
    EXPECT_DOUBLE_EQ(tree.get<double>("latency_us.p999"), 400);
    EXPECT_DOUBLE_EQ(tree.get<double>("latency_us.max"), 5000);
    EXPECT_DOUBLE_EQ(tree.get<double>("server_cpu_s"), 1.25);
    EXPECT_EQ(tree.get<std::uint64_t>("server_peak_rss_kib"), 65536u);
    EXPECT_EQ(tree.get<int>("errors"), 0);
    EXPECT_DOUBLE_EQ(tree.get<double>("target_counters.publish_frames"), 4000);
    EXPECT_DOUBLE_EQ(tree.get<double>("server_counters.publishes"), 950'000);
    EXPECT_DOUBLE_EQ(tree.get<double>("server_counters.forwards_sent"), 0);
}

TEST(Report, JsonWritesNullForWhatWasNotMeasuredAndEscapesText) {
    std::ostringstream out;
    auto r = sample();
    r.errors = 3;
    r.first_error = "bad \"subject\"\n\tline\x01";
    write_json(out, r);
    EXPECT_NE(out.str().find("\"server_cpu_s\": null"), std::string::npos);
    EXPECT_NE(out.str().find("\"server_peak_rss_kib\": null"), std::string::npos);
    const auto tree = parse(out.str());
    EXPECT_EQ(tree.get<std::string>("first_error"), "bad \"subject\"\n\tline\x01");
    EXPECT_EQ(tree.get<int>("errors"), 3);
}

TEST(Report, TableHasOneRowPerResultWithGroupedFigures) {
    std::ostringstream out;
    auto a = sample();
    auto b = sample();
    b.target = "other";
    b.server_cpu_s = 2.0;
    b.errors = 2;
    b.first_error = "OVERLOADED";
    const run_result results[] = {a, b};
    print_table(out, results);
    const auto text = out.str();
    EXPECT_NE(text.find("publish on nagare: durability=none producers=4 duration_s=2.5"),
              std::string::npos);
    EXPECT_NE(text.find("msgs/s"), std::string::npos);
    EXPECT_NE(text.find("1,900,000"), std::string::npos);
    EXPECT_NE(text.find("950,000"), std::string::npos);
    EXPECT_NE(text.find("2.00"), std::string::npos);  // b's server CPU
    EXPECT_NE(text.find("other: 2 errors, first: OVERLOADED"), std::string::npos);
    // Two parameter lines, header + two rows, the error line.
    std::size_t lines = 0;
    for (const char c : text) lines += c == '\n' ? 1 : 0;
    EXPECT_EQ(lines, 2u + 3u + 1u);
}

TEST(Report, TableListsCountersAfterTheRows) {
    std::ostringstream out;
    auto r = sample();
    r.target_counters = {{"publish_frames", 4000}};
    r.server_counters = {{"publishes", 950'000}};
    print_table(out, std::span(&r, 1));
    EXPECT_NE(out.str().find("nagare client: publish_frames=4000\n"), std::string::npos)
        << out.str();
    EXPECT_NE(out.str().find("nagare server: publishes=950000\n"), std::string::npos) << out.str();
}

run_result consume_sample() {
    auto fill = sample();
    fill.phase = "fill";
    run_result r = sample();
    r.scenario = "consume";
    r.phase = "consume";
    r.msgs_per_s = 950'000;
    r.latency_us = {};
    r.lost = 0;
    r.duplicates = 2;
    r.phases.push_back(fill);
    r.figures.push_back({"consume_to_publish", "consume / publish msgs/s", 0.5, 0.5, "issue 5"});
    return r;
}

TEST(Report, JsonNestsThePhasesAndGivesTheVerdict) {
    std::ostringstream out;
    auto r = consume_sample();
    r.figures.push_back({"other", "other", 1.5, std::nullopt, "no goal"});
    write_json(out, r);
    const auto tree = parse(out.str());
    EXPECT_EQ(tree.get<std::string>("scenario"), "consume");
    EXPECT_EQ(tree.get<std::string>("phase"), "consume");
    EXPECT_EQ(tree.get<std::string>("latency_us"), "null");
    EXPECT_EQ(tree.get<int>("lost"), 0);
    EXPECT_EQ(tree.get<int>("duplicates"), 2);
    EXPECT_DOUBLE_EQ(tree.get<double>("figures.consume_to_publish.value"), 0.5);
    EXPECT_DOUBLE_EQ(tree.get<double>("figures.consume_to_publish.at_least"), 0.5);
    EXPECT_EQ(tree.get<std::string>("figures.consume_to_publish.verdict"), "met");
    EXPECT_EQ(tree.get<std::string>("figures.other.verdict"), "null");
    const auto& phases = tree.get_child("phases");
    ASSERT_EQ(phases.size(), 1u);
    const auto& fill = phases.front().second;
    EXPECT_EQ(fill.get<std::string>("phase"), "fill");
    EXPECT_DOUBLE_EQ(fill.get<double>("msgs_per_s"), 1'900'000);
    EXPECT_DOUBLE_EQ(fill.get<double>("latency_us.p99"), 300);
    EXPECT_EQ(fill.get<std::string>("lost"), "null");
    // A figure below its goal is missed.
    r.figures.front().value = 0.49;
    std::ostringstream again;
    write_json(again, r);
    EXPECT_EQ(parse(again.str()).get<std::string>("figures.consume_to_publish.verdict"), "missed");
}

TEST(Report, TableShowsPhaseRowsFirstAndTheVerdictLine) {
    std::ostringstream out;
    const auto r = consume_sample();
    print_table(out, std::span(&r, 1));
    const auto text = out.str();
    const auto fill_row = text.find("nagare fill ");
    const auto consume_row = text.find("nagare consume ");
    ASSERT_NE(fill_row, std::string::npos) << text;
    ASSERT_NE(consume_row, std::string::npos) << text;
    EXPECT_LT(fill_row, consume_row);
    EXPECT_NE(text.find("dups"), std::string::npos);
    EXPECT_NE(text.find("lost"), std::string::npos);
    EXPECT_NE(text.find("nagare consume / publish msgs/s: 0.50 (goal >= 0.50; issue 5): met"),
              std::string::npos)
        << text;
}

TEST(Report, SummaryOfAnEmptyHistogramIsZeroAndPercentilesAreOrdered) {
    protocol::latency_histogram h;
    const auto empty = summarize_ns(h);
    EXPECT_EQ(empty.count, 0u);
    EXPECT_EQ(empty.max, 0);
    for (std::uint64_t v = 1; v <= 100'000; ++v) h.record(v * 1000);  // 1 us .. 100 ms
    const auto s = summarize_ns(h);
    EXPECT_EQ(s.count, 100'000u);
    EXPECT_LE(s.p50, s.p90);
    EXPECT_LE(s.p90, s.p99);
    EXPECT_LE(s.p99, s.p999);
    EXPECT_LE(s.p999, s.max);
    EXPECT_NEAR(s.p50, 50'000, 50'000 * 0.04);
    EXPECT_DOUBLE_EQ(s.max, 100'000);
}

}  // namespace
}  // namespace nagare::bench
