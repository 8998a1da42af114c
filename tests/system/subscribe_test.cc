// Subscriptions against the real nagared over raw frames: delivery, acks,
// redelivery, dead letters, flow control, replay, shared consumers,
// persistence, bad input (issue 5).
#include <gtest/gtest.h>

#include <sys/socket.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "tests/system/subscription_support.h"

namespace nagare::testing {
namespace {

using ms = std::chrono::milliseconds;

std::vector<std::array<std::string, 3>> spread(std::size_t count, std::size_t projects,
                                               const std::string& subject = "task.updated") {
    std::vector<std::array<std::string, 3>> out;
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back({"p" + std::to_string(i % projects), subject, "n" + std::to_string(i)});
    }
    return out;
}

// Every message reaches the consumer once, in per-project order, when it acks everything.
TEST(Subscribe, EveryMessageOnceInProjectOrderAcrossShards) {
    const auto dir = temp_dir("sub-once");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    raw_client producer(broker.port());
    ASSERT_TRUE(producer.hello());
    raw_client consumer(broker.port());
    ASSERT_TRUE(consumer.hello());

    constexpr std::size_t total = 20'000;
    ASSERT_TRUE(publish_messages(producer, spread(total / 2, 1000)));
    ASSERT_TRUE(send_subscribe(consumer, subscribe_all(1)));
    std::vector<delivered> got;
    ASSERT_TRUE(await_sub_ok(consumer, 1, nullptr, &got));
    ASSERT_TRUE(publish_messages(producer, spread(total / 2, 1000), "late"));
    std::map<std::string, std::uint64_t> last_offset;  // per project
    std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
    const auto t0 = std::chrono::steady_clock::now();
    while (seen.size() < total && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
        auto batch = receive(consumer, 1, ms(5000));
        if (batch.empty()) break;
        got.insert(got.end(), batch.begin(), batch.end());
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            EXPECT_TRUE(seen.emplace(d.partition, d.offset).second) << "twice: " << d.partition << ":" << d.offset;
            EXPECT_EQ(d.delivery_count, 1u);
            if (auto it = last_offset.find(d.project); it != last_offset.end()) {
                EXPECT_LT(it->second, d.offset) << "out of order in " << d.project;
            }
            last_offset[d.project] = d.offset;
            acks.emplace_back(d.partition, d.offset);
        }
        got.clear();
        ASSERT_TRUE(send_ack(consumer, 1, fb::AckKind::ACK, acks));
    }
    EXPECT_EQ(seen.size(), total);
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}


using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// The broker started, and a producer and a consumer connection past Hello.
struct session_fixture : broker_fixture {
    std::unique_ptr<raw_client> producer, consumer;
    explicit session_fixture(const std::string& name, nagared_process::options o = {})
        : broker_fixture(name, std::move(o)) {
        if (!broker->start()) return;
        producer = connect_after_restart(broker->port());
        consumer = connect_after_restart(broker->port());
    }
    [[nodiscard]] bool ready() const { return producer && consumer; }
};

bool subscribe(raw_client& c, const fb::SubscribeT& s) {
    return send_subscribe(c, s) && await_sub_ok(c, s.subscription_id);
}

// No ack: delivered again after ack_wait with delivery_count 2, 3; then the
// dead-letter stream holds it with the reason headers and the consumer moves on.
TEST(Subscribe, RedeliveryAfterAckWaitThenDeadLetter) {
    session_fixture f("sub-dlq");
    ASSERT_TRUE(f.ready());
    auto& producer = *f.producer;
    auto& c = *f.consumer;
    auto s = subscribe_all(5);
    s.consumer = "worker";
    s.ack_wait_ms = 1000;
    s.max_deliver = 3;
    ASSERT_TRUE(subscribe(c, s));
    ASSERT_TRUE(publish_messages(producer, {{"acme", "order.created", "first"}}));
    std::vector<double> at;
    const auto t0 = clock_type::now();
    for (std::uint32_t n = 1; n <= 3; ++n) {
        auto got = receive(c, 1, ms(3000));
        ASSERT_EQ(got.size(), 1u) << "delivery " << n;
        EXPECT_EQ(got[0].delivery_count, n);
        EXPECT_EQ(got[0].payload, "first");
        at.push_back(seconds_since(t0));
    }
    EXPECT_GT(at[1] - at[0], 0.9);
    EXPECT_LT(at[1] - at[0], 2.0);
    EXPECT_GT(at[2] - at[1], 0.9);
    EXPECT_LT(at[2] - at[1], 2.0);
    // After max_deliver: not delivered again, copied to the dead-letter stream.
    EXPECT_TRUE(receive(c, 1, ms(1800)).empty());
    raw_client dlq(f.broker->port());
    ASSERT_TRUE(dlq.hello());
    ASSERT_TRUE(send_subscribe(dlq, subscribe_all(9, "$dlq.events.worker")));
    ASSERT_TRUE(await_sub_ok(dlq, 9));
    auto dead = receive(dlq, 1, ms(5000));
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].payload, "first");
    EXPECT_EQ(dead[0].subject, "order.created");
    EXPECT_EQ(dead[0].project, "acme");
    EXPECT_EQ(dead[0].headers["nagare-dlq-reason"], "max_deliver");
    EXPECT_EQ(dead[0].headers["nagare-dlq-deliveries"], "3");
    EXPECT_EQ(dead[0].headers["nagare-dlq-stream"], "events");
    EXPECT_EQ(dead[0].headers["nagare-dlq-consumer"], "worker");
    EXPECT_EQ(dead[0].headers["nagare-dlq-offset"], "0");
    // The consumer moved on: the next message arrives, as a first delivery.
    ASSERT_TRUE(publish_messages(producer, {{"acme", "order.created", "second"}}, "b"));
    auto next = receive(c, 1, ms(3000));
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].payload, "second");
    EXPECT_EQ(next[0].delivery_count, 1u);
    raw_client admin(f.broker->port());
    ASSERT_TRUE(admin.hello());
    auto info = consumer_admin(admin, fb::AdminOp::CONSUMER_INFO, "events", "worker");
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(info->error, fb::ErrorCode::NONE);
    ASSERT_EQ(info->consumers.size(), 1u);
    EXPECT_EQ(info->consumers[0]->dead_lettered, 1u);
    EXPECT_EQ(info->consumers[0]->redelivered, 2u);
    EXPECT_EQ(metric_total(f.broker->admin_port(), "nagare_dead_letters_total"), 1u);
    EXPECT_EQ(f.broker->stop(), 0);
}

TEST(Subscribe, NakDelayInProgressAndTerm) {
    session_fixture f("sub-verbs");
    ASSERT_TRUE(f.ready());
    auto& producer = *f.producer;
    auto& c = *f.consumer;
    auto s = subscribe_all(1);
    s.consumer = "verbs";
    s.ack_wait_ms = 1000;
    s.max_deliver = 10;
    ASSERT_TRUE(subscribe(c, s));

    // nak with a 500 ms delay: back after about 500 ms, count 2.
    ASSERT_TRUE(publish_messages(producer, {{"acme", "task.updated", "nak-me"}}, "nak"));
    auto first = receive(c, 1, ms(3000));
    ASSERT_EQ(first.size(), 1u);
    auto t0 = clock_type::now();
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::NAK, {{first[0].partition, first[0].offset}}, 500));
    auto again = receive(c, 1, ms(3000));
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].delivery_count, 2u);
    EXPECT_GT(seconds_since(t0), 0.45);
    EXPECT_LT(seconds_since(t0), 0.95);
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, {{again[0].partition, again[0].offset}}));

    // in_progress at 600 ms restarts the 1 s timer: nothing until about 1.6 s.
    ASSERT_TRUE(publish_messages(producer, {{"acme", "task.updated", "slow"}}, "slow"));
    auto slow = receive(c, 1, ms(3000));
    ASSERT_EQ(slow.size(), 1u);
    t0 = clock_type::now();
    EXPECT_TRUE(receive(c, 1, ms(600)).empty());
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::IN_PROGRESS, {{slow[0].partition, slow[0].offset}}));
    auto late = receive(c, 1, ms(3000));
    ASSERT_EQ(late.size(), 1u);
    EXPECT_EQ(late[0].delivery_count, 2u);
    EXPECT_GT(seconds_since(t0), 1.5);
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, {{late[0].partition, late[0].offset}}));

    // term: never again, counted.
    ASSERT_TRUE(publish_messages(producer, {{"acme", "task.updated", "poison"}}, "term"));
    auto poison = receive(c, 1, ms(3000));
    ASSERT_EQ(poison.size(), 1u);
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::TERM, {{poison[0].partition, poison[0].offset}}));
    EXPECT_TRUE(receive(c, 1, ms(1800)).empty());
    raw_client admin(f.broker->port());
    ASSERT_TRUE(admin.hello());
    auto info = consumer_admin(admin, fb::AdminOp::CONSUMER_INFO, "events", "verbs");
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(info->consumers.size(), 1u);
    EXPECT_EQ(info->consumers[0]->terminated, 1u);
    EXPECT_EQ(info->consumers[0]->dead_lettered, 0u);
    EXPECT_EQ(f.broker->stop(), 0);
}

// backoff_ms sets the delay of each redelivery; its last step repeats.
TEST(Subscribe, BackoffSetsRedeliveryDelays) {
    session_fixture f("sub-backoff");
    ASSERT_TRUE(f.ready());
    auto& producer = *f.producer;
    auto& c = *f.consumer;
    auto s = subscribe_all(1);
    s.backoff_ms = {200, 700};
    s.max_deliver = 10;
    ASSERT_TRUE(subscribe(c, s));
    ASSERT_TRUE(publish_messages(producer, {{"acme", "task.updated", "retry-me"}}));
    std::vector<double> at;
    const auto t0 = clock_type::now();
    for (std::uint32_t n = 1; n <= 4; ++n) {
        auto got = receive(c, 1, ms(3000));
        ASSERT_EQ(got.size(), 1u);
        EXPECT_EQ(got[0].delivery_count, n);
        at.push_back(seconds_since(t0));
    }
    EXPECT_GT(at[1] - at[0], 0.15);
    EXPECT_LT(at[1] - at[0], 0.6);
    EXPECT_GT(at[2] - at[1], 0.6);
    EXPECT_LT(at[2] - at[1], 1.3);
    EXPECT_GT(at[3] - at[2], 0.6);  // the last step repeats
    EXPECT_LT(at[3] - at[2], 1.3);
    EXPECT_EQ(f.broker->stop(), 0);
}

// Ordered: project A never acked keeps one in flight; project B keeps flowing.
TEST(Subscribe, OrderedKeepsOtherProjectsFlowing) {
    nagared_process::options o;
    o.shards = 1;  // both projects in one partition: the hard case
    session_fixture f("sub-ordered", o);
    ASSERT_TRUE(f.ready());
    auto& producer = *f.producer;
    auto& c = *f.consumer;
    auto s = subscribe_all(1);
    s.ordered = true;
    ASSERT_TRUE(subscribe(c, s));
    std::vector<std::array<std::string, 3>> msgs;
    for (int i = 0; i < 20; ++i) {
        msgs.push_back({"A", "task.updated", "A" + std::to_string(i)});
        msgs.push_back({"B", "task.updated", "B" + std::to_string(i)});
    }
    ASSERT_TRUE(publish_messages(producer, msgs));
    std::vector<std::string> a_seen, b_seen;
    const auto t0 = clock_type::now();
    while (b_seen.size() < 20 && seconds_since(t0) < 10) {
        auto got = receive(c, 1, ms(2000));
        if (got.empty()) break;
        for (const auto& d : got) {
            if (d.project == "A") {
                a_seen.push_back(d.payload);
            } else {
                b_seen.push_back(d.payload);
                ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, {{d.partition, d.offset}}));
            }
        }
    }
    ASSERT_EQ(b_seen.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(b_seen[i], "B" + std::to_string(i));
    ASSERT_EQ(a_seen.size(), 1u);
    EXPECT_EQ(a_seen[0], "A0");
    // Acking A0 releases A1, and only A1.
    auto extra = receive(c, 1, ms(300));
    EXPECT_TRUE(extra.empty());
    // Find A0's position: offset 0 of partition 0.
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, {{0, 0}}));
    auto next = receive(c, 1, ms(3000));
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].payload, "A1");
    EXPECT_TRUE(receive(c, 1, ms(300)).empty());
    EXPECT_EQ(f.broker->stop(), 0);
}

// A durable consumer created after 100,000 messages replays them all, in order.
TEST(Subscribe, ReplayAllFromTimeAndLastPerSubject) {
    broker_fixture f("sub-replay");
    ASSERT_TRUE(f.broker->start());
    raw_client producer(f.broker->port());
    ASSERT_TRUE(producer.hello());
    constexpr std::size_t total = 100'000;
    ASSERT_TRUE(publish_messages(producer, spread(total, 100)));
    const auto between_ns = static_cast<std::uint64_t>(
        std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
    std::this_thread::sleep_for(ms(20));
    ASSERT_TRUE(publish_messages(producer, spread(10, 10, "task.moved"), "after"));

    raw_client c(f.broker->port());
    ASSERT_TRUE(c.hello());
    auto s = subscribe_all(1);
    s.consumer = "rebuild";
    ASSERT_TRUE(send_subscribe(c, s));
    std::vector<delivered> got;
    ASSERT_TRUE(await_sub_ok(c, 1, nullptr, &got));
    std::map<std::uint32_t, std::uint64_t> next_offset;  // per partition: dense and in order
    std::size_t count = 0;
    const auto t0 = clock_type::now();
    while (count < total + 10 && seconds_since(t0) < 120) {
        if (got.empty()) got = receive(c, 1, ms(5000));
        if (got.empty()) break;
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            ASSERT_EQ(d.offset, next_offset[d.partition]) << "partition " << d.partition;
            next_offset[d.partition] = d.offset + 1;
            acks.emplace_back(d.partition, d.offset);
            ++count;
        }
        got.clear();
        ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, acks));
    }
    EXPECT_EQ(count, total + 10);

    // from_time: exactly the messages published after the instant.
    raw_client t(f.broker->port());
    ASSERT_TRUE(t.hello());
    auto ft = subscribe_all(2);
    ft.deliver = fb::DeliverPolicy::FROM_TIME;
    ft.start_time_ns = between_ns;
    ft.ack = fb::AckPolicy::NONE;
    ASSERT_TRUE(send_subscribe(t, ft));
    std::vector<delivered> timed;
    ASSERT_TRUE(await_sub_ok(t, 2, nullptr, &timed));
    auto more = receive(t, 10 - timed.size(), ms(3000));
    timed.insert(timed.end(), more.begin(), more.end());
    ASSERT_EQ(timed.size(), 10u);
    for (const auto& d : timed) EXPECT_EQ(d.subject, "task.moved");
    EXPECT_TRUE(receive(t, 1, ms(300)).empty());

    // last_per_subject: the newest message of each subject of one project.
    ASSERT_TRUE(publish_messages(producer, {{"board", "task.created", "c1"},
                                            {"board", "task.updated", "u1"},
                                            {"board", "task.updated", "u2"},
                                            {"other", "task.updated", "x"},
                                            {"board", "task.created", "c2"},
                                            {"board", "order.tasks.reordered", "r1"}},
                                 "lps"));
    raw_client l(f.broker->port());
    ASSERT_TRUE(l.hello());
    auto lps = subscribe_all(3);
    lps.deliver = fb::DeliverPolicy::LAST_PER_SUBJECT;
    lps.project = "board";
    ASSERT_TRUE(send_subscribe(l, lps));
    std::vector<delivered> snap;
    ASSERT_TRUE(await_sub_ok(l, 3, nullptr, &snap));
    auto rest = receive(l, 3 - snap.size(), ms(3000));
    snap.insert(snap.end(), rest.begin(), rest.end());
    std::set<std::string> payloads;
    for (const auto& d : snap) payloads.insert(d.payload);
    EXPECT_EQ(payloads, (std::set<std::string>{"c2", "u2", "r1"}));
    // The snapshot is settled as it is sent: acking it is no error.
    std::vector<std::pair<std::uint32_t, std::uint64_t>> snap_acks;
    for (const auto& d : snap) snap_acks.emplace_back(d.partition, d.offset);
    ASSERT_TRUE(send_ack(l, 3, fb::AckKind::ACK, snap_acks));
    std::vector<fb::ErrorCode> snap_errors;
    EXPECT_TRUE(receive(l, 1, ms(300), &snap_errors).empty());
    EXPECT_TRUE(snap_errors.empty());
    EXPECT_EQ(f.broker->stop(), 0);
}

// Two subscribers of one durable consumer share its messages; a dropped
// connection's in-flight messages go to the other at once.
TEST(Subscribe, SharedDurableConsumerAndDroppedSubscriber) {
    broker_fixture f("sub-shared");
    ASSERT_TRUE(f.broker->start());
    raw_client producer(f.broker->port());
    ASSERT_TRUE(producer.hello());
    auto s = subscribe_all(1);
    s.consumer = "pool";
    s.max_inflight = 64;
    raw_client a(f.broker->port()), b(f.broker->port());
    ASSERT_TRUE(a.hello());
    ASSERT_TRUE(b.hello());
    ASSERT_TRUE(subscribe(a, s));
    ASSERT_TRUE(subscribe(b, s));
    constexpr std::size_t total = 5000;
    ASSERT_TRUE(publish_messages(producer, spread(total, 50)));
    std::set<std::pair<std::uint32_t, std::uint64_t>> seen;
    std::size_t from_a = 0, from_b = 0;
    const auto t0 = clock_type::now();
    while (seen.size() < total && seconds_since(t0) < 30) {
        bool any = false;
        for (auto* who : {&a, &b}) {
            auto got = receive(*who, 1, ms(200));
            if (got.empty()) continue;
            any = true;
            std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
            for (const auto& d : got) {
                EXPECT_TRUE(seen.emplace(d.partition, d.offset).second);
                acks.emplace_back(d.partition, d.offset);
            }
            (who == &a ? from_a : from_b) += got.size();
            ASSERT_TRUE(send_ack(*who, 1, fb::AckKind::ACK, acks));
        }
        if (!any && seen.size() < total) continue;
    }
    EXPECT_EQ(seen.size(), total);
    EXPECT_GT(from_a, 0u);
    EXPECT_GT(from_b, 0u);

    // a takes messages and goes away without acking: b gets them within a second.
    ASSERT_TRUE(publish_messages(producer, spread(400, 4), "drop"));
    std::set<std::pair<std::uint32_t, std::uint64_t>> held_by_a, got_by_b;
    // a never acks, so once a holds max_inflight of a partition, that partition
    // waits for it: stop when nothing moved for half a second.
    auto progress = clock_type::now();
    while (held_by_a.size() + got_by_b.size() < 400 && seconds_since(progress) < 0.5) {
        const auto before = held_by_a.size() + got_by_b.size();
        for (const auto& d : receive(a, 1, ms(100))) held_by_a.emplace(d.partition, d.offset);
        auto got = receive(b, 1, ms(100));
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            got_by_b.emplace(d.partition, d.offset);
            acks.emplace_back(d.partition, d.offset);
        }
        if (!acks.empty()) {
            ASSERT_TRUE(send_ack(b, 1, fb::AckKind::ACK, acks));
        }
        if (held_by_a.size() + got_by_b.size() > before) progress = clock_type::now();
    }
    ASSERT_GT(held_by_a.size(), 0u);
    ::shutdown(a.fd(), SHUT_RDWR);
    const auto dropped = clock_type::now();
    std::set<std::pair<std::uint32_t, std::uint64_t>> redelivered;
    while (redelivered.size() < held_by_a.size() && seconds_since(dropped) < 5) {
        auto got = receive(b, 1, ms(500));
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            if (held_by_a.contains({d.partition, d.offset})) {
                redelivered.emplace(d.partition, d.offset);
                EXPECT_GE(d.delivery_count, 2u);
            } else {
                got_by_b.emplace(d.partition, d.offset);
            }
            acks.emplace_back(d.partition, d.offset);
        }
        if (!acks.empty()) {
            ASSERT_TRUE(send_ack(b, 1, fb::AckKind::ACK, acks));
        }
    }
    EXPECT_EQ(redelivered.size(), held_by_a.size());
    EXPECT_LT(seconds_since(dropped), 1.0);
    // And b gets everything that was left.
    while (held_by_a.size() + got_by_b.size() < 400 && seconds_since(dropped) < 10) {
        auto got = receive(b, 1, ms(1000));
        if (got.empty()) break;
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (const auto& d : got) {
            if (!held_by_a.contains({d.partition, d.offset})) got_by_b.emplace(d.partition, d.offset);
            acks.emplace_back(d.partition, d.offset);
        }
        ASSERT_TRUE(send_ack(b, 1, fb::AckKind::ACK, acks));
    }
    EXPECT_EQ(held_by_a.size() + got_by_b.size(), 400u);
    EXPECT_EQ(f.broker->stop(), 0);
}

// kill -9: unacknowledged messages come again after the restart, acknowledged ones do not.
TEST(Subscribe, KillNineRedeliversUnackedOnly) {
    broker_fixture f("sub-kill");
    ASSERT_TRUE(f.broker->start());
    std::set<std::pair<std::uint32_t, std::uint64_t>> acked, unacked;
    {
        raw_client producer(f.broker->port());
        ASSERT_TRUE(producer.hello());
        raw_client c(f.broker->port());
        ASSERT_TRUE(c.hello());
        ASSERT_TRUE(subscribe_durable(c, 1, "survivor"));
        ASSERT_TRUE(publish_messages(producer, spread(1000, 20)));
        std::vector<delivered> got;
        const auto t0 = clock_type::now();
        while (got.size() < 1000 && seconds_since(t0) < 20) {
            auto more = receive(c, 1, ms(2000));
            if (more.empty()) break;
            got.insert(got.end(), more.begin(), more.end());
        }
        ASSERT_EQ(got.size(), 1000u);
        std::vector<std::pair<std::uint32_t, std::uint64_t>> acks;
        for (std::size_t i = 0; i < got.size(); ++i) {
            const std::pair<std::uint32_t, std::uint64_t> pos{got[i].partition, got[i].offset};
            if (i % 2 == 0) {
                acks.push_back(pos);
                acked.insert(pos);
            } else {
                unacked.insert(pos);
            }
        }
        ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, acks));
        // No error back means every ack was applied; then more than the save interval passes.
        std::vector<fb::ErrorCode> errors;
        EXPECT_TRUE(receive(c, 1, ms(400), &errors).empty());
        EXPECT_TRUE(errors.empty());
        f.broker->kill(SIGKILL);
    }
    ASSERT_TRUE(f.broker->start());
    auto restarted = connect_after_restart(f.broker->port());
    ASSERT_NE(restarted, nullptr);
    auto& c = *restarted;
    auto s = subscribe_all(1);
    s.consumer = "survivor";
    s.deliver = fb::DeliverPolicy::NEW;  // ignored: the consumer exists
    ASSERT_TRUE(send_subscribe(c, s));
    std::vector<delivered> again;
    ASSERT_TRUE(await_sub_ok(c, 1, nullptr, &again));
    const auto t0 = clock_type::now();
    while (again.size() < unacked.size() && seconds_since(t0) < 10) {
        auto more = receive(c, 1, ms(2000));
        if (more.empty()) break;
        again.insert(again.end(), more.begin(), more.end());
    }
    auto more = receive(c, 1, ms(500));
    again.insert(again.end(), more.begin(), more.end());
    std::set<std::pair<std::uint32_t, std::uint64_t>> redelivered;
    for (const auto& d : again) {
        EXPECT_FALSE(acked.contains({d.partition, d.offset})) << "acked message delivered again";
        redelivered.emplace(d.partition, d.offset);
        EXPECT_GE(d.delivery_count, 2u);
    }
    EXPECT_EQ(redelivered, unacked);
    EXPECT_EQ(f.broker->stop(), 0);
}

// A subscriber that stops reading its socket: the broker's memory stays
// bounded and another subscriber on the same partition is not slowed by more
// than 2x.
TEST(Subscribe, StalledSubscriberStaysBoundedAndDoesNotSlowOthers) {
    nagared_process::options o;
    o.shards = 1;  // one partition: both subscribers read the same one
    broker_fixture f("sub-slow", o);
    ASSERT_TRUE(f.broker->start());
    raw_client producer(f.broker->port());
    ASSERT_TRUE(producer.hello());
    constexpr std::size_t total = 50'000;
    const std::string payload(128, 'x');
    std::vector<std::array<std::string, 3>> msgs;
    for (std::size_t i = 0; i < total; ++i) msgs.push_back({"p" + std::to_string(i % 10), "task.updated", payload});
    ASSERT_TRUE(publish_messages(producer, msgs));

    auto drain_all = [&](std::uint64_t id, std::size_t expected) {
        raw_client c(f.broker->port());
        EXPECT_TRUE(c.hello());
        auto s = subscribe_all(id);
        s.ack = fb::AckPolicy::NONE;
        EXPECT_TRUE(send_subscribe(c, s));
        const auto t0 = clock_type::now();
        std::vector<delivered> got;
        EXPECT_TRUE(await_sub_ok(c, id, nullptr, &got));
        std::size_t n = got.size();
        while (n < expected) {
            auto more = receive(c, 1, ms(5000));
            if (more.empty()) break;
            n += more.size();
        }
        EXPECT_EQ(n, expected);
        return seconds_since(t0);
    };
    // Best of two runs each: the machine is shared (and sanitizer builds run this too).
    const double alone_s = std::min(drain_all(1, total), drain_all(2, total));
    const auto rss_before_kib = f.broker->rss_kib();

    // The stalled subscriber: subscribes and never reads again.
    raw_client stalled(f.broker->port());
    ASSERT_TRUE(stalled.hello());
    auto s = subscribe_all(9);
    s.ack = fb::AckPolicy::NONE;
    ASSERT_TRUE(send_subscribe(stalled, s));
    const double with_stalled_s = std::min(drain_all(3, total), drain_all(4, total));
    ASSERT_TRUE(publish_messages(producer, msgs, "more"));
    (void)drain_all(5, 2 * total);
    const auto rss_after_kib = f.broker->rss_kib();
    std::printf("drain %zu msgs (best of 2): alone %.3f s, beside a stalled subscriber %.3f s (ratio %.2f); "
                "broker RSS %zu -> %zu KiB after %zu more messages\n",
                total, alone_s, with_stalled_s, with_stalled_s / alone_s, rss_before_kib, rss_after_kib, total);
    EXPECT_LT(with_stalled_s, 2.0 * alone_s + 0.1);
    // A stalled subscriber costs at most its send queue and a few frames in
    // transit (the rest of the growth is the dedup window taking the new ids).
    EXPECT_LT(rss_after_kib, rss_before_kib + 24 * 1024);
    EXPECT_EQ(f.broker->stop(), 0);
}

// A consumer catching up from the start of a large log does not stall live
// delivery to another subscriber on the same shard.
TEST(Subscribe, CatchUpDoesNotStallLiveDelivery) {
    nagared_process::options o;
    o.shards = 1;
    broker_fixture f("sub-catchup", o);
    ASSERT_TRUE(f.broker->start());
    raw_client producer(f.broker->port());
    ASSERT_TRUE(producer.hello());
    constexpr std::size_t backlog = 300'000;
    const std::string payload(256, 'b');
    std::vector<std::array<std::string, 3>> msgs;
    for (std::size_t i = 0; i < backlog; ++i) msgs.push_back({"old" + std::to_string(i % 50), "task.updated", payload});
    ASSERT_TRUE(publish_messages(producer, msgs));

    raw_client live(f.broker->port());
    ASSERT_TRUE(live.hello());
    auto ls = subscribe_all(1);
    ls.deliver = fb::DeliverPolicy::NEW;
    ls.subjects = {"live.ping"};
    ASSERT_TRUE(subscribe(live, ls));

    std::atomic<std::size_t> caught_up{0};
    std::atomic<bool> catching{true};
    std::thread reader([&] {
        raw_client c(f.broker->port());
        if (!c.hello()) return;
        auto s = subscribe_all(2);
        s.ack = fb::AckPolicy::NONE;
        s.subjects = {"task.>"};
        if (!send_subscribe(c, s)) return;
        while (caught_up < backlog) {
            auto got = receive(c, 1, ms(5000));
            if (got.empty()) break;
            caught_up += got.size();
        }
        catching = false;
    });
    std::vector<double> latencies_ms;
    while (catching && latencies_ms.size() < 200) {
        const auto n = latencies_ms.size();
        const auto t0 = clock_type::now();
        ASSERT_TRUE(publish_messages(producer, {{"live", "live.ping", std::to_string(n)}}, "ping" + std::to_string(n)));
        auto got = receive(live, 1, ms(3000));
        ASSERT_EQ(got.size(), 1u);
        ASSERT_TRUE(send_ack(live, 1, fb::AckKind::ACK, {{got[0].partition, got[0].offset}}));
        latencies_ms.push_back(seconds_since(t0) * 1000);
        std::this_thread::sleep_for(ms(5));
    }
    reader.join();
    ASSERT_GT(latencies_ms.size(), 3u);
    std::ranges::sort(latencies_ms);
    const double median_ms = latencies_ms[latencies_ms.size() / 2];
    std::printf("catch-up of %zu messages; %zu live pings meanwhile, publish-to-deliver median %.1f ms, worst %.1f ms\n",
                caught_up.load(), latencies_ms.size(), median_ms, latencies_ms.back());
    EXPECT_EQ(caught_up.load(), backlog);
    // Bounded passes keep the live subscriber served between catch-up steps
    // (loose bounds: sanitizer builds and a shared machine run this too).
    EXPECT_LT(median_ms, 100.0);
    EXPECT_LT(latencies_ms.back(), 2000.0);
    EXPECT_EQ(f.broker->stop(), 0);
}

// Deleting a stream ends its subscriptions with NO_SUCH_STREAM; its
// consumers go with it.
TEST(Subscribe, StreamDeleteEndsSubscriptions) {
    broker_fixture f("sub-stream-delete");
    ASSERT_TRUE(f.broker->start());
    raw_client admin(f.broker->port());
    ASSERT_TRUE(admin.hello());
    auto stream_admin = [&](fb::AdminOp op) {
        fb::AdminT a;
        a.request_id = 5;
        a.op = op;
        a.stream = "orders";
        if (op == fb::AdminOp::STREAM_CREATE) {
            a.config = std::make_unique<fb::StreamConfigT>();
            a.config->name = "orders";
            a.config->subjects = {"order.>"};
        }
        auto& enc = admin.encoder();
        enc.reset();
        EXPECT_TRUE(admin.send_bytes(enc.finish(fb::CreateAdmin(enc.builder(), &a))));
        while (auto r = admin.next()) {
            if ((*r)->body.type == fb::Body::AdminResult) return (*r)->body.AsAdminResult()->error;
        }
        return fb::ErrorCode::INTERNAL;
    };
    ASSERT_EQ(stream_admin(fb::AdminOp::STREAM_CREATE), fb::ErrorCode::NONE);
    raw_client c(f.broker->port());
    ASSERT_TRUE(c.hello());
    auto s = subscribe_all(1, "orders");
    s.consumer = "billing";
    ASSERT_TRUE(subscribe(c, s));
    ASSERT_TRUE(publish_messages(admin, {{"shop", "order.created", "o1"}}));
    auto got = receive(c, 1, ms(3000));
    ASSERT_EQ(got.size(), 1u);
    ASSERT_EQ(stream_admin(fb::AdminOp::STREAM_DELETE), fb::ErrorCode::NONE);
    std::vector<fb::ErrorCode> errors;
    (void)receive(c, 1, ms(1000), &errors);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0], fb::ErrorCode::NO_SUCH_STREAM);
    // Re-created: a new epoch, no consumers; acks for the old subscription are refused.
    ASSERT_EQ(stream_admin(fb::AdminOp::STREAM_CREATE), fb::ErrorCode::NONE);
    auto list = consumer_admin(admin, fb::AdminOp::CONSUMER_LIST, "orders");
    ASSERT_NE(list, nullptr);
    EXPECT_TRUE(list->consumers.empty());
    errors.clear();
    ASSERT_TRUE(send_ack(c, 1, fb::AckKind::ACK, {{got[0].partition, got[0].offset}}));
    (void)receive(c, 1, ms(500), &errors);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0], fb::ErrorCode::NO_SUCH_SUBSCRIPTION);
    EXPECT_EQ(f.broker->stop(), 0);
}

// Random Subscribe/Ack/Unsubscribe frames (valid framing, arbitrary fields):
// the broker answers or ignores each, stays up, and serves afterwards.
TEST(Subscribe, RandomSubscriptionFramesNeverBreakTheBroker) {
    session_fixture f("sub-random");
    ASSERT_TRUE(f.ready());
    auto& c = *f.consumer;
    std::mt19937_64 rng(2026);
    auto pick = [&](std::initializer_list<const char*> options) {
        return std::string(*(options.begin() + static_cast<std::ptrdiff_t>(rng() % options.size())));
    };
    std::string last_error;
    for (int i = 0; i < 3000; ++i) {
        const auto id = rng() % 16;
        switch (rng() % 3) {
            case 0: {
                fb::SubscribeT s;
                s.subscription_id = id;
                s.stream = pick({"events", "", "nope", "$dlq.events.x", "events\n"});
                s.consumer = pick({"", "", "c1", "c2", "bad name", "x"});
                s.project = pick({"", "p1", "bad project", ""});
                if (rng() % 2) s.subjects = {pick({"task.*", ">", "a..b", "task.>.x", "*", "order.>"})};
                s.deliver = static_cast<fb::DeliverPolicy>(rng() % 7);
                s.ack = static_cast<fb::AckPolicy>(rng() % 3);
                s.start_offset = rng() % 1000;
                s.max_inflight = static_cast<std::uint32_t>(rng() % 40000);
                s.max_deliver = static_cast<std::uint32_t>(rng() % 4);
                s.ack_wait_ms = static_cast<std::uint32_t>(rng() % 3000);
                s.ordered = rng() % 2;
                if (rng() % 4 == 0) s.start_positions.emplace_back(static_cast<std::uint32_t>(rng() % 3000), rng());
                ASSERT_TRUE(send_subscribe(c, s)) << last_error;
                break;
            }
            case 1: {
                std::vector<std::pair<std::uint32_t, std::uint64_t>> positions;
                for (std::uint64_t n = rng() % 5; n > 0; --n) positions.emplace_back(rng() % 4, rng() % 50);
                ASSERT_TRUE(send_ack(c, id, static_cast<fb::AckKind>(rng() % 5), positions,
                                     static_cast<std::uint32_t>(rng() % 100)));
                break;
            }
            default: ASSERT_TRUE(send_unsubscribe(c, id)) << last_error; break;
        }
        if (i % 100 == 0) {
            ASSERT_TRUE(publish_messages(*f.producer, spread(20, 5), "r" + std::to_string(i)));
        }
        while (auto fr = c.next(ms(1))) {
            if ((*fr)->body.type == fb::Body::Error) {
                last_error = std::string(fb::EnumNameErrorCode((*fr)->body.AsError()->code)) + " " + (*fr)->body.AsError()->message;
            }
        }
        ASSERT_TRUE(f.broker->rss_kib() > 0) << "broker died at frame " << i;
        if (c.closed_by_peer(ms(0))) FAIL() << "closed at frame " << i << " after " << last_error;
    }
    // Still serving: a fresh connection subscribes and gets what is published.
    raw_client fresh(f.broker->port());
    ASSERT_TRUE(fresh.hello());
    auto s = subscribe_all(1);
    s.deliver = fb::DeliverPolicy::NEW;
    ASSERT_TRUE(subscribe(fresh, s));
    ASSERT_TRUE(publish_messages(*f.producer, {{"after", "task.updated", "alive"}}, "alive"));
    auto got = receive(fresh, 1, ms(3000));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].payload, "alive");
    EXPECT_EQ(f.broker->stop(), 0);
}

// Bad input: the right codes, and the subscription keeps working.
TEST(Subscribe, BadInputGetsCodes) {
    broker_fixture f("sub-bad");
    ASSERT_TRUE(f.broker->start());
    raw_client c(f.broker->port());
    ASSERT_TRUE(c.hello());
    fb::ErrorCode code{};
    auto s = subscribe_all(1, "nope");
    ASSERT_TRUE(send_subscribe(c, s));
    EXPECT_FALSE(await_sub_ok(c, 1, &code));
    EXPECT_EQ(code, fb::ErrorCode::NO_SUCH_STREAM);
    s = subscribe_all(2);
    s.subjects = {"task.>.x"};
    ASSERT_TRUE(send_subscribe(c, s));
    EXPECT_FALSE(await_sub_ok(c, 2, &code));
    EXPECT_EQ(code, fb::ErrorCode::BAD_PATTERN);
    s = subscribe_all(3);
    s.project = "bad project";
    ASSERT_TRUE(send_subscribe(c, s));
    EXPECT_FALSE(await_sub_ok(c, 3, &code));
    EXPECT_EQ(code, fb::ErrorCode::BAD_PROJECT);
    s = subscribe_all(4);
    s.deliver = fb::DeliverPolicy::LAST_PER_SUBJECT;
    ASSERT_TRUE(send_subscribe(c, s));
    EXPECT_FALSE(await_sub_ok(c, 4, &code));
    EXPECT_EQ(code, fb::ErrorCode::BAD_REQUEST);
    // A durable consumer, then the same name with another filter.
    s = subscribe_all(5);
    s.consumer = "fixed";
    s.subjects = {"task.*"};
    ASSERT_TRUE(subscribe(c, s));
    ASSERT_TRUE(send_subscribe(c, s));  // id in use
    EXPECT_FALSE(await_sub_ok(c, 5, &code));
    EXPECT_EQ(code, fb::ErrorCode::BAD_REQUEST);
    s.subscription_id = 6;
    s.subjects = {"order.*"};
    ASSERT_TRUE(send_subscribe(c, s));
    EXPECT_FALSE(await_sub_ok(c, 6, &code));
    EXPECT_EQ(code, fb::ErrorCode::CONSUMER_EXISTS);
    // Acks: unknown subscription, unknown positions.
    std::vector<fb::ErrorCode> errors;
    ASSERT_TRUE(send_ack(c, 99, fb::AckKind::ACK, {{0, 0}}));
    (void)receive(c, 1, ms(500), &errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], fb::ErrorCode::NO_SUCH_SUBSCRIPTION);
    errors.clear();
    ASSERT_TRUE(send_ack(c, 5, fb::AckKind::ACK, {{0, 12345}, {999, 0}}));
    (void)receive(c, 1, ms(500), &errors);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0], fb::ErrorCode::UNKNOWN_POSITION);
    errors.clear();
    ASSERT_TRUE(send_unsubscribe(c, 42));
    (void)receive(c, 1, ms(500), &errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], fb::ErrorCode::NO_SUCH_SUBSCRIPTION);
    // Consumer admin: unknown consumer; then the subscription still works.
    raw_client admin(f.broker->port());
    ASSERT_TRUE(admin.hello());
    auto info = consumer_admin(admin, fb::AdminOp::CONSUMER_INFO, "events", "ghost");
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->error, fb::ErrorCode::NO_SUCH_CONSUMER);
    auto list = consumer_admin(admin, fb::AdminOp::CONSUMER_LIST, "events");
    ASSERT_NE(list, nullptr);
    ASSERT_EQ(list->consumers.size(), 1u);
    EXPECT_EQ(list->consumers[0]->name, "fixed");
    ASSERT_TRUE(publish_messages(admin, {{"p", "task.done", "ok"}}));
    auto got = receive(c, 1, ms(3000));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].payload, "ok");
    // Deleting the consumer ends its subscription with NO_SUCH_CONSUMER.
    auto deleted = consumer_admin(admin, fb::AdminOp::CONSUMER_DELETE, "events", "fixed");
    ASSERT_NE(deleted, nullptr);
    EXPECT_EQ(deleted->error, fb::ErrorCode::NONE);
    errors.clear();
    (void)receive(c, 1, ms(1000), &errors);
    ASSERT_FALSE(errors.empty());
    EXPECT_EQ(errors[0], fb::ErrorCode::NO_SUCH_CONSUMER);
    list = consumer_admin(admin, fb::AdminOp::CONSUMER_LIST, "events");
    ASSERT_NE(list, nullptr);
    EXPECT_TRUE(list->consumers.empty());
    EXPECT_EQ(f.broker->stop(), 0);
}

}  // namespace
}  // namespace nagare::testing
