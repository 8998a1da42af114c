// The consume scenario against the in-process fake target: it fills, then
// reads back every message once, reports both rates and the verdict, and
// counts what was lost or repeated.
#include "bench/consume_scenario.h"

#include <algorithm>

#include <gtest/gtest.h>

#include "tests/bench/fake_target.h"

namespace nagare::bench {
namespace {

using fakes::fake_target;

consume_scenario_options small() {
    consume_scenario_options o;
    o.fill.producers = 3;
    o.fill.projects = 10;
    o.fill.message_bytes = 128;
    o.fill.messages = 20'001;  // not a multiple of the producers
    o.fill.mode = durability::none;
    o.subscribers.idle_max = std::chrono::milliseconds(300);  // a run missing messages ends soon
    return o;
}

const parameter* find(const run_result& r, std::string_view name) {
    const auto it =
        std::ranges::find_if(r.parameters, [&](const parameter& p) { return p.name == name; });
    return it == r.parameters.end() ? nullptr : &*it;
}

TEST(ConsumeScenario, ReadsBackEveryMessageOnceBesideTheFill) {
    fake_target t;
    auto r = run_consume(t, small(), nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->scenario, "consume");
    EXPECT_EQ(r->phase, "consume");
    EXPECT_EQ(r->target, "fake");
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->duplicates, 0u);
    EXPECT_EQ(r->messages_total, 20'001u);  // every delivery, warm-up included
    EXPECT_GT(r->messages_measured, 0u);
    EXPECT_LE(r->messages_measured, 20'001u);
    EXPECT_GT(r->msgs_per_s, 0);
    EXPECT_DOUBLE_EQ(r->mb_per_s, r->msgs_per_s * 128 / 1e6);
    EXPECT_EQ(r->latency_us.count, 0u);  // no latency for a consume
    // The fill is the publish scenario on a subject of the run's own, which
    // the one ephemeral subscriber filtered on, from the first message, acking each.
    ASSERT_EQ(r->phases.size(), 1u);
    const auto& fill = r->phases.front();
    EXPECT_EQ(fill.scenario, "publish");
    EXPECT_EQ(fill.phase, "fill");
    EXPECT_EQ(fill.messages_total, 20'001u);
    EXPECT_GT(fill.msgs_per_s, 0);
    ASSERT_EQ(t.log->subjects.size(), 1u);
    const auto subject = *t.log->subjects.begin();
    EXPECT_TRUE(subject.starts_with("bench.x.consume-")) << subject;
    ASSERT_EQ(t.log->subscriptions.size(), 1u);
    const auto& sub = t.log->subscriptions.front();
    EXPECT_EQ(sub.stream, "bench_x");
    EXPECT_EQ(sub.subject, subject);
    EXPECT_TRUE(sub.consumer.empty());
    EXPECT_EQ(sub.start, start_position::first);
    EXPECT_EQ(sub.ack, ack_mode::explicit_each);
    EXPECT_EQ(sub.inflight_messages, 1024u);
    EXPECT_EQ(t.log->acks, 20'001u);
    EXPECT_TRUE(t.log->removed_consumers.empty());
    // The ratio of the two rates, judged against issue 5's goal.
    ASSERT_EQ(r->figures.size(), 1u);
    const auto& ratio = r->figures.front();
    EXPECT_EQ(ratio.name, "consume_to_publish");
    EXPECT_DOUBLE_EQ(ratio.value, r->msgs_per_s / fill.msgs_per_s);
    EXPECT_EQ(ratio.at_least, 0.50);
    EXPECT_EQ(ratio.met(), ratio.value >= 0.50);
    ASSERT_NE(find(*r, "consumer"), nullptr);
    EXPECT_EQ(std::get<std::string>(find(*r, "consumer")->value), "ephemeral");
    ASSERT_NE(find(*r, "fill_warmup"), nullptr);
    ASSERT_NE(find(*r, "messages"), nullptr);
}

TEST(ConsumeScenario, DurableSubscribersShareTheMessagesAndTheConsumerIsRemoved) {
    fake_target t;
    auto o = small();
    o.subscribers.consumers = 3;
    o.subscribers.durable = true;
    o.subscribers.max_inflight = 77;
    auto r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->duplicates, 0u);
    EXPECT_EQ(r->messages_total, 20'001u);  // shared: N in all
    ASSERT_EQ(t.log->subscriptions.size(), 3u);
    const auto name = t.log->subscriptions.front().consumer;
    EXPECT_TRUE(name.starts_with("bench-")) << name;
    for (const auto& s : t.log->subscriptions) {
        EXPECT_EQ(s.consumer, name);
        EXPECT_EQ(s.inflight_messages, 77u);
    }
    EXPECT_EQ(t.log->removed_consumers, std::vector<std::string>{name});
}

TEST(ConsumeScenario, EphemeralSubscribersEachReadEverything) {
    fake_target t;
    auto o = small();
    o.fill.messages = 3000;
    o.subscribers.consumers = 2;
    auto r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->messages_total, 6000u);
    EXPECT_EQ(r->lost, 0u);
}

TEST(ConsumeScenario, CountsLostAndRepeatedDeliveriesAsTheyHappen) {
    fake_target t;
    t.lose_suffix = "-17";  // message 17 of each of the 3 producers
    t.repeat_suffix = "-5";
    auto o = small();
    o.fill.messages = 300;
    auto r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->lost, 3u);
    EXPECT_EQ(r->duplicates, 3u);
    EXPECT_EQ(r->errors, 3u);  // lost messages are errors; a repeat is not
    // The run waited for them until nothing came for idle_max.
    EXPECT_NE(r->first_error.find("no delivery for 300 ms: 297 of 300 messages delivered"),
              std::string::npos)
        << r->first_error;
}

TEST(ConsumeScenario, AFailedFillConsumesNothingAndSaysWhy) {
    fake_target t;
    t.fail_suffix = "-9";
    auto o = small();
    o.fill.messages = 300;
    auto r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->errors, 3u);
    EXPECT_NE(r->first_error.find("fill: STORAGE_ERROR"), std::string::npos) << r->first_error;
    EXPECT_TRUE(t.log->subscriptions.empty());
    EXPECT_EQ(r->phases.size(), 1u);
}

TEST(ConsumeScenario, NoVerdictForRunsTheGoalDoesNotSpeakOf) {
    fake_target t;
    auto o = small();
    o.fill.messages = 300;
    o.fill.message_bytes = 64;
    auto r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    ASSERT_EQ(r->figures.size(), 1u);
    EXPECT_FALSE(r->figures.front().met().has_value());
    o.fill.message_bytes = 128;
    o.subscribers.ack = ack_mode::none;
    r = run_consume(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_FALSE(r->figures.front().met().has_value());
    EXPECT_EQ(t.log->acks, 300u);  // the first run's only
}

TEST(ConsumeScenario, SetupFailuresAreErrorsWithNothingMeasured) {
    fake_target t;
    t.refuse_subscribe = true;
    auto r = run_consume(t, small(), nullptr);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), "subscribe refused");
}

TEST(ConsumeScenario, ValidateRejectsOutOfRangeOptions) {
    EXPECT_TRUE(validate(small()).has_value());
    auto bad = [](auto change) {
        auto o = small();
        change(o);
        return !validate(o).has_value();
    };
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.consumers = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.consumers = 65; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.max_inflight = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers.max_inflight = 16385; }));
    EXPECT_TRUE(bad([](auto& o) { o.fill.duration_ms = 1000; }));
    EXPECT_TRUE(bad([](auto& o) { o.fill.messages = (std::uint64_t{1} << 28) + 1; }));
    EXPECT_TRUE(bad([](auto& o) { o.fill.producers = 0; }));
}

TEST(ConsumeScenario, MessageIndexReadsTheFillsMsgIds) {
    EXPECT_EQ(message_index("run-2-10", "run", 3), 32u);
    EXPECT_EQ(message_index("run-0-0", "run", 3), 0u);
    EXPECT_FALSE(message_index("other-2-10", "run", 3).has_value());
    EXPECT_FALSE(message_index("run-3-10", "run", 3).has_value());  // no producer 3
    EXPECT_FALSE(message_index("run-2-", "run", 3).has_value());
    EXPECT_FALSE(message_index("run-2-1x", "run", 3).has_value());
    EXPECT_FALSE(message_index("runx2-1", "run", 3).has_value());
    EXPECT_FALSE(message_index("run", "run", 3).has_value());
}

}  // namespace
}  // namespace nagare::bench
