// The publish scenario against an in-process fake target: what it counts,
// what it sends, and how it reports failures.
#include "bench/publish_scenario.h"

#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "tests/bench/fake_target.h"

namespace nagare::bench {
namespace {

using fakes::fake_target;

publish_scenario_options small() {
    publish_scenario_options o;
    o.producers = 3;
    o.projects = 10;
    o.message_bytes = 64;
    o.messages = 30'001;  // not a multiple of the producers
    o.mode = durability::none;
    return o;
}

TEST(PublishScenario, PublishesEveryMessageOnceRoundRobinOverProjects) {
    fake_target t;
    auto r = run_publish(t, small(), nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->scenario, "publish");
    EXPECT_EQ(r->target, "fake");
    EXPECT_EQ(t.log->prepared, durability::none);
    EXPECT_EQ(t.log->msg_ids.size(), 30'001u);
    EXPECT_EQ(t.log->subjects, std::set<std::string>{"bench.x.event"});
    EXPECT_EQ(t.log->payload_bytes, 64u);
    ASSERT_EQ(t.log->per_project.size(), 10u);
    for (const auto& [project, count] : t.log->per_project) {
        EXPECT_NEAR(static_cast<double>(count), 3000.0, 3.0) << project;
    }
    EXPECT_EQ(r->messages_total, 30'001u);
    // The first 5% are warm-up, unless the run ended before the coordinator saw it end.
    const auto warmup = std::find_if(r->parameters.begin(), r->parameters.end(),
                                     [](const parameter& p) { return p.name == "warmup"; });
    ASSERT_NE(warmup, r->parameters.end());
    if (std::get<std::string>(warmup->value) == "5%") {
        EXPECT_GT(r->messages_measured, 0u);
        EXPECT_LE(r->messages_measured, 30'001u - 30'001u * 5 / 100);
    } else {
        EXPECT_EQ(r->messages_measured, 30'001u);
    }
    EXPECT_GT(r->msgs_per_s, 0);
    EXPECT_DOUBLE_EQ(r->mb_per_s, r->msgs_per_s * 64 / 1e6);
    EXPECT_GT(r->latency_us.count, 0u);
    EXPECT_LE(r->latency_us.count, 30'001u);
    EXPECT_LE(r->latency_us.p50, r->latency_us.p99);
    EXPECT_LE(r->latency_us.p99, r->latency_us.max);
    EXPECT_EQ(r->errors, 0u);
    EXPECT_FALSE(r->server_cpu_s.has_value());
    EXPECT_FALSE(r->server_peak_rss_kib.has_value());
    ASSERT_EQ(r->target_counters.size(), 1u);
    EXPECT_EQ(r->target_counters.front().first, "published");
    EXPECT_DOUBLE_EQ(r->target_counters.front().second, 30'001);
}

TEST(PublishScenario, CountsFailedPublishesAndKeepsTheFirstError) {
    fake_target t;
    t.fail_suffix = "99";  // k % 100 == 99 within each producer
    auto o = small();
    o.messages = 3000;
    auto r = run_publish(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->errors, 30u);  // 3 producers x 1000 messages, 10 failing each
    EXPECT_EQ(r->first_error, "STORAGE_ERROR");
    EXPECT_EQ(r->messages_total, 3000u);
}

TEST(PublishScenario, DurationRunStopsAndReportsTheServerProbe) {
    fake_target t;
    auto o = small();
    o.duration_ms = 200;
    server_probe probe;
    double cpu = 1.0;
    probe.cpu_s = [&] { return std::optional<double>(cpu += 0.5); };
    probe.peak_rss_kib = [] { return std::optional<std::uint64_t>(1234); };
    double writes = 10;
    probe.counters = [&] {
        return std::vector<std::pair<std::string, double>>{{"writes", writes *= 3}};
    };
    auto r = run_publish(t, o, &probe);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_NEAR(r->measured_s, 0.2, 0.1);
    EXPECT_GT(r->messages_measured, 0u);
    EXPECT_GE(r->messages_total, r->messages_measured);
    ASSERT_TRUE(r->server_cpu_s.has_value());
    EXPECT_DOUBLE_EQ(*r->server_cpu_s, 0.5);
    EXPECT_EQ(r->server_peak_rss_kib, 1234u);
    // Marks: before the producers start (30), after the warm-up (90), at the end (270).
    ASSERT_EQ(r->server_counters.size(), 1u);
    EXPECT_DOUBLE_EQ(r->server_counters.front().second, 270.0 - 90.0);
    bool has_duration = false;
    for (const auto& p : r->parameters) has_duration |= p.name == "duration_s";
    EXPECT_TRUE(has_duration);
}

TEST(PublishScenario, AStuckBrokerEndsTheRunWithAnError) {
    fake_target t;
    t.resolve_max = 100;  // then nothing resolves: the producers block on their windows
    auto o = small();
    o.inflight = 10;
    o.stall_max = std::chrono::milliseconds(200);
    const auto began = std::chrono::steady_clock::now();
    auto r = run_publish(t, o, nullptr);
    EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->first_error, "no publish resolved for 200 ms: connections closed");
    // The stall, the 10 held publishes failed by close() and the refused one, per producer.
    EXPECT_GE(r->errors, 1u + 3u * 10u);
    EXPECT_EQ(r->messages_total, 3u * 110u);
}

TEST(PublishScenario, SetupFailuresAreErrorsWithNothingMeasured) {
    fake_target t;
    t.refuse_connect = true;
    auto r = run_publish(t, small(), nullptr);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), "refused");
}

TEST(PublishScenario, ValidateRejectsOutOfRangeOptions) {
    EXPECT_TRUE(validate(small()).has_value());
    auto bad = [](auto change) {
        auto o = small();
        change(o);
        return !validate(o).has_value();
    };
    EXPECT_TRUE(bad([](auto& o) { o.producers = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.producers = 257; }));
    EXPECT_TRUE(bad([](auto& o) { o.projects = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.message_bytes = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.message_bytes = (1u << 20) + 1; }));
    EXPECT_TRUE(bad([](auto& o) { o.inflight = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.batch = 4097; }));
    EXPECT_TRUE(bad([](auto& o) { o.messages = 2; }));  // fewer than producers
    EXPECT_FALSE(bad([](auto& o) {
        o.messages = 0;
        o.duration_ms = 1000;
    }));
}

TEST(PublishScenario, DurabilityNamesRoundTrip) {
    for (const auto mode : {durability::fsync, durability::interval, durability::none}) {
        EXPECT_EQ(parse_durability(to_string(mode)), mode);
    }
    EXPECT_FALSE(parse_durability("always").has_value());
}

}  // namespace
}  // namespace nagare::bench
