// The C API (nagare/nagare_c.h) against the fake node: from C (c_api_round_trip.c)
// and from C++ through the extern "C" header.
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.h"
#include "nagare/nagare_c.h"
#include "test_util.h"

extern "C" {
int c_api_round_trip(const char* url);
struct c_sub_run;
c_sub_run* c_sub_start(const char* url, int* rc);
int c_sub_received(c_sub_run* run);
int c_sub_bad_fields(c_sub_run* run);
int c_sub_verb_failures(c_sub_run* run);
int c_sub_ack_after_stop(c_sub_run* run);
void c_sub_free(c_sub_run* run);
}

namespace nagare::client::testing {
namespace {

TEST(CApi, RoundTripFromC) {
    fake_server server;
    EXPECT_EQ(c_api_round_trip(server.url().c_str()), 0)
        << "failed check at that line of c_api_round_trip.c";
    const auto store = server.store();
    ASSERT_EQ(store.size(), 2u);
    EXPECT_EQ(store[0].msg_id, "c-1");
    EXPECT_EQ(store[0].payload, "{\"event\":\"task.updated\"}");
    EXPECT_EQ(store[1].msg_id.size(), 26u);
    EXPECT_EQ(server.duplicates(), 1u);
}

TEST(CApi, ConnectFailuresReturnProtocolNumbers) {
    nagare_client* client = reinterpret_cast<nagare_client*>(0x1);
    EXPECT_EQ(nagare_connect("http://nope", nullptr, &client), NAGARE_BAD_REQUEST);
    EXPECT_EQ(client, nullptr);
    EXPECT_NE(std::string(nagare_last_error_message()).find("bad url"), std::string::npos);
    EXPECT_EQ(nagare_connect(nullptr, nullptr, &client), NAGARE_BAD_REQUEST);

    fake_options fo;
    fo.token = "secret";
    fake_server server(fo);
    EXPECT_EQ(nagare_connect(server.url().c_str(), "wrong", &client), NAGARE_NOT_AUTHORIZED);
    EXPECT_EQ(nagare_connect(server.url().c_str(), nullptr, &client), NAGARE_NOT_AUTHORIZED);
    ASSERT_EQ(nagare_connect(server.url().c_str(), "secret", &client), NAGARE_OK);
    EXPECT_STREQ(nagare_last_error_message(), "");
    nagare_close(client);
}

TEST(CApi, SubscribeDeliversToTheCallbackAndAcksByPosition) {
    fake_server server;
    int rc = -1;
    std::unique_ptr<c_sub_run, void (*)(c_sub_run*)> run(c_sub_start(server.url().c_str(), &rc),
                                                         c_sub_free);
    ASSERT_TRUE(run);
    ASSERT_EQ(rc, NAGARE_OK) << nagare_last_error_message();
    const auto subscribes = server.subscribes();
    ASSERT_EQ(subscribes.size(), 1u);
    EXPECT_EQ(subscribes[0].consumer, "c-worker");
    EXPECT_EQ(subscribes[0].project, "proj-c");
    EXPECT_EQ(subscribes[0].subjects, std::vector<std::string>{"task.*"});
    EXPECT_EQ(subscribes[0].ack_wait_ms, 2000u);
    std::vector<fake_delivery> batch;
    for (std::uint64_t i = 0; i < 10; ++i) {
        fake_delivery d;
        d.partition = 3;
        d.offset = i;
        d.project = "proj-c";
        d.subject = "task.updated";
        d.msg_id = "c-" + std::to_string(i);
        d.payload = "{}";
        d.headers = {{"trace_id", "abc"}};
        batch.push_back(d);
    }
    ASSERT_TRUE(server.deliver(subscribes[0].subscription_id, batch));
    ASSERT_TRUE(wait_until([&] { return c_sub_received(run.get()) == 10; }));
    EXPECT_EQ(c_sub_bad_fields(run.get()), 0);
    EXPECT_EQ(c_sub_verb_failures(run.get()), 0);
    ASSERT_TRUE(wait_until([&] {
        std::size_t n = 0;
        for (const auto& a : server.acks()) n += a.positions.size();
        return n == 10;
    }));
    std::set<std::uint64_t> acked, naked;
    for (const auto& a : server.acks()) {
        for (const auto& [partition, offset] : a.positions) {
            EXPECT_EQ(partition, 3u);
            if (a.kind == protocol::fb::AckKind::ACK) acked.insert(offset);
            if (a.kind == protocol::fb::AckKind::NAK) {
                EXPECT_EQ(a.nak_delay_ms, 100u);
                naked.insert(offset);
            }
        }
    }
    EXPECT_EQ(acked, (std::set<std::uint64_t>{0, 2, 4, 6, 8}));
    EXPECT_EQ(naked, (std::set<std::uint64_t>{1, 3, 5, 7, 9}));
    // An acked message redelivered is dropped (the by-position ack knew its msg_id).
    auto again = batch;
    again.resize(1);
    again[0].delivery_count = 2;
    ASSERT_TRUE(server.deliver(subscribes[0].subscription_id, again));
    ASSERT_TRUE(wait_until([&] {
        std::size_t n = 0;
        for (const auto& a : server.acks()) n += a.positions.size();
        return n == 11;
    }));
    EXPECT_EQ(c_sub_received(run.get()), 10);
    EXPECT_EQ(c_sub_ack_after_stop(run.get()), NAGARE_BAD_REQUEST);
    ASSERT_TRUE(wait_until([&] { return server.unsubscribes().size() == 1; }));
}

TEST(CApi, SubscribeFailuresReturnProtocolNumbers) {
    fake_options fo;
    fo.refuse_subscribe = errc::no_such_stream;
    fake_server server(fo);
    nagare_client* client = nullptr;
    ASSERT_EQ(nagare_connect(server.url().c_str(), nullptr, &client), NAGARE_OK);
    const auto noop = [](const nagare_message*, void*) {};
    nagare_subscription* sub = reinterpret_cast<nagare_subscription*>(0x1);
    EXPECT_EQ(nagare_subscribe(client, "events", nullptr, noop, nullptr, &sub),
              NAGARE_NO_SUCH_STREAM);
    EXPECT_EQ(sub, nullptr);
    EXPECT_NE(std::string(nagare_last_error_message()).find("refused"), std::string::npos);
    nagare_subscribe_options o{};
    const char* bad[] = {"task..x"};
    o.subjects = bad;
    o.subject_count = 1;
    EXPECT_EQ(nagare_subscribe(client, "events", &o, noop, nullptr, &sub), NAGARE_BAD_PATTERN);
    o.subject_count = 0;
    o.deliver = 9;
    EXPECT_EQ(nagare_subscribe(client, "events", &o, noop, nullptr, &sub), NAGARE_BAD_REQUEST);
    EXPECT_EQ(nagare_subscribe(client, "events", nullptr, nullptr, nullptr, &sub),
              NAGARE_BAD_REQUEST);
    EXPECT_EQ(nagare_ack(nullptr, 0, 0), NAGARE_BAD_REQUEST);
    nagare_unsubscribe(nullptr);
    nagare_close(client);
}

TEST(CApi, ErrorStrings) {
    EXPECT_STREQ(nagare_error_string(NAGARE_OK), "NONE");
    EXPECT_STREQ(nagare_error_string(NAGARE_BAD_SUBJECT), "BAD_SUBJECT");
    EXPECT_STREQ(nagare_error_string(NAGARE_INTERNAL), "INTERNAL");
    EXPECT_STREQ(nagare_error_string(NAGARE_UNAVAILABLE), "UNAVAILABLE");
    EXPECT_STREQ(nagare_error_string(NAGARE_CLOSED), "CLOSED");
    EXPECT_STREQ(nagare_error_string(77), "UNKNOWN");
    EXPECT_STREQ(nagare_error_string(-1), "UNKNOWN");
}

}  // namespace
}  // namespace nagare::client::testing
