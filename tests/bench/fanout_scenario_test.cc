// The fanout scenario against the in-process fake target (broker mode) and
// against a fake SSE server (gateway mode, tests/bench/sse_client_test.cc
// covers the client itself): every subscriber gets every message once,
// the subscribers share the connections, and faults are counted.
#include "bench/fanout_scenario.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "tests/bench/fake_sse_server.h"
#include "tests/bench/fake_target.h"

namespace nagare::bench {
namespace {

using fakes::fake_target;

fanout_scenario_options small() {
    fanout_scenario_options o;
    o.load.duration_ms = 300;
    o.load.message_bytes = 100;
    o.load.mode = durability::none;
    o.rate = 1000;  // 800 messages over the 0.5 s warm-up and 0.3 s measured
    o.subscribers = 10;
    o.connections = 3;
    o.idle_max = std::chrono::milliseconds(300);
    return o;
}

TEST(FanoutScenario, EverySubscriberGetsEveryMessageOnce) {
    fake_target t;
    auto r = run_fanout(t, small(), nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->scenario, "fanout");
    EXPECT_EQ(r->target, "fake");
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->duplicates, 0u);
    EXPECT_EQ(t.log->messages.size(), 800u);
    EXPECT_EQ(r->messages_total, 8000u);
    EXPECT_EQ(r->messages_measured, 3000u);  // 300 measured messages x 10 subscribers
    EXPECT_EQ(r->latency_us.count, 3000u);
    EXPECT_LE(r->latency_us.p50, r->latency_us.max);
    // 10 subscribers x 1000 msgs/s, measured to the last delivery.
    EXPECT_NEAR(r->msgs_per_s, 10'000, 10'000 * 0.25);
    // One project and one subject of the run's own, JSON payloads of the size asked.
    ASSERT_EQ(t.log->per_project.size(), 1u);
    EXPECT_TRUE(t.log->per_project.begin()->first.starts_with("fanout-"));
    EXPECT_EQ(t.log->payload_bytes, 100u);
    EXPECT_TRUE(t.log->messages.front().payload.starts_with("{\"nb_seq\":0,"));
    // Ten ephemeral subscriptions, deliver new, no acks, on the run's subject.
    ASSERT_EQ(t.log->subscriptions.size(), 10u);
    for (const auto& s : t.log->subscriptions) {
        EXPECT_TRUE(s.consumer.empty());
        EXPECT_EQ(s.start, start_position::new_only);
        EXPECT_EQ(s.ack, ack_mode::none);
        EXPECT_EQ(s.subject, t.log->messages.front().subject);
    }
    ASSERT_EQ(r->figures.size(), 2u);
    EXPECT_EQ(r->figures[0].name, "delivered_to_offered");
    EXPECT_NEAR(r->figures[0].value, 1.0, 0.25);
    EXPECT_EQ(r->figures[1].name, "achieved_to_target_rate");
    EXPECT_NEAR(r->figures[1].value, 1.0, 0.25);
}

TEST(FanoutScenario, CountsLostRepeatedAndFailedMessagesPerSubscriber) {
    fake_target t;
    t.lose_suffix = "-17";   // message 17: lost by every subscriber
    t.repeat_suffix = "-5";  // message 5: twice to every subscriber
    t.fail_suffix = "-123";  // message 123: publish fails, not lost
    auto r = run_fanout(t, small(), nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->lost, 10u);
    EXPECT_EQ(r->duplicates, 10u);
    EXPECT_EQ(r->errors, 11u);  // one failed publish, ten lost deliveries
}

// Relays what the fake target stores to the fake SSE server's clients, as
// the gateway would (one event JSON per message), until destroyed.
class relay {
public:
    relay(fake_target& t, fakes::fake_sse_server& server)
        : _thread([&t, &server, this] {
              std::size_t next = 0;
              for (;;) {
                  std::unique_lock lock(t.log->mutex);
                  t.log->grew.wait_for(lock, std::chrono::milliseconds(5));
                  if (_stop) return;
                  for (; next < t.log->messages.size(); ++next) {
                      const auto& m = t.log->messages[next];
                      server.broadcast(R"({"event":")" + m.subject + R"(","id":"1:)" +
                                       std::to_string(next) + R"(","payload":)" + m.payload + "}");
                  }
              }
          }) {}
    ~relay() {
        _stop = true;
        _thread.join();
    }

private:
    std::atomic<bool> _stop{false};
    std::thread _thread;
};

TEST(FanoutScenario, ThroughAGatewayEverySseClientGetsEveryMessageOnce) {
    fake_target t;
    fakes::fake_sse_server server;
    const relay pump(t, server);
    auto o = small();
    o.gateway_url = server.url() + "/";
    auto r = run_fanout(t, o, nullptr);
    ASSERT_TRUE(r.has_value()) << r.error();
    EXPECT_EQ(r->target, "fake via gateway");
    EXPECT_EQ(r->errors, 0u) << r->first_error;
    EXPECT_EQ(r->lost, 0u);
    EXPECT_EQ(r->messages_total, 8000u);
    EXPECT_EQ(r->messages_measured, 3000u);
    EXPECT_EQ(r->latency_us.count, 3000u);
    // No broker subscription: the SSE clients asked for the run's project and subject.
    EXPECT_TRUE(t.log->subscriptions.empty());
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 10u);
    const auto& project = t.log->per_project.begin()->first;
    const auto& subject = t.log->messages.front().subject;
    EXPECT_TRUE(requests.front().starts_with("GET /events?project=" + project +
                                             "&subjects=" + subject + "&named=0 HTTP/1.1"))
        << requests.front();
    const auto counter = [&](std::string_view name) {
        for (const auto& [n, v] : r->target_counters) {
            if (n == name) return v;
        }
        return -1.0;
    };
    EXPECT_EQ(counter("sse_events"), 8010);  // and 10 welcomes
    EXPECT_EQ(counter("sse_clients_failed"), 0);
}

TEST(FanoutScenario, SetupFailuresAreErrorsWithNothingMeasured) {
    fake_target refused;
    refused.refuse_subscribe = true;
    auto r = run_fanout(refused, small(), nullptr);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), "subscribe refused");
    auto gone = small();
    gone.gateway_url = "http://127.0.0.1:1";  // nothing listens on port 1
    fake_target t;
    r = run_fanout(t, gone, nullptr);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("connect 127.0.0.1:1"), std::string::npos) << r.error();
}

TEST(FanoutScenario, ValidateRejectsOutOfRangeOptions) {
    EXPECT_TRUE(validate(small()).has_value());
    auto bad = [](auto change) {
        auto o = small();
        change(o);
        return !validate(o).has_value();
    };
    EXPECT_TRUE(bad([](auto& o) { o.rate = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.load.duration_ms = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.load.message_bytes = json_stamp_bytes_min - 1; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.subscribers = fanout_subscribers_max + 1; }));
    EXPECT_TRUE(bad([](auto& o) { o.connections = 0; }));
    EXPECT_TRUE(bad([](auto& o) { o.connections = fanout_connections_max + 1; }));
    EXPECT_TRUE(bad([](auto& o) { o.gateway_url = "https://example.com"; }));
    EXPECT_TRUE(bad([](auto& o) {  // 4000 subscribers x 10^5 msgs/s x 10 s: too many bits
        o.subscribers = 4000;
        o.rate = 100'000;
        o.load.duration_ms = 10'000;
    }));
}

}  // namespace
}  // namespace nagare::bench
