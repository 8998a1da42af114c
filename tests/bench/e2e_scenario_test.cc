// The e2e scenario against the in-process fake target: the open-loop
// schedule, the latency from the scheduled send time, and the accounting of
// every message.
#include "bench/e2e_scenario.h"

#include <algorithm>
#include <cstring>

#include <gtest/gtest.h>

#include "tests/bench/fake_target.h"

namespace nagare::bench {
namespace {

using fakes::fake_target;

e2e_scenario_options small() {
    e2e_scenario_options o;
    o.load.producers = 2;
    o.load.projects = 10;
    o.load.message_bytes = 32;
    o.load.duration_ms = 300;
    o.load.mode = durability::interval;
    o.rate = 2000;  // 1,600 messages over the 0.5 s warm-up and 0.3 s measured
    o.subscribers.idle_max = std::chrono::milliseconds(300);
    return o;
}

TEST(E2eScenario, PublishesOnScheduleAndReceivesEveryMessageOnce) {
    fake_target t;
    const auto began = run_clock::now();
    auto r = run_e2e(t, small(), nullptr);
    const auto took = run_clock::now() - began;
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->scenario, "e2e");
    EXPECT_EQ(r->target, "fake");
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->duplicates, 0u);
    EXPECT_EQ(t.log->prepared, durability::interval);
    EXPECT_EQ(t.log->msg_ids.size(), 1600u);
    EXPECT_EQ(r->messages_total, 1600u);
    EXPECT_EQ(r->messages_measured, 600u);  // scheduled after the 0.5 s warm-up
    // Open loop: the run lasts as long as the schedule, no less.
    EXPECT_GE(took, std::chrono::milliseconds(790));
    EXPECT_NEAR(r->msgs_per_s, 2000, 2000 * 0.2);
    EXPECT_NEAR(r->measured_s, 0.3, 0.06);
    // Latency of every measured message, from its scheduled send time.
    EXPECT_EQ(r->latency_us.count, 600u);
    EXPECT_LE(r->latency_us.p50, r->latency_us.p99);
    EXPECT_LE(r->latency_us.p99, r->latency_us.max);
    ASSERT_EQ(t.log->subscriptions.size(), 1u);
    const auto& sub = t.log->subscriptions.front();
    EXPECT_EQ(sub.start, start_position::new_only);
    EXPECT_EQ(sub.ack, ack_mode::explicit_each);
    EXPECT_TRUE(sub.subject.starts_with("bench.x.e2e-")) << sub.subject;
    EXPECT_EQ(t.log->subjects, std::set<std::string>{sub.subject});
    EXPECT_EQ(t.log->acks, 1600u);
    EXPECT_EQ(t.log->payload_bytes, 32u);
    ASSERT_EQ(t.log->per_project.size(), 10u);
    ASSERT_EQ(r->figures.size(), 1u);
    EXPECT_EQ(r->figures.front().name, "achieved_to_target_rate");
    EXPECT_FALSE(r->figures.front().met().has_value());
}

TEST(E2eScenario, PayloadCarriesTheScheduleInOrder) {
    fake_target t;
    auto o = small();
    o.load.producers = 1;
    o.rate = 1000;
    o.load.duration_ms = 100;
    auto r = run_e2e(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    ASSERT_EQ(t.log->messages.size(), 600u);
    std::int64_t previous_ns = -1;
    for (std::uint64_t s = 0; s < t.log->messages.size(); ++s) {
        const auto& m = t.log->messages[s];
        std::int64_t scheduled_ns = 0;
        std::uint64_t index = 0;
        std::memcpy(&scheduled_ns, m.payload.data(), 8);
        std::memcpy(&index, m.payload.data() + 8, 8);
        EXPECT_EQ(index, s);
        if (previous_ns >= 0) {
            EXPECT_EQ(scheduled_ns - previous_ns, 1'000'000);  // 1 ms apart
        }
        previous_ns = scheduled_ns;
        EXPECT_TRUE(m.msg_id.ends_with("-" + std::to_string(s))) << m.msg_id;
    }
}

TEST(E2eScenario, CountsLostRepeatedAndFailedMessages) {
    fake_target t;
    t.lose_suffix = "-17";    // messages 17 (the other suffixes end in 017, 117, ...)
    t.repeat_suffix = "-5";   // message 5
    t.fail_suffix = "-1234";  // message 1234: publish fails, not lost
    auto r = run_e2e(t, small(), nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->lost, 1u);
    EXPECT_EQ(r->duplicates, 1u);
    EXPECT_EQ(r->errors, 2u);  // one failed publish, one lost message
    EXPECT_NE(r->first_error.find("publish: STORAGE_ERROR"), std::string::npos) << r->first_error;
}

TEST(E2eScenario, AStuckBrokerEndsTheRunWithAnError) {
    fake_target t;
    t.resolve_max = 50;  // then nothing resolves: the producers block on their windows
    auto o = small();
    o.load.inflight = 10;
    o.load.stall_max = std::chrono::milliseconds(200);
    const auto began = std::chrono::steady_clock::now();
    auto r = run_e2e(t, o, nullptr);
    EXPECT_LT(std::chrono::steady_clock::now() - began, std::chrono::seconds(5));
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->first_error, "publish: no publish resolved for 200 ms: connections closed");
    // Every message not stored is a failed publish, none is counted lost.
    EXPECT_EQ(r->errors, 1600u - 100u);
    EXPECT_EQ(r->lost, 0u);
}

TEST(E2eScenario, ValidateRejectsOutOfRangeOptions) {
    EXPECT_TRUE(validate(small()).has_value());
    auto bad = [](auto change) {
        auto o = small();
        change(o);
        return !validate(o).has_value();
    };
    EXPECT_TRUE(bad([](auto& o) { o.rate = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.rate = 10'000'001; }));
    EXPECT_TRUE(bad([](auto& o) { o.load.duration_ms = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.load.message_bytes = 15; }));
    EXPECT_TRUE(bad([](auto& o) { o.load.producers = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.consumers = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.idle_max = std::chrono::milliseconds(0); }));
    EXPECT_TRUE(bad([](auto& o) {  // 10^6 msgs/s for an hour: more than a receiver counts
        o.rate = 1'000'000;
        o.load.duration_ms = 3'600'000;
    }));
}

}  // namespace
}  // namespace nagare::bench
