// The `nats` target against a real nats-server -js (started by nats_process):
// publishes with msg_ids resolve once each, repeated msg_ids are JetStream
// duplicates, and a durable pull consumer receives every message once and
// acks it (the consumer's info shows nothing pending afterwards).
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include "bench/nats_process.h"
#include "bench/nats_target.h"

namespace nagare::bench {
namespace {

using namespace std::chrono_literals;

struct counting_sink final : publish_sink {
    void on_published(std::uint64_t token, publish_outcome outcome,
                      std::string_view error_text) noexcept override {
        std::lock_guard lock(mutex);
        tokens.push_back(token);
        if (outcome == publish_outcome::stored) ++stored;
        if (outcome == publish_outcome::duplicate) ++duplicates;
        if (outcome == publish_outcome::failed) failures.emplace_back(error_text);
    }
    std::mutex mutex;
    std::vector<std::uint64_t> tokens;
    int stored = 0;
    int duplicates = 0;
    std::vector<std::string> failures;
};

struct collecting_sink final : delivery_sink {
    void on_delivered(const delivery& message) noexcept override {
        std::lock_guard lock(mutex);
        ids.insert(std::string(message.msg_id));
        ++deliveries;
        if (message.delivery_count != 1) ++redeliveries;
    }
    void on_subscription_error(std::string_view error_text) noexcept override {
        std::lock_guard lock(mutex);
        errors.emplace_back(error_text);
    }
    std::mutex mutex;
    std::set<std::string> ids;
    int deliveries = 0;
    int redeliveries = 0;
    std::vector<std::string> errors;
};

std::vector<std::byte> payload_of(std::size_t n) { return std::vector<std::byte>(n, std::byte{'x'}); }

TEST(NatsTarget, PublishDedupAndDurablePullConsumer) {
    if (!find_nats_server()) GTEST_SKIP() << "no nats-server installed";
    auto server = nats_process::start({});
    ASSERT_TRUE(server) << server.error();
    auto target = make_nats_target({(*server)->url()});
    ASSERT_EQ(target->name(), "nats");
    auto stream = target->prepare_stream(durability::interval);
    ASSERT_TRUE(stream) << stream.error();
    EXPECT_EQ(stream->stream, "bench_interval");
    // A second prepare finds the stream.
    ASSERT_TRUE(target->prepare_stream(durability::interval));

    constexpr int messages = 1000;
    const auto subject = stream->subject("event");
    const auto payload = payload_of(128);
    counting_sink published;
    {
        auto conn = target->connect({.inflight_messages = 64, .batch_messages = 16}, published);
        ASSERT_TRUE(conn) << conn.error();
        for (int k = 0; k < messages; ++k) {
            const auto id = "m-" + std::to_string(k);
            auto ok = (*conn)->publish({"p", subject, id, payload}, static_cast<std::uint64_t>(k));
            ASSERT_TRUE(ok) << ok.error();
        }
        ASSERT_TRUE((*conn)->flush(10s));
        for (int k = 0; k < 10; ++k) {
            const auto id = "m-" + std::to_string(k);
            ASSERT_TRUE((*conn)->publish({"p", subject, id, payload},
                                         static_cast<std::uint64_t>(messages + k)));
        }
        ASSERT_TRUE((*conn)->flush(10s));
        target_counters counters;
        (*conn)->add_counters(counters);
        (*conn)->close();
    }
    {
        std::lock_guard lock(published.mutex);
        EXPECT_TRUE(published.failures.empty()) << published.failures.front();
        EXPECT_EQ(published.stored, messages);
        EXPECT_EQ(published.duplicates, 10);
        std::set<std::uint64_t> unique(published.tokens.begin(), published.tokens.end());
        EXPECT_EQ(published.tokens.size(), static_cast<std::size_t>(messages + 10));
        EXPECT_EQ(unique.size(), published.tokens.size());  // each resolved exactly once
    }

    collecting_sink received;
    subscribe_request request;
    request.stream = stream->stream;
    request.subject = subject;
    request.consumer = "bench-test";
    request.inflight_messages = 256;
    auto sub = target->subscribe(request, received);
    ASSERT_TRUE(sub) << sub.error();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
        {
            std::lock_guard lock(received.mutex);
            if (received.deliveries >= messages) break;
        }
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_TRUE((*sub)->drain(5s));
    {
        std::lock_guard lock(received.mutex);
        EXPECT_TRUE(received.errors.empty()) << received.errors.front();
        EXPECT_EQ(received.deliveries, messages);
        EXPECT_EQ(received.ids.size(), static_cast<std::size_t>(messages));
        EXPECT_EQ(received.redeliveries, 0);
        EXPECT_TRUE(received.ids.contains("m-0") && received.ids.contains("m-999"));
    }
    (*sub)->close();

    // The durable consumer stays after close: nothing pending, all acked.
    natsConnection* nc = nullptr;
    ASSERT_EQ(natsConnection_ConnectTo(&nc, (*server)->url().c_str()), NATS_OK);
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    jsConsumerInfo* ci = nullptr;
    ASSERT_EQ(js_GetConsumerInfo(&ci, js, "bench_interval", "bench-test", nullptr, nullptr),
              NATS_OK);
    EXPECT_EQ(ci->NumPending, 0u);
    EXPECT_EQ(ci->NumAckPending, 0);
    EXPECT_EQ(ci->AckFloor.Stream, static_cast<std::uint64_t>(messages));
    jsConsumerInfo_Destroy(ci);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);

    ASSERT_TRUE(target->remove_consumer("bench_interval", "bench-test"));
    auto stopped = (*server)->stop();
    ASSERT_TRUE(stopped) << stopped.error();
}

TEST(NatsTarget, EphemeralDeliverNewSeesOnlyLaterMessages) {
    if (!find_nats_server()) GTEST_SKIP() << "no nats-server installed";
    auto server = nats_process::start({});
    ASSERT_TRUE(server) << server.error();
    auto target = make_nats_target({(*server)->url()});
    auto stream = target->prepare_stream(durability::none);
    ASSERT_TRUE(stream) << stream.error();
    const auto subject = stream->subject("e2e");
    const auto payload = payload_of(32);
    counting_sink published;
    auto conn = target->connect({}, published);
    ASSERT_TRUE(conn) << conn.error();
    ASSERT_TRUE((*conn)->publish({"p", subject, "before", payload}, 0));
    ASSERT_TRUE((*conn)->flush(5s));

    collecting_sink received;
    subscribe_request request;
    request.stream = stream->stream;
    request.subject = subject;
    request.start = start_position::new_only;
    request.ack = ack_mode::none;
    auto sub = target->subscribe(request, received);
    ASSERT_TRUE(sub) << sub.error();
    for (int k = 0; k < 20; ++k) {
        ASSERT_TRUE((*conn)->publish({"p", subject, "after-" + std::to_string(k), payload},
                                     static_cast<std::uint64_t>(k + 1)));
    }
    ASSERT_TRUE((*conn)->flush(5s));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
        {
            std::lock_guard lock(received.mutex);
            if (received.deliveries >= 20) break;
        }
        std::this_thread::sleep_for(5ms);
    }
    (*sub)->close();
    (*conn)->close();
    std::lock_guard lock(received.mutex);
    EXPECT_EQ(received.deliveries, 20);
    EXPECT_FALSE(received.ids.contains("before"));
    EXPECT_TRUE(received.errors.empty()) << received.errors.front();
}

}  // namespace
}  // namespace nagare::bench
