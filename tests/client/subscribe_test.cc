// Client::subscribe against the in-process fake node (fake_server.h): the
// Subscribe frame, delivery to the handler, ack batching, the msg_id LRU,
// resubscribe after a reconnect, unsubscribe and errors.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fake_server.h"
#include "nagare/client.h"
#include "test_util.h"

namespace nagare::client::testing {
namespace {

namespace fb = protocol::fb;

// A delivered message, copied out of the handler (its views die with the call).
struct seen_message {
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::string project, subject, msg_id, payload;
    std::uint64_t timestamp_ns = 0;
    std::uint32_t delivery_count = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    ack_handle handle;
    bool on_io_thread_guess = false;  // not the test's thread
};

// Collects what a handler sees; optionally acks each message from the handler.
class collector {
public:
    bool ack_in_handler = true;  // set before subscribing

    message_handler handler() {
        return [this](const Message& m) {
            seen_message s;
            s.partition = m.partition().value;
            s.offset = m.offset().value;
            s.project = m.project();
            s.subject = m.subject();
            s.msg_id = m.msg_id();
            s.timestamp_ns = m.timestamp_ns();
            s.delivery_count = m.delivery_count();
            const auto bytes = m.payload();
            s.payload.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
            for (const auto& h : m.headers()) s.headers.emplace_back(h.key, h.value);
            s.handle = m.handle();
            s.on_io_thread_guess = std::this_thread::get_id() != _test_thread;
            if (ack_in_handler) {
                EXPECT_TRUE(m.ack().has_value());
            }
            std::lock_guard lock(_mutex);
            _seen.push_back(std::move(s));
        };
    }
    [[nodiscard]] std::size_t count() const {
        std::lock_guard lock(_mutex);
        return _seen.size();
    }
    [[nodiscard]] std::vector<seen_message> seen() const {
        std::lock_guard lock(_mutex);
        return _seen;
    }
    bool wait_for(std::size_t n) {
        return wait_until([&] { return count() >= n; });
    }

private:
    const std::thread::id _test_thread = std::this_thread::get_id();
    mutable std::mutex _mutex;
    std::vector<seen_message> _seen;
};

std::vector<fake_delivery> numbered(std::uint32_t partition, std::uint64_t first, std::size_t count,
                                    const std::string& prefix = "m") {
    std::vector<fake_delivery> out;
    for (std::size_t i = 0; i < count; ++i) {
        fake_delivery d;
        d.partition = partition;
        d.offset = first + i;
        d.msg_id = prefix + "-" + std::to_string(partition) + "-" + std::to_string(first + i);
        d.payload = "payload-" + std::to_string(first + i);
        out.push_back(std::move(d));
    }
    return out;
}

// Every position the fake received in Ack frames of `kind`.
std::multiset<std::pair<std::uint32_t, std::uint64_t>> acked_positions(
    const fake_server& server, fb::AckKind kind = fb::AckKind::ACK) {
    std::multiset<std::pair<std::uint32_t, std::uint64_t>> out;
    for (const auto& a : server.acks()) {
        if (a.kind == kind) out.insert(a.positions.begin(), a.positions.end());
    }
    return out;
}

std::size_t acked_count(const fake_server& server, fb::AckKind kind = fb::AckKind::ACK) {
    return acked_positions(server, kind).size();
}

// A fake node, a client connected to it, and `got` to collect deliveries.
class subscription_fixture : public ::testing::Test {
protected:
    void start(fake_options fo = {}) {
        server.emplace(std::move(fo));
        client = connect_or_fail(*server);
        ASSERT_TRUE(client);
    }
    // Subscribes to `events`; the handler is got's unless given.
    std::optional<Subscription> subscribe(subscription_filter filter = {},
                                          subscribe_options so = {}, message_handler handler = {}) {
        auto made = client->subscribe("events", std::move(filter), std::move(so),
                                      handler ? std::move(handler) : got.handler());
        EXPECT_TRUE(made.has_value()) << (made ? std::string() : made.error().message);
        if (!made) return std::nullopt;
        return std::move(*made);
    }

    std::optional<fake_server> server;
    collector got;
    std::unique_ptr<Client> client;  // declared last: its I/O thread stops first
};

using ClientSubscribe = subscription_fixture;
using ClientAcks = subscription_fixture;
using ClientDedup = subscription_fixture;
using ClientResubscribe = subscription_fixture;
using ClientUnsubscribe = subscription_fixture;
using ClientSubscribeErrors = subscription_fixture;

// ---------------------------------------------------------------------------
// Subscribe and deliver

TEST_F(ClientSubscribe, SendsTheFilterAndOptionsAndDeliversEveryField) {
    fake_options fo;
    fo.sub_ok_start_positions = {{0, 5}, {1, 0}};
    fo.stream_epoch = 99;
    start(fo);
    subscribe_options so;
    so.consumer = "workers";
    so.deliver = deliver_policy::from_time;
    so.start_time_ns = 1'700'000'000'000'000'000;
    so.ack_wait = 1500ms;
    so.max_deliver = 7;
    so.backoff = {100ms, 2s};
    so.max_inflight = 64;
    so.ordered = true;
    auto sub = subscribe({"proj-1", {"task.*", "order.>"}}, so);
    ASSERT_TRUE(sub);
    EXPECT_NE(sub->id(), 0u);
    EXPECT_EQ(sub->start_positions(),
              (std::vector<std::pair<partition_id, nagare::offset>>{
                  {partition_id{0}, nagare::offset{5}}, {partition_id{1}, nagare::offset{0}}}));
    EXPECT_EQ(sub->stats().stream_epoch, 99u);
    EXPECT_TRUE(sub->stats().active);

    const auto subscribes = server->subscribes();
    ASSERT_EQ(subscribes.size(), 1u);
    const auto& s = subscribes[0];
    EXPECT_EQ(s.subscription_id, sub->id());
    EXPECT_EQ(s.stream, "events");
    EXPECT_EQ(s.consumer, "workers");
    EXPECT_EQ(s.project, "proj-1");
    EXPECT_EQ(s.subjects, (std::vector<std::string>{"task.*", "order.>"}));
    EXPECT_EQ(s.deliver, fb::DeliverPolicy::FROM_TIME);
    EXPECT_EQ(s.start_time_ns, 1'700'000'000'000'000'000u);
    EXPECT_EQ(s.ack, fb::AckPolicy::EXPLICIT);
    EXPECT_EQ(s.ack_wait_ms, 1500u);
    EXPECT_EQ(s.max_deliver, 7u);
    EXPECT_EQ(s.backoff_ms, (std::vector<std::uint32_t>{100, 2000}));
    EXPECT_EQ(s.max_inflight, 64u);
    EXPECT_TRUE(s.ordered);
    EXPECT_TRUE(s.start_positions.empty());

    fake_delivery d;
    d.partition = 1;
    d.offset = 42;
    d.project = "proj-1";
    d.subject = "task.updated";
    d.msg_id = "msg-42";
    d.delivery_count = 3;
    d.timestamp_ns = 123456789;
    d.payload = std::string("bin\0ary", 7);
    d.headers = {{"trace_id", "t-1"}, {"source", "api"}};
    ASSERT_TRUE(server->deliver(sub->id(), {d}));
    ASSERT_TRUE(got.wait_for(1));
    const auto m = got.seen()[0];
    EXPECT_EQ(m.partition, 1u);
    EXPECT_EQ(m.offset, 42u);
    EXPECT_EQ(m.project, "proj-1");
    EXPECT_EQ(m.subject, "task.updated");
    EXPECT_EQ(m.msg_id, "msg-42");
    EXPECT_EQ(m.delivery_count, 3u);
    EXPECT_EQ(m.timestamp_ns, 123456789u);
    EXPECT_EQ(m.payload, std::string("bin\0ary", 7));
    EXPECT_EQ(m.headers, d.headers);
    EXPECT_TRUE(m.on_io_thread_guess) << "the handler runs on the I/O thread";
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 1; }));
    EXPECT_EQ(acked_positions(*server),
              (std::multiset<std::pair<std::uint32_t, std::uint64_t>>{{1, 42}}));
    EXPECT_EQ(server->acks()[0].subscription_id, sub->id());
    const auto stats = sub->stats();
    EXPECT_EQ(stats.delivered, 1u);
    EXPECT_EQ(stats.redelivered, 1u);
    EXPECT_EQ(stats.acks_sent, 1u);
}

TEST_F(ClientSubscribe, DefaultsAreAnEphemeralAllExplicitSubscribe) {
    start();
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    const auto s = server->subscribes().at(0);
    EXPECT_EQ(s.consumer, "");
    EXPECT_EQ(s.project, "");
    EXPECT_TRUE(s.subjects.empty());
    EXPECT_EQ(s.deliver, fb::DeliverPolicy::ALL);
    EXPECT_EQ(s.ack, fb::AckPolicy::EXPLICIT);
    EXPECT_EQ(s.ack_wait_ms, 0u);
    EXPECT_EQ(s.max_deliver, 0u);
    EXPECT_FALSE(s.ordered);
    EXPECT_NE(s.subscription_id & (std::uint64_t{1} << 63), 0u)
        << "subscription ids are told from publish request ids by their top bit";
    // Ids are unique per client.
    auto second = subscribe();
    ASSERT_TRUE(second.has_value());
    EXPECT_NE(second->id(), sub->id());
}

TEST_F(ClientSubscribe, DeliversInFrameOrderAcrossFramesAndPartitions) {
    start();
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    for (std::uint64_t frame = 0; frame < 20; ++frame) {
        ASSERT_TRUE(server->deliver(
            sub->id(), numbered(static_cast<std::uint32_t>(frame % 2), frame * 50, 50)));
    }
    ASSERT_TRUE(got.wait_for(1000));
    const auto seen = got.seen();
    std::map<std::uint32_t, std::uint64_t> last;
    for (std::size_t i = 0; i < seen.size(); ++i) {
        EXPECT_EQ(seen[i].offset, i) << "in the order the frames carried them";
        auto [it, fresh] = last.emplace(seen[i].partition, seen[i].offset);
        if (!fresh) {
            EXPECT_LT(it->second, seen[i].offset);
            it->second = seen[i].offset;
        }
    }
    EXPECT_EQ(sub->stats().delivered, 1000u);
}

// ---------------------------------------------------------------------------
// Acks

TEST_F(ClientAcks, AcksFromTheHandlerAreBatchedIntoFewFramesCarryingEveryPosition) {
    start();
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    constexpr std::size_t frames = 10;
    constexpr std::size_t per_frame = 200;
    std::multiset<std::pair<std::uint32_t, std::uint64_t>> expected;
    for (std::size_t f = 0; f < frames; ++f) {
        auto batch = numbered(static_cast<std::uint32_t>(f % 3), f * per_frame, per_frame);
        for (const auto& d : batch) expected.emplace(d.partition, d.offset);
        ASSERT_TRUE(server->deliver(sub->id(), batch));
    }
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == frames * per_frame; }));
    EXPECT_EQ(acked_positions(*server), expected) << "every position acked exactly once";
    const auto ack_frames = server->acks().size();
    EXPECT_LE(ack_frames, frames) << "at most one Ack frame per Deliver frame read";
    for (const auto& a : server->acks()) EXPECT_EQ(a.subscription_id, sub->id());
    const auto stats = sub->stats();
    EXPECT_EQ(stats.acks_queued, frames * per_frame);
    EXPECT_EQ(stats.acks_sent, frames * per_frame);
    EXPECT_EQ(stats.ack_frames_sent, ack_frames);
}

TEST_F(ClientAcks, VerbsFromOtherThreadsLaterGroupByKindAndDelay) {
    start();
    got.ack_in_handler = false;  // the handler keeps the messages, acks come later
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 400)));
    ASSERT_TRUE(got.wait_for(400));
    const auto seen = got.seen();
    std::vector<std::thread> workers;
    for (int t = 0; t < 4; ++t) {
        workers.emplace_back([&, t] {
            for (std::size_t i = static_cast<std::size_t>(t); i < seen.size(); i += 4) {
                const auto& h = seen[i].handle;
                switch (i % 5) {
                    case 0:
                        EXPECT_TRUE(h.ack());
                        break;
                    case 1:
                        EXPECT_TRUE(h.nak(250ms));
                        break;
                    case 2:
                        EXPECT_TRUE(h.nak());
                        break;
                    case 3:
                        EXPECT_TRUE(h.in_progress());
                        break;
                    default:
                        EXPECT_TRUE(h.term());
                        break;
                }
            }
        });
    }
    for (auto& w : workers) w.join();
    ASSERT_TRUE(wait_until([&] {
        std::size_t n = 0;
        for (const auto& a : server->acks()) n += a.positions.size();
        return n == 400;
    }));
    std::map<std::pair<fb::AckKind, std::uint32_t>, std::set<std::uint64_t>> by_kind;
    for (const auto& a : server->acks()) {
        EXPECT_LE(a.positions.size(), 4096u);
        auto& offsets = by_kind[{a.kind, a.nak_delay_ms}];
        for (const auto& position : a.positions) {
            EXPECT_TRUE(offsets.insert(position.second).second);
        }
    }
    ASSERT_EQ(by_kind.size(), 5u) << "ack, nak 250 ms, nak 0, in_progress, term";
    for (const auto& [kind, offsets] : by_kind) {
        EXPECT_EQ(offsets.size(), 80u);
        const auto remainder = *offsets.begin() % 5;
        for (const auto o : offsets) EXPECT_EQ(o % 5, remainder);
    }
    EXPECT_EQ(by_kind.at({fb::AckKind::NAK, 250}).count(1), 1u);
    EXPECT_EQ(by_kind.at({fb::AckKind::NAK, 0}).count(2), 1u);
    EXPECT_EQ(by_kind.at({fb::AckKind::IN_PROGRESS, 0}).count(3), 1u);
    EXPECT_EQ(by_kind.at({fb::AckKind::TERM, 0}).count(4), 1u);
    EXPECT_LT(server->acks().size(), 400u / 4) << "verbs were batched";
}

TEST_F(ClientAcks, AckPolicyNoneRefusesVerbsAndSendsNone) {
    start();
    std::atomic<int> refused{0};
    subscribe_options so;
    so.ack = ack_policy::none;
    auto sub = client->subscribe("events", {}, so, [&](const Message& m) {
        const auto r = m.ack();
        if (!r && r.error().code == errc::bad_request) ++refused;
    });
    ASSERT_TRUE(sub);
    EXPECT_EQ(server->subscribes().at(0).ack, fb::AckPolicy::NONE);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 5)));
    ASSERT_TRUE(wait_until([&] { return refused.load() == 5; }));
    // Redeliveries are not dropped either: with no acks there is nothing to remember.
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 5)));
    ASSERT_TRUE(wait_until([&] { return refused.load() == 10; }));
    EXPECT_TRUE(server->acks().empty());
}

TEST_F(ClientAcks, ServerErrorsAboutAcksReachOnErrorAndTheCounters) {
    fake_options fo;
    fo.ack_error = errc::unknown_position;
    start(fo);
    std::mutex m;
    std::vector<error> errors;
    subscribe_options so;
    so.on_error = [&](const error& e) {
        std::lock_guard lock(m);
        errors.push_back(e);
    };
    auto sub = subscribe({}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 3)));
    ASSERT_TRUE(wait_until([&] { return sub->stats().server_errors >= 1; }));
    {
        std::lock_guard lock(m);
        ASSERT_FALSE(errors.empty());
        EXPECT_EQ(errors[0].code, errc::unknown_position);
        EXPECT_NE(errors[0].message.find("ack refused"), std::string::npos);
    }
    EXPECT_TRUE(sub->stats().active) << "an ack error does not end the subscription";
    EXPECT_EQ(client->stats().reconnects, 0u) << "nor the connection";
}

// ---------------------------------------------------------------------------
// The msg_id LRU

TEST_F(ClientDedup, ARedeliveryOfAnAckedMessageIsDroppedAndAckedAgain) {
    start();
    std::atomic<int> calls{0};
    subscribe_options so;
    auto sub = client->subscribe("events", {}, so, [&](const Message& m) {
        ++calls;
        if (m.msg_id() == "keep") {
            m.ack();
        } else {
            m.nak();  // not acked: its redelivery must reach the handler again
        }
    });
    ASSERT_TRUE(sub);
    fake_delivery keep;
    keep.partition = 2;
    keep.offset = 10;
    keep.msg_id = "keep";
    fake_delivery retry = keep;
    retry.offset = 11;
    retry.msg_id = "retry";
    ASSERT_TRUE(server->deliver(sub->id(), {keep, retry}));
    ASSERT_TRUE(wait_until([&] { return calls.load() == 2 && acked_count(*server) == 1; }));

    keep.delivery_count = 2;
    retry.delivery_count = 2;
    ASSERT_TRUE(server->deliver(sub->id(), {keep, retry}));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 2; }));
    ASSERT_TRUE(wait_until([&] { return calls.load() == 3; }));
    EXPECT_EQ(acked_positions(*server),
              (std::multiset<std::pair<std::uint32_t, std::uint64_t>>{{2, 10}, {2, 10}}))
        << "the duplicate was acked again";
    EXPECT_EQ(acked_count(*server, fb::AckKind::NAK), 2u);
    const auto stats = sub->stats();
    EXPECT_EQ(stats.duplicates_dropped, 1u);
    EXPECT_EQ(stats.delivered, 3u);
    EXPECT_EQ(stats.redelivered, 1u);
}

TEST_F(ClientDedup, ATermedMessageIsTermedAgainAndAcksFromLaterThreadsCountToo) {
    start();
    got.ack_in_handler = false;
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 2)));
    ASSERT_TRUE(got.wait_for(2));
    const auto seen = got.seen();
    std::thread([&] {
        EXPECT_TRUE(seen[0].handle.term());
        EXPECT_TRUE(seen[1].handle.ack());
    }).join();
    ASSERT_TRUE(wait_until([&] { return server->acks().size() == 2; }));
    auto again = numbered(0, 0, 2);
    for (auto& d : again) d.delivery_count = 2;
    ASSERT_TRUE(server->deliver(sub->id(), again));
    ASSERT_TRUE(wait_until([&] { return sub->stats().duplicates_dropped == 2; }));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server, fb::AckKind::TERM) == 2; }));
    EXPECT_EQ(acked_count(*server, fb::AckKind::ACK), 2u);
    EXPECT_EQ(got.count(), 2u) << "neither reached the handler again";
}

TEST_F(ClientDedup, TheLruForgetsAfterItsWindow) {
    start();
    subscribe_options so;
    so.dedup_window = 50ms;
    auto sub = subscribe({}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_TRUE(got.wait_for(1));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 1; }));
    std::this_thread::sleep_for(80ms);  // the window passing is what is tested
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_TRUE(got.wait_for(2)) << "after the window the id is forgotten";
    EXPECT_EQ(sub->stats().duplicates_dropped, 0u);
}

// ---------------------------------------------------------------------------
// Reconnect

TEST_F(ClientResubscribe, EphemeralResumesFromTheLastDeliveredOffsetPerPartition) {
    fake_options fo;
    fo.sub_ok_start_positions = {{0, 10}, {1, 20}, {2, 0}};
    start(fo);
    subscribe_options so;
    so.deliver = deliver_policy::new_only;
    auto sub = subscribe({"proj-1", {"task.>"}}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 10, 3)));  // 10, 11, 12
    ASSERT_TRUE(server->deliver(sub->id(), numbered(2, 0, 5)));   // 0..4
    auto redelivered = numbered(2, 1, 1);  // lower: does not lower the resume point
    redelivered[0].msg_id = "other";
    redelivered[0].delivery_count = 2;
    ASSERT_TRUE(server->deliver(sub->id(), redelivered));
    ASSERT_TRUE(got.wait_for(9));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 9; }));

    server->drop_connections();
    ASSERT_TRUE(wait_until([&] { return server->subscribes().size() == 2; }));
    ASSERT_TRUE(wait_until([&] { return sub->stats().resubscribes == 1; }));
    const auto again = server->subscribes()[1];
    EXPECT_EQ(again.subscription_id, sub->id());
    EXPECT_EQ(again.deliver, fb::DeliverPolicy::FROM_OFFSET);
    EXPECT_EQ(again.project, "proj-1");
    EXPECT_EQ(again.subjects, std::vector<std::string>{"task.>"});
    std::map<std::uint32_t, std::uint64_t> starts;
    for (const auto& p : again.start_positions) starts[p.partition()] = p.offset();
    EXPECT_EQ(starts, (std::map<std::uint32_t, std::uint64_t>{{0, 13}, {1, 20}, {2, 5}}));
    // It keeps delivering on the new connection.
    ASSERT_TRUE(wait_until([&] { return server->live_subscriptions() == 1; }));
    ASSERT_TRUE(server->deliver(sub->id(), numbered(1, 20, 1)));
    ASSERT_TRUE(got.wait_for(10));
    EXPECT_TRUE(sub->stats().active);
}

TEST_F(ClientResubscribe, DurableSendsTheSameSubscribeAndDropsRedeliveriesOfAckedIds) {
    start();
    subscribe_options so;
    so.consumer = "projector";
    so.deliver = deliver_policy::all;
    so.max_inflight = 10;
    auto sub = subscribe({}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 4)));
    ASSERT_TRUE(got.wait_for(4));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 4; }));

    server->drop_connections();
    ASSERT_TRUE(wait_until([&] { return server->subscribes().size() == 2; }));
    const auto subs = server->subscribes();
    EXPECT_EQ(subs[1].deliver, fb::DeliverPolicy::ALL);
    EXPECT_EQ(subs[1].consumer, "projector");
    EXPECT_TRUE(subs[1].start_positions.empty());
    EXPECT_EQ(subs[1].max_inflight, 10u);
    // The broker redelivers the last two (their acks were "lost"): dropped, acked again.
    ASSERT_TRUE(wait_until([&] { return server->live_subscriptions() == 1; }));
    auto again = numbered(0, 2, 3);  // 2, 3 acked before; 4 is new
    ASSERT_TRUE(server->deliver(sub->id(), again));
    ASSERT_TRUE(got.wait_for(5));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 7; }));
    EXPECT_EQ(sub->stats().duplicates_dropped, 2u);
    EXPECT_EQ(got.seen().back().offset, 4u);
}

TEST_F(ClientResubscribe, AcksQueuedWhileDisconnectedAreDroppedButRemembered) {
    start();
    got.ack_in_handler = false;
    subscribe_options so;
    so.consumer = "late-acker";
    auto sub = subscribe({}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_TRUE(got.wait_for(1));
    server->refuse_next_hellos(1'000'000);
    server->drop_connections();
    ASSERT_TRUE(got.seen()[0].handle.ack());
    ASSERT_TRUE(wait_until([&] { return sub->stats().acks_dropped == 1; }));
    server->refuse_next_hellos(0);
    ASSERT_TRUE(wait_until([&] { return server->live_subscriptions() == 1; }));
    auto again = numbered(0, 0, 1);
    again[0].delivery_count = 2;
    ASSERT_TRUE(server->deliver(sub->id(), again));
    ASSERT_TRUE(wait_until([&] { return acked_count(*server) == 1; }))
        << "the redelivery was acked again instead";
    EXPECT_EQ(got.count(), 1u);
    EXPECT_EQ(sub->stats().duplicates_dropped, 1u);
}

TEST_F(ClientResubscribe, ARefusedResubscribeEndsTheSubscriptionAndCallsOnError) {
    start();
    std::promise<error> ended;
    auto ended_future = ended.get_future();
    subscribe_options so;
    so.on_error = [&](const error& e) { ended.set_value(e); };
    got.ack_in_handler = false;
    auto sub = subscribe({}, so);
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_TRUE(got.wait_for(1));
    server->refuse_subscribes(errc::no_such_stream);  // the stream was deleted meanwhile
    server->drop_connections();
    ASSERT_EQ(ended_future.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(ended_future.get().code, errc::no_such_stream);
    EXPECT_FALSE(sub->stats().active);
    EXPECT_EQ(got.seen()[0].handle.ack().error().code, errc_closed);
    EXPECT_EQ(server->subscribes().size(), 2u) << "no retry loop against a refusal";
}

// ---------------------------------------------------------------------------
// Unsubscribe

TEST_F(ClientUnsubscribe, SendsQueuedAcksThenUnsubscribeAndStopsTheHandler) {
    start();
    got.ack_in_handler = false;
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    const auto id = sub->id();
    ASSERT_TRUE(server->deliver(id, numbered(0, 0, 3)));
    ASSERT_TRUE(got.wait_for(3));
    for (const auto& m : got.seen()) ASSERT_TRUE(m.handle.ack());
    sub->unsubscribe();
    EXPECT_FALSE(sub->stats().active);
    ASSERT_TRUE(wait_until([&] { return server->unsubscribes().size() == 1; }));
    EXPECT_EQ(server->unsubscribes()[0], id);
    const auto log = server->frame_log();
    const auto unsub = std::ranges::find(log, fb::Body::Unsubscribe);
    const auto ack = std::ranges::find(log, fb::Body::Ack);
    ASSERT_NE(ack, log.end());
    EXPECT_LT(ack, unsub) << "queued acks go out before Unsubscribe";
    EXPECT_EQ(acked_count(*server), 3u);
    // Nothing more reaches the handler; verbs fail with CLOSED.
    EXPECT_FALSE(server->deliver(id, numbered(0, 3, 1))) << "the fake dropped the subscription";
    const auto late = got.seen()[0].handle.ack();
    ASSERT_FALSE(late.has_value());
    EXPECT_EQ(late.error().code, errc_closed);
    sub->unsubscribe();  // idempotent
    EXPECT_EQ(server->unsubscribes().size(), 1u);
}

TEST_F(ClientUnsubscribe, FromTheHandlerStopsTheRestOfTheFrame) {
    start();
    std::atomic<int> calls{0};
    Subscription* self = nullptr;
    std::mutex m;
    auto sub = client->subscribe("events", {}, {}, [&](const Message& msg) {
        msg.ack();
        if (++calls == 3) {
            std::lock_guard lock(m);
            self->unsubscribe();
        }
    });
    ASSERT_TRUE(sub);
    {
        std::lock_guard lock(m);
        self = &*sub;
    }
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 10)));
    ASSERT_TRUE(wait_until([&] { return server->unsubscribes().size() == 1; }));
    EXPECT_EQ(calls.load(), 3);
    EXPECT_EQ(acked_count(*server), 3u);
}

TEST_F(ClientUnsubscribe, DestroyingTheSubscriptionUnsubscribesAndWaitsForTheHandler) {
    start();
    std::atomic<bool> in_handler{false};
    std::atomic<bool> release{false};
    std::atomic<bool> returned{false};
    std::optional<Subscription> sub;
    {
        auto made = client->subscribe("events", {}, {}, [&](const Message&) {
            in_handler = true;
            while (!release) std::this_thread::yield();
            in_handler = false;
        });
        ASSERT_TRUE(made.has_value());
        sub.emplace(std::move(*made));
    }
    const auto id = sub->id();
    ASSERT_TRUE(server->deliver(id, numbered(0, 0, 2)));
    ASSERT_TRUE(wait_until([&] { return in_handler.load(); }));
    std::thread destroyer([&] {
        sub.reset();
        returned = true;
    });
    std::this_thread::sleep_for(50ms);  // gives a wrong destructor the time to return early
    EXPECT_FALSE(returned.load()) << "returned while the handler was running";
    release = true;
    destroyer.join();
    EXPECT_FALSE(in_handler.load());
    ASSERT_TRUE(wait_until([&] { return server->unsubscribes().size() == 1; }));
    EXPECT_EQ(server->unsubscribes()[0], id);
}

TEST_F(ClientUnsubscribe, CloseEndsSubscriptionsAndLaterCallsAreHarmless) {
    start();
    got.ack_in_handler = false;
    auto sub = subscribe();
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_TRUE(got.wait_for(1));
    client->close();
    EXPECT_FALSE(sub->stats().active);
    EXPECT_EQ(got.seen()[0].handle.ack().error().code, errc_closed);
    auto refused = client->subscribe("events", {}, {}, got.handler());
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc_closed);
    client.reset();      // the Client goes first ...
    sub->unsubscribe();  // ... and the handle is still safe to use
    EXPECT_EQ(got.seen()[0].handle.ack().error().code, errc_closed);
}

// ---------------------------------------------------------------------------
// Errors

TEST_F(ClientSubscribeErrors, BadArgumentsFailBeforeAnythingIsSent) {
    start();
    const auto code_of = [&](std::string_view stream, subscription_filter f, subscribe_options o,
                             message_handler h) {
        auto r = client->subscribe(stream, std::move(f), std::move(o), std::move(h));
        return r ? errc::none : r.error().code;
    };
    EXPECT_EQ(code_of("", {}, {}, got.handler()), errc::bad_request);
    EXPECT_EQ(code_of("bad stream", {}, {}, got.handler()), errc::bad_request);
    EXPECT_EQ(code_of("events", {"bad project", {}}, {}, got.handler()), errc::bad_project);
    EXPECT_EQ(code_of("events", {"", {"task..x"}}, {}, got.handler()), errc::bad_pattern);
    EXPECT_EQ(code_of("events", {"", {"task.>.x"}}, {}, got.handler()), errc::bad_pattern);
    EXPECT_EQ(code_of("events", {"", std::vector<std::string>(33, "a.b")}, {}, got.handler()),
              errc::bad_pattern);
    subscribe_options o;
    o.consumer = "no spaces";
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    o = {};
    o.consumer = "$dlq";
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    o = {};
    o.deliver = deliver_policy::last_per_subject;
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    o = {};
    o.ack_wait = -1ms;
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    o = {};
    o.subscribe_timeout = 0ms;
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    o = {};
    o.dedup_ids_max = 0;
    EXPECT_EQ(code_of("events", {}, o, got.handler()), errc::bad_request);
    EXPECT_EQ(code_of("events", {}, {}, nullptr), errc::bad_request);
    EXPECT_TRUE(server->subscribes().empty()) << "an invalid subscribe reached the wire";
}

TEST_F(ClientSubscribeErrors, TheBrokersRefusalIsReturned) {
    fake_options fo;
    fo.refuse_subscribe = errc::no_such_stream;
    start(fo);
    auto sub = client->subscribe("nope", {}, {}, got.handler());
    ASSERT_FALSE(sub.has_value());
    EXPECT_EQ(sub.error().code, errc::no_such_stream);
    EXPECT_NE(sub.error().message.find("refused by the fake"), std::string::npos);
    EXPECT_EQ(client->stats().reconnects, 0u) << "a refusal keeps the connection";
    // The client still publishes on the same connection.
    auto f = client->publish("p", "task.updated", as_payload("x"));
    EXPECT_TRUE(get_within(f).has_value());
}

TEST_F(ClientSubscribeErrors, NoAnswerWithinTheTimeoutIsUnavailableAndWithdrawn) {
    fake_options fo;
    fo.silent_subscribe = true;
    start(fo);
    subscribe_options so;
    so.subscribe_timeout = 100ms;
    const auto began = std::chrono::steady_clock::now();
    auto sub = client->subscribe("events", {}, so, got.handler());
    const auto waited = std::chrono::steady_clock::now() - began;
    ASSERT_FALSE(sub.has_value());
    EXPECT_EQ(sub.error().code, errc_unavailable);
    EXPECT_GE(waited, 100ms);
    EXPECT_LT(waited, 5s);
    ASSERT_TRUE(wait_until([&] { return server->unsubscribes().size() == 1; }))
        << "a late SubOk must not leave a subscription behind";
    EXPECT_EQ(server->unsubscribes()[0], server->subscribes()[0].subscription_id);
}

TEST_F(ClientSubscribeErrors, SubscribeFromAHandlerIsRefused) {
    start();
    std::promise<errc> nested;
    auto nested_future = nested.get_future();
    auto sub = client->subscribe("events", {}, {}, [&](const Message& m) {
        m.ack();
        auto inner = client->subscribe("events", {}, {}, [](const Message&) {});
        nested.set_value(inner ? errc::none : inner.error().code);
    });
    ASSERT_TRUE(sub);
    ASSERT_TRUE(server->deliver(sub->id(), numbered(0, 0, 1)));
    ASSERT_EQ(nested_future.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(nested_future.get(), errc::bad_request);
}

}  // namespace
}  // namespace nagare::client::testing
