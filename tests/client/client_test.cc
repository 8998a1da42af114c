// nagare::client::Client against the in-process fake node (fake_server.h).
#include "nagare/client.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_server.h"
#include "protocol/routing.h"
#include "test_util.h"

namespace nagare::client::testing {
namespace {

std::string index_payload(std::size_t i) { return std::to_string(i); }

// ---------------------------------------------------------------------------
// Round trip

TEST(ClientPublish, RoundTripResolvesFuturesAndCallbacksInOrderPerProject) {
    fake_options fo;
    fo.streams = {{"events", {}, 4}, {"audit", {"audit.>"}, 2}};
    fake_server server(fo);
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    EXPECT_EQ(client->server().server_id, "fake");

    const std::thread::id test_thread = std::this_thread::get_id();
    constexpr std::size_t projects = 3;
    constexpr std::size_t per_project = 40;
    std::mutex m;
    std::map<std::string, std::vector<std::pair<std::size_t, std::uint64_t>>>
        seen;  // project -> (i, offset)
    std::atomic<bool> callback_on_test_thread{false};
    const close_guard closing{client.get()};
    std::vector<std::pair<std::string, std::future<publish_result>>> futures;
    for (std::size_t i = 0; i < per_project; ++i) {
        for (std::size_t p = 0; p < projects; ++p) {
            const auto project = "proj-" + std::to_string(p);
            const auto payload = index_payload(i);
            if (i % 2 == 0) {
                futures.emplace_back(project,
                                     client->publish(project, "task.updated", as_payload(payload)));
                continue;
            }
            auto accepted = client->publish(project, "task.updated", as_payload(payload), {},
                                            [&, project, i](const publish_result& r) {
                                                if (std::this_thread::get_id() == test_thread)
                                                    callback_on_test_thread = true;
                                                ASSERT_TRUE(r.has_value()) << r.error().message;
                                                std::lock_guard lock(m);
                                                seen[project].emplace_back(i, r->offset.value);
                                            });
            ASSERT_TRUE(accepted.has_value());
        }
    }
    for (auto& [project, f] : futures) {
        const auto r = get_within(f);
        ASSERT_TRUE(r.has_value()) << r.error().message;
        EXPECT_EQ(r->stream, "events");
        EXPECT_FALSE(r->duplicate);
        EXPECT_EQ(r->partition.value, protocol::partition_for_project(project, 4).value);
    }
    ASSERT_TRUE(client->flush(10s));
    EXPECT_FALSE(callback_on_test_thread);
    {
        std::lock_guard lock(m);
        for (const auto& [project, list] : seen) {
            ASSERT_EQ(list.size(), per_project / 2);
            for (std::size_t k = 1; k < list.size(); ++k) {
                EXPECT_LT(list[k - 1].first, list[k].first) << "callbacks out of order";
                EXPECT_LT(list[k - 1].second, list[k].second) << "offsets out of order";
            }
        }
    }
    // The node stored each project's messages in publish order, offsets dense per partition.
    const auto store = server.store();
    ASSERT_EQ(store.size(), projects * per_project);
    std::map<std::string, std::size_t> next_index;
    std::map<std::uint32_t, std::uint64_t> next_offset;
    for (const auto& s : store) {
        EXPECT_EQ(s.offset, next_offset[s.partition]++);
        EXPECT_EQ(s.payload, index_payload(next_index[s.project]++));
        EXPECT_EQ(s.msg_id.size(), 26u) << "a generated ULID";
    }

    // A subject bound to another stream; a repeated msg_id is a duplicate.
    auto audit = client->publish("proj-0", "audit.login", as_payload("x"));
    const auto audited = get_within(audit);
    ASSERT_TRUE(audited.has_value());
    EXPECT_EQ(audited->stream, "audit");
    const header headers[] = {{"trace_id", "t-1"}, {"source", "test"}};
    auto first = client->publish("proj-1", "task.created", as_payload("a"), {"dup-1", headers});
    auto again = client->publish("proj-1", "task.created", as_payload("a"), {"dup-1", headers});
    const auto r1 = get_within(first);
    const auto r2 = get_within(again);
    ASSERT_TRUE(r1 && r2);
    EXPECT_FALSE(r1->duplicate);
    EXPECT_TRUE(r2->duplicate);
    EXPECT_EQ(r1->offset, r2->offset);
    const auto last = server.store().back();
    EXPECT_EQ(last.msg_id, "dup-1");
    ASSERT_EQ(last.headers.size(), 2u);
    EXPECT_EQ(last.headers[0], (std::pair<std::string, std::string>{"trace_id", "t-1"}));
    const auto stats = client->stats();
    EXPECT_EQ(stats.unresolved, 0u);
    EXPECT_EQ(stats.acknowledged, projects * per_project + 3);
}

// ---------------------------------------------------------------------------
// Pipelining and the window

TEST(ClientWindow, HundredThousandPipelinedNeverAboveTheWindow) {
    fake_options fo;
    fo.ack_delay = 2ms;  // the node holds acks a little, so the window fills
    fake_server server(fo);
    auto o = fast_options();
    o.max_inflight_messages = 1000;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    constexpr std::size_t total = 100'000;
    std::atomic<std::size_t> acked{0};
    std::atomic<std::size_t> failed{0};
    const close_guard closing{client.get()};
    const std::string payload(64, 'x');
    for (std::size_t i = 0; i < total; ++i) {
        const auto project = "p" + std::to_string(i % 97);
        auto accepted = client->publish(project, "task.updated", as_payload(payload), {},
                                        [&](const publish_result& r) { ++(r ? acked : failed); });
        ASSERT_TRUE(accepted.has_value()) << accepted.error().message;
    }
    ASSERT_TRUE(client->flush(60s));
    EXPECT_EQ(acked.load(), total);
    EXPECT_EQ(failed.load(), 0u);
    EXPECT_EQ(server.stored(), total);
    EXPECT_LE(server.max_unacked(), 1000u) << "more than the window was unacknowledged";
    EXPECT_GE(server.max_unacked(), 500u) << "the window was never used: no pipelining";
    EXPECT_LT(server.publish_frames(), total / 50) << "messages were not batched into frames";
    const auto stats = client->stats();
    EXPECT_EQ(stats.messages_sent, total);
    EXPECT_EQ(stats.frames_sent, server.publish_frames());
}

TEST(ClientWindow, RespectsTheServersMaxPendingPublish) {
    fake_options fo;
    fo.ack_delay = 2ms;
    fo.max_pending_publish = 50;
    fake_server server(fo);
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    for (std::size_t i = 0; i < 2000; ++i) {
        ASSERT_TRUE(client->publish("p", "task.updated", as_payload("x"), {}, nullptr));
    }
    ASSERT_TRUE(client->flush(30s));
    EXPECT_EQ(server.stored(), 2000u);
    EXPECT_LE(server.max_unacked(), 50u);
}

TEST(ClientWindow, TryPublishFailsWithOverloadedAndPublishBlocksWhenFull) {
    fake_server server;
    auto o = fast_options();
    o.max_inflight_messages = 8;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    server.hold_acks(true);
    for (int i = 0; i < 8; ++i) {
        ASSERT_TRUE(client->try_publish("p", "task.updated", as_payload("x"), {}, nullptr));
    }
    const auto refused = client->try_publish("p", "task.updated", as_payload("x"), {}, nullptr);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc::overloaded);
    auto refused_future = client->try_publish("p", "task.updated", as_payload("x"));
    ASSERT_EQ(refused_future.wait_for(0s), std::future_status::ready);
    EXPECT_EQ(refused_future.get().error().code, errc::overloaded);

    std::atomic<bool> returned{false};
    std::thread blocked([&] {
        auto f = client->publish("p", "task.updated", as_payload("late"));
        returned = true;
        EXPECT_TRUE(get_within(f).has_value());
    });
    std::this_thread::sleep_for(100ms);
    EXPECT_FALSE(returned.load()) << "publish returned while the window was full";
    EXPECT_EQ(client->stats().unresolved, 8u);
    server.hold_acks(false);
    blocked.join();
    EXPECT_TRUE(returned.load());
    ASSERT_TRUE(client->flush(10s));
    EXPECT_EQ(server.stored(), 9u);
}

TEST(ClientWindow, PublishFromACallbackNeverBlocksTheIoThread) {
    fake_server server;
    auto o = fast_options();
    o.max_inflight_messages = 1;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    std::promise<std::pair<bool, errc>> inner;
    auto inner_result = inner.get_future();
    const close_guard closing{client.get()};
    server.hold_acks(true);
    ASSERT_TRUE(
        client->publish("p", "task.updated", as_payload("z"), {}, [&](const publish_result&) {
            // The slot of this message is free again: the first
            // nested publish takes it; the second finds the window
            // full and fails instead of blocking the I/O thread.
            const auto a = client->publish("p", "task.updated", as_payload("n1"), {}, nullptr);
            const auto b = client->publish("p", "task.updated", as_payload("n2"), {}, nullptr);
            inner.set_value({a.has_value(), b ? errc::none : b.error().code});
        }));
    server.hold_acks(false);
    ASSERT_EQ(inner_result.wait_for(10s), std::future_status::ready);
    const auto [first_accepted, second_code] = inner_result.get();
    EXPECT_TRUE(first_accepted);
    EXPECT_EQ(second_code, errc::overloaded);
    ASSERT_TRUE(client->flush(10s));
    EXPECT_EQ(server.stored(), 2u);
}

// ---------------------------------------------------------------------------
// Reconnect

TEST(ClientReconnect, ResendsUnacknowledgedWithTheSameMsgIdsExactlyOnce) {
    fake_options fo;
    fo.drop_after_messages = {3000, 7000, 12000, 12500};
    fake_server server(fo);
    auto o = fast_options();
    o.max_inflight_messages = 1000;
    o.reconnect_backoff = {20ms};
    o.reconnect_jitter = 0.2;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    constexpr std::size_t total = 20'000;
    std::vector<publish_result> results(total);
    std::atomic<std::size_t> resolved{0};
    const close_guard closing{client.get()};
    for (std::size_t i = 0; i < total; ++i) {
        const auto project = "p" + std::to_string(i % 13);
        ASSERT_TRUE(client->publish(project, "task.updated", as_payload(index_payload(i)), {},
                                    [&, i](const publish_result& r) {
                                        results[i] = r;
                                        ++resolved;
                                    }));
    }
    ASSERT_TRUE(client->flush(60s));
    ASSERT_EQ(resolved.load(), total);

    const auto store = server.store();
    ASSERT_EQ(store.size(), total) << "a message was stored twice or lost";
    std::map<std::string, const stored_message*> by_payload;
    std::set<std::string> stored_ids;
    for (const auto& s : store) {
        EXPECT_TRUE(by_payload.emplace(s.payload, &s).second)
            << "payload stored twice: " << s.payload;
        stored_ids.insert(s.msg_id);
    }
    for (std::size_t i = 0; i < total; ++i) {
        ASSERT_TRUE(results[i].has_value()) << i << ": " << results[i].error().message;
        const auto* s = by_payload.at(index_payload(i));
        EXPECT_EQ(results[i]->offset.value, s->offset);
        EXPECT_EQ(results[i]->partition.value, s->partition);
    }
    // Re-sends carried the ids they had the first time.
    EXPECT_GT(server.duplicates(), 0u);
    EXPECT_GT(server.received_messages(), total);
    for (const auto& id : server.received_msg_ids()) ASSERT_TRUE(stored_ids.contains(id)) << id;
    // Each project's messages were stored in publish order.
    std::map<std::string, long> last_index;
    std::map<std::uint32_t, std::vector<const stored_message*>> by_partition;
    for (const auto& s : store) by_partition[s.partition].push_back(&s);
    for (auto& [partition, list] : by_partition) {
        std::ranges::sort(list, {}, &stored_message::offset);
        for (const auto* s : list) {
            const long index = std::stol(s->payload);
            auto [it, fresh] = last_index.emplace(s->project, index);
            if (!fresh) {
                EXPECT_LT(it->second, index) << "project " << s->project << " out of order";
                it->second = index;
            }
        }
    }
    const auto stats = client->stats();
    EXPECT_EQ(stats.reconnects, 4u);
    EXPECT_GT(stats.messages_resent, 0u);
    // No reconnect came before the (jittered) backoff delay.
    const auto drops = server.drop_times();
    const auto accepts = server.accept_times();
    ASSERT_EQ(drops.size(), 4u);
    for (const auto drop : drops) {
        const auto next = std::ranges::upper_bound(accepts, drop);
        ASSERT_NE(next, accepts.end());
        EXPECT_GE(*next - drop, 16ms);
    }
}

TEST(ClientReconnect, BackoffGrowsThenRepeatsItsLastDelay) {
    fake_server server;
    auto o = fast_options();
    o.reconnect_backoff = {30ms, 60ms, 90ms};
    o.reconnect_jitter = 0;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    auto before = client->publish("p", "task.updated", as_payload("before"));
    ASSERT_TRUE(get_within(before).has_value());
    const auto accepts_before = server.accept_times().size();

    server.refuse_next_hellos(3);
    server.drop_connections();
    auto after = client->publish("p", "task.updated", as_payload("after"));
    const auto r = get_within(after);
    ASSERT_TRUE(r.has_value()) << r.error().message;

    const auto drops = server.drop_times();
    const auto accepts = server.accept_times();
    ASSERT_EQ(drops.size(), 4u) << "the cut, then 3 refused Hellos";
    ASSERT_EQ(accepts.size(), accepts_before + 4) << "3 refused attempts, then success";
    const std::chrono::milliseconds expected[] = {30ms, 60ms, 90ms, 90ms};
    auto previous = drops[0];
    for (std::size_t k = 0; k < 4; ++k) {
        const auto gap = accepts[accepts_before + k] - previous;
        EXPECT_GE(gap, expected[k]) << "attempt " << k;
        EXPECT_LT(gap, expected[k] + 500ms) << "attempt " << k;
        previous = accepts[accepts_before + k];
    }
    EXPECT_EQ(client->stats().reconnects, 1u);
}

TEST(ClientReconnect, ConnectionErrorFrameMeansReconnectAndResend) {
    fake_server server;
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    server.hold_acks(true);
    auto f = client->publish("p", "task.updated", as_payload("x"));
    ASSERT_TRUE(wait_until([&] { return server.received_messages() == 1; }));
    // Error with request_id 0, and the fake keeps the socket open: the client
    // must close it, reconnect and re-send on its own.
    server.send_connection_error(errc::shutting_down);
    ASSERT_TRUE(wait_until([&] { return server.hellos() == 2; }));
    server.hold_acks(false);
    const auto r = get_within(f);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_TRUE(r->duplicate) << "the re-send carried the same msg_id";
    EXPECT_EQ(server.stored(), 1u);
    EXPECT_EQ(server.received_messages(), 2u);
    EXPECT_EQ(client->stats().reconnects, 1u);
}

TEST(ClientReconnect, ClosedSocketMeansReconnectAndResend) {
    fake_server server;
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    server.hold_acks(true);
    auto f = client->publish("p", "task.updated", as_payload("x"));
    ASSERT_TRUE(wait_until([&] { return server.received_messages() == 1; }));
    server.drop_connections();
    ASSERT_TRUE(wait_until([&] { return server.received_messages() == 2; }));
    server.hold_acks(false);
    const auto r = get_within(f);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_TRUE(r->duplicate);
    EXPECT_EQ(server.stored(), 1u);
}

TEST(ClientReconnect, GivesUpAfterTheLimitWithUnavailable) {
    fake_server server;
    auto o = fast_options();
    o.reconnect_backoff = {10ms};
    o.give_up_after = 150ms;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    server.refuse_next_hellos(1'000'000);
    server.drop_connections();
    const auto start = std::chrono::steady_clock::now();
    auto f = client->publish("p", "task.updated", as_payload("x"));
    const auto r = get_within(f);
    const auto waited = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, errc_unavailable);
    EXPECT_GE(waited, 100ms);
    EXPECT_LT(waited, 5s);
    EXPECT_EQ(server.stored(), 0u);
}

TEST(ClientSession, AnswersServerPingsWithTheirNonce) {
    fake_server server;
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    server.send_ping(0xfeedbeef);
    ASSERT_TRUE(wait_until([&] { return !server.pong_nonces().empty(); }));
    EXPECT_EQ(server.pong_nonces(), std::vector<std::uint64_t>{0xfeedbeef});
    auto f = client->publish("p", "task.updated", as_payload("x"));
    EXPECT_TRUE(get_within(f).has_value()) << "the session is still usable";
}

// ---------------------------------------------------------------------------
// Shard-aware routing

fake_options sharded(bool announce = true) {
    fake_options fo;
    fo.shard_ports = 2;
    fo.announce_shard_ports = announce;
    fo.streams = {{"events", {}, 4}, {"audit", {"audit.>"}, 3}};
    return fo;
}

void publish_mixed(Client& client, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        const auto project = "project-" + std::to_string(i % 50);
        const auto* subject = i % 3 == 0 ? "audit.login" : "task.updated";
        ASSERT_TRUE(client.publish(project, subject, as_payload(index_payload(i)), {}, nullptr));
    }
    ASSERT_TRUE(client.flush(10s));
}

TEST(ClientShards, EachMessageArrivesOnItsOwnerShardsPort) {
    fake_server server(sharded());
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    publish_mixed(*client, 600);
    const auto store = server.store();
    ASSERT_EQ(store.size(), 600u);
    std::map<std::uint16_t, std::size_t> per_port;
    for (const auto& s : store) {
        const std::uint32_t partitions = s.stream == "audit" ? 3 : 4;
        ASSERT_EQ(s.partition, protocol::partition_for_project(s.project, partitions).value);
        const auto shard = protocol::shard_for_partition(s.stream, partition_id{s.partition}, 2);
        EXPECT_EQ(s.port, server.shard_ports()[shard.value]) << s.stream << "/" << s.partition;
        ++per_port[s.port];
    }
    EXPECT_EQ(per_port[server.port()], 0u) << "nothing may go through the main port";
    EXPECT_GT(per_port[server.shard_ports()[0]], 0u);
    EXPECT_GT(per_port[server.shard_ports()[1]], 0u);
    EXPECT_EQ(client->stats().sessions, 3u);
}

TEST(ClientShards, PlainClientSendsEverythingToTheMainPort) {
    fake_server server(sharded());
    auto o = fast_options();
    o.shard_aware = false;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    publish_mixed(*client, 300);
    const auto store = server.store();
    ASSERT_EQ(store.size(), 300u);
    for (const auto& s : store) EXPECT_EQ(s.port, server.port());
    EXPECT_EQ(client->stats().sessions, 1u);
}

TEST(ClientShards, ServerWithoutShardPortsGetsEverythingOnTheMainPort) {
    fake_server server(sharded(false));
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    publish_mixed(*client, 300);
    for (const auto& s : server.store()) EXPECT_EQ(s.port, server.port());
}

TEST(ClientShards, ShardSessionsReconnectAndKeepRouting) {
    fake_options fo = sharded();
    fo.drop_after_messages = {150, 400};
    fake_server server(fo);
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    publish_mixed(*client, 900);
    const auto store = server.store();
    ASSERT_EQ(store.size(), 900u);
    for (const auto& s : store) EXPECT_NE(s.port, server.port());
    EXPECT_GE(client->stats().reconnects, 2u);
}

// ---------------------------------------------------------------------------
// Errors

TEST(ClientErrors, BadUrlIsBadRequest) {
    for (const char* url :
         {"", "http://127.0.0.1:1", "nagare://", "nagare://:4150", "nagare://127.0.0.1:0",
          "nagare://127.0.0.1:65536", "nagare://127.0.0.1:12ab", "nagare://127.0.0.1:1/path",
          "nagare://user@127.0.0.1:1", "nagare://[::1"}) {
        const auto c = Client::connect(url, fast_options());
        ASSERT_FALSE(c.has_value()) << url;
        EXPECT_EQ(c.error().code, errc::bad_request) << url;
        EXPECT_NE(c.error().message.find("bad url"), std::string::npos) << c.error().message;
    }
}

TEST(ClientErrors, BadOptionsAreBadRequest) {
    fake_server server;
    std::vector<options> bad(5, fast_options());
    bad[0].max_inflight_messages = 0;
    bad[1].max_batch_messages = 5000;
    bad[2].reconnect_backoff.clear();
    bad[3].reconnect_jitter = 1.5;
    bad[4].connect_timeout = 0ms;
    for (auto& o : bad) {
        const auto c = Client::connect(server.url(), o);
        ASSERT_FALSE(c.has_value());
        EXPECT_EQ(c.error().code, errc::bad_request) << c.error().message;
    }
    EXPECT_EQ(server.hellos(), 0u);
}

TEST(ClientErrors, NothingListeningIsUnavailable) {
    // A bound socket that does not listen: connects are refused, and the port stays ours.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t length = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    const auto c =
        Client::connect("nagare://127.0.0.1:" + std::to_string(ntohs(a.sin_port)), fast_options());
    ::close(fd);
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().code, errc_unavailable);
    EXPECT_EQ(errc_name(c.error().code), "UNAVAILABLE");
}

TEST(ClientErrors, NoHelloOkWithinTheTimeoutIsUnavailable) {
    // Listens (the kernel completes the TCP handshake) but never answers.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(fd, 4), 0);
    socklen_t length = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &length);
    auto o = fast_options();
    o.connect_timeout = 200ms;
    const auto start = std::chrono::steady_clock::now();
    const auto c = Client::connect("nagare://127.0.0.1:" + std::to_string(ntohs(a.sin_port)), o);
    const auto waited = std::chrono::steady_clock::now() - start;
    ::close(fd);
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().code, errc_unavailable);
    EXPECT_GE(waited, 200ms);
    EXPECT_LT(waited, 3s);
}

TEST(ClientErrors, AuthRefusedIsNotAuthorized) {
    fake_options fo;
    fo.token = "secret";
    fake_server server(fo);
    auto o = fast_options();
    o.token = "wrong";
    const auto refused = Client::connect(server.url(), o);
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc::not_authorized);
    EXPECT_NE(refused.error().message.find("bad token"), std::string::npos);
    o.token = "secret";
    EXPECT_TRUE(Client::connect(server.url(), o).has_value());
}

TEST(ClientErrors, UnsupportedVersionIsReported) {
    fake_options fo;
    fo.refuse_version = true;
    fake_server server(fo);
    const auto c = Client::connect(server.url(), fast_options());
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().code, errc::unsupported_version);
}

TEST(ClientErrors, InvalidMessagesFailLocallyWithTheServersCodes) {
    fake_options fo;
    fo.max_payload_bytes = 1024;
    fake_server server(fo);
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    EXPECT_EQ(client->server().payload_bytes_max, 1024u);
    const std::string big(1025, 'x');
    const header bad_key[] = {{"bad key", "v"}};
    const std::vector<header> too_many(65, header{"k", "v"});
    struct bad_case {
        std::string project, subject, msg_id;
        std::span<const header> headers;
        std::string_view payload;
        errc code;
    };
    const std::vector<bad_case> cases = {
        {"", "task.updated", "", {}, "x", errc::bad_project},
        {"bad project", "task.updated", "", {}, "x", errc::bad_project},
        {std::string(129, 'p'), "task.updated", "", {}, "x", errc::bad_project},
        {"p", "nodots", "", {}, "x", errc::bad_subject},
        {"p", "task..updated", "", {}, "x", errc::bad_subject},
        {"p", "task.*", "", {}, "x", errc::bad_subject},
        {"p", "task.updated", "has space", {}, "x", errc::bad_msg_id},
        {"p", "task.updated", std::string(129, 'm'), {}, "x", errc::bad_msg_id},
        {"p", "task.updated", "", bad_key, "x", errc::bad_headers},
        {"p", "task.updated", "", too_many, "x", errc::bad_headers},
        {"p", "task.updated", "", {}, big, errc::payload_too_large},
    };
    for (const auto& c : cases) {
        const publish_options po{c.msg_id, c.headers};
        auto f = client->publish(c.project, c.subject, as_payload(c.payload), po);
        ASSERT_EQ(f.wait_for(0s), std::future_status::ready) << c.project << " " << c.subject;
        const auto r = f.get();
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().code, c.code) << r.error().message;
        bool called = false;
        const auto accepted = client->publish(c.project, c.subject, as_payload(c.payload), po,
                                              [&](const publish_result&) { called = true; });
        ASSERT_FALSE(accepted.has_value());
        EXPECT_EQ(accepted.error().code, c.code);
        EXPECT_FALSE(called);
    }
    auto ok = client->publish("p", "task.updated", as_payload(std::string(1024, 'x')));
    ASSERT_TRUE(get_within(ok).has_value());
    EXPECT_EQ(server.received_messages(), 1u) << "an invalid message reached the wire";
}

TEST(ClientErrors, InjectedRequestErrorFailsExactlyThatRequestsMessages) {
    fake_server server;
    server.inject_error(1, errc::storage_full);  // the second Publish frame
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    const std::string projects[] = {"p0", "p1", "p2"};  // message holds views
    std::vector<std::vector<std::string>> ids(3);
    std::vector<std::vector<message>> batches(3);
    std::vector<std::vector<publish_result>> results;
    for (std::size_t b = 0; b < 3; ++b) {
        for (std::size_t i = 0; i < 100; ++i)
            ids[b].push_back(std::to_string(b) + "-" + std::to_string(i));
        for (const auto& id : ids[b]) {
            batches[b].push_back({projects[b], "task.updated", as_payload("x"), {id, {}}});
        }
        auto f = client->publish_batch(batches[b]);  // one batch, one frame; wait before the next
        results.push_back(get_within(f, 10s));
        ASSERT_EQ(results.back().size(), 100u);
    }
    for (const auto& r : results[0]) EXPECT_TRUE(r.has_value());
    for (const auto& r : results[2]) EXPECT_TRUE(r.has_value());
    for (const auto& r : results[1]) {
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().code, errc::storage_full);
        EXPECT_NE(r.error().message.find("injected"), std::string::npos);
    }
    EXPECT_EQ(server.errored_msg_ids(), ids[1]);
    EXPECT_EQ(server.stored(), 200u);
    EXPECT_EQ(client->stats().reconnects, 0u) << "a request error must not cost the connection";
}

TEST(ClientErrors, PerMessageAckErrorFailsOnlyThatMessage) {
    fake_options fo;
    fo.reject_project = "full";  // the fake answers these entries with STORAGE_FULL
    fake_server server(fo);
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    std::vector<message> batch;
    for (int i = 0; i < 10; ++i) {
        batch.push_back({i == 3 || i == 7 ? "full" : "p", "task.updated", as_payload("x"), {}});
    }
    std::promise<std::vector<publish_result>> all;
    auto all_future = all.get_future();
    const close_guard closing{client.get()};
    ASSERT_TRUE(
        client->publish_batch(batch, batch_done_callback([&](std::span<const publish_result> r) {
                                  all.set_value({r.begin(), r.end()});
                              })));
    const auto results = get_within(all_future);
    ASSERT_EQ(results.size(), 10u);
    std::uint64_t next_offset = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (i == 3 || i == 7) {
            ASSERT_FALSE(results[i].has_value());
            EXPECT_EQ(results[i].error().code, errc::storage_full);
        } else {
            ASSERT_TRUE(results[i].has_value());
            EXPECT_EQ(results[i]->offset.value, next_offset++);
        }
    }
    EXPECT_EQ(server.stored(), 8u);
}

// ---------------------------------------------------------------------------
// Batches, flush, close

TEST(ClientBatch, EachCallbackGetsItsIndexAndInvalidBatchesAreRefusedWhole) {
    fake_server server;
    auto o = fast_options();
    o.max_inflight_messages = 64;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    std::vector<message> batch;
    for (int i = 0; i < 20; ++i) batch.push_back({"p", "task.updated", as_payload("x"), {}});
    std::mutex m;
    std::vector<std::size_t> order;
    const close_guard closing{client.get()};
    ASSERT_TRUE(client->publish_batch(
        batch, batch_each_callback([&](std::size_t i, const publish_result& r) {
            EXPECT_TRUE(r.has_value());
            std::lock_guard lock(m);
            order.push_back(i);
        })));
    ASSERT_TRUE(client->flush(10s));
    {
        std::lock_guard lock(m);
        ASSERT_EQ(order.size(), 20u);
        for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
    }
    auto invalid = batch;
    invalid[7].subject = "nope";
    const auto refused =
        client->publish_batch(invalid, batch_each_callback([](std::size_t, const publish_result&) {
                                  ADD_FAILURE() << "called for a refused batch";
                              }));
    ASSERT_FALSE(refused.has_value());
    EXPECT_EQ(refused.error().code, errc::bad_subject);
    EXPECT_NE(refused.error().message.find("message 7"), std::string::npos);
    auto refused_future = client->publish_batch(invalid);
    const auto refused_results = get_within(refused_future);
    ASSERT_EQ(refused_results.size(), invalid.size());
    for (const auto& r : refused_results) EXPECT_EQ(r.error().code, errc::bad_subject);

    const std::vector<message> too_big(65, message{"p", "task.updated", as_payload("x"), {}});
    auto too_big_future = client->publish_batch(too_big);
    EXPECT_EQ(get_within(too_big_future).front().error().code, errc::bad_request);
    ASSERT_TRUE(client->flush(10s));
    EXPECT_EQ(server.received_messages(), 20u);
}

TEST(ClientFlush, ReturnsOnlyAfterTheCallbacksRan) {
    fake_server server;
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    server.hold_acks(true);
    std::atomic<int> called{0};
    const close_guard closing{client.get()};
    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(
            client->publish("p", "task.updated", as_payload("x"), {}, [&](const publish_result& r) {
                std::this_thread::sleep_for(std::chrono::microseconds{200});
                if (r) ++called;
            }));
    }
    EXPECT_FALSE(client->flush(50ms));
    server.hold_acks(false);
    ASSERT_TRUE(client->flush(10s));
    EXPECT_EQ(called.load(), 100);
}

TEST(ClientClose, UnacknowledgedPublishesFailWithClosed) {
    fake_server server;
    auto client = connect_or_fail(server);
    ASSERT_TRUE(client);
    server.hold_acks(true);
    std::vector<std::future<publish_result>> futures;
    for (int i = 0; i < 5; ++i)
        futures.push_back(client->publish("p", "task.updated", as_payload("x")));
    ASSERT_TRUE(wait_until([&] { return server.received_messages() == 5; }));
    client->close();
    for (auto& f : futures) {
        ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
        const auto r = f.get();
        ASSERT_FALSE(r.has_value());
        EXPECT_EQ(r.error().code, errc_closed);
    }
    auto later = client->publish("p", "task.updated", as_payload("x"));
    EXPECT_EQ(get_within(later).error().code, errc_closed);
    EXPECT_TRUE(client->flush(1s));
    client->close();  // idempotent
    EXPECT_TRUE(wait_until([&] { return server.connections() == 0; }));
}

TEST(ClientClose, ConcurrentPublishersAndCloseEndCleanly) {
    fake_server server;
    auto o = fast_options();
    o.max_inflight_messages = 32;
    auto client = connect_or_fail(server, o);
    ASSERT_TRUE(client);
    std::atomic<std::size_t> resolved{0};
    std::atomic<std::size_t> accepted{0};
    const close_guard closing{client.get()};
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < 20'000; ++i) {
                const auto ok =
                    client->publish("p" + std::to_string(t), "task.updated", as_payload("x"), {},
                                    [&](const publish_result&) { ++resolved; });
                if (!ok) {
                    EXPECT_EQ(ok.error().code, errc_closed);
                    return;
                }
                ++accepted;
            }
        });
    }
    EXPECT_TRUE(wait_until([&] { return resolved.load() > 1000; }));
    client->close();
    for (auto& p : producers) p.join();
    EXPECT_EQ(resolved.load(), accepted.load()) << "every accepted publish resolves exactly once";
}

}  // namespace
}  // namespace nagare::client::testing
