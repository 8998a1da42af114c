// Producers through the client library against the real nagared.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "nagare/client.h"
#include "tests/system/log_reader.h"
#include "tests/system/nagared_process.h"

namespace nagare::testing {
namespace {

std::string url(std::uint16_t port) { return "nagare://127.0.0.1:" + std::to_string(port); }

client::options fast_reconnect() {
    client::options o;
    o.reconnect_backoff = {std::chrono::milliseconds(50), std::chrono::milliseconds(100),
                           std::chrono::milliseconds(200)};
    o.give_up_after = std::chrono::seconds(60);
    return o;
}

// Message k of producer p: its project, msg_id and payload say who and which.
std::string project_of(int producer, int k) { return "project-" + std::to_string((producer * 7919 + k) % 1000); }
std::string msg_id_of(int producer, int k) { return "p" + std::to_string(producer) + "-m" + std::to_string(k); }

// Checks that each partition's offsets are dense from 0 and that every
// project's messages from one producer are stored in publish order.
void expect_dense_and_ordered(const std::vector<stored_record>& records) {
    std::map<std::uint32_t, std::uint64_t> next_offset;
    std::map<std::pair<std::string, int>, int> last_k;  // (project, producer) -> k
    for (const auto& r : records) {
        ASSERT_EQ(r.offset, next_offset[r.partition]++) << "partition " << r.partition;
        const auto dash = r.msg_id.find("-m");
        const int producer = std::stoi(r.msg_id.substr(1, dash - 1));
        const int k = std::stoi(r.msg_id.substr(dash + 2));
        auto [it, fresh] = last_k.try_emplace({r.project, producer}, k);
        if (!fresh) {
            ASSERT_GT(k, it->second) << r.project << " out of order";
            it->second = k;
        }
    }
}

TEST(Producers, FourProducersOverAThousandProjectsAllAcknowledgedDenseAndInOrder) {
    const auto dir = temp_dir("producers-4x25k");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    constexpr int producers = 4;
    constexpr int per_producer = 25'000;
    std::atomic<int> acked{0}, failed{0};
    std::vector<std::thread> threads;
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            auto c = client::Client::connect(url(broker.port()));
            if (!c) {
                failed += per_producer;
                return;
            }
            for (int k = 0; k < per_producer; ++k) {
                const auto project = project_of(p, k);
                const auto id = msg_id_of(p, k);
                const auto payload = std::to_string(k);
                client::publish_options o;
                o.msg_id = id;
                auto ok = (*c)->publish(project, "task.updated", client::as_payload(payload), o,
                                        [&](const client::publish_result& r) {
                                            (r && !r->duplicate ? acked : failed) += 1;
                                        });
                if (!ok) ++failed;
            }
            (*c)->flush(std::chrono::seconds(60));
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(acked.load(), producers * per_producer);
    EXPECT_EQ(failed.load(), 0);
    ASSERT_EQ(broker.stop(), 0);
    const auto records = read_stream(dir / "data", "events", 2);
    EXPECT_EQ(records.size(), static_cast<std::size_t>(producers * per_producer));
    expect_dense_and_ordered(records);
    std::filesystem::remove_all(dir);
}

TEST(Producers, DedupOverTheWireSurvivesRestartAndExpiresAfterTheWindow) {
    const auto dir = temp_dir("producers-dedup");
    nagared_process::options o;
    o.config_toml = "[[streams]]\nname = \"short\"\nsubjects = [\"short.>\"]\ndedup_window = \"1s\"\n";
    nagared_process broker(dir / "data", o);
    ASSERT_TRUE(broker.start());
    auto publish = [&](client::Client& c, std::string_view subject, std::string_view id) {
        client::publish_options po;
        po.msg_id = id;
        return c.publish("proj", subject, client::as_payload("x"), po).get();
    };
    {
        auto c = client::Client::connect(url(broker.port()));
        ASSERT_TRUE(c.has_value());
        auto first = publish(**c, "task.updated", "same-id");
        ASSERT_TRUE(first.has_value());
        EXPECT_FALSE(first->duplicate);
        auto second = publish(**c, "task.updated", "same-id");
        ASSERT_TRUE(second.has_value());
        EXPECT_TRUE(second->duplicate);
        EXPECT_EQ(second->offset, first->offset);
        // Two copies back to back, before the first is synced: stored once.
        client::publish_options po;
        po.msg_id = "twin";
        auto a = (*c)->publish("proj", "task.updated", client::as_payload("t"), po);
        auto b = (*c)->publish("proj", "task.updated", client::as_payload("t"), po);
        auto ra = a.get(), rb = b.get();
        ASSERT_TRUE(ra && rb);
        EXPECT_EQ(ra->offset, rb->offset);
        EXPECT_NE(ra->duplicate, rb->duplicate);
        // The 1 s window of stream `short`.
        auto s1 = publish(**c, "short.lived", "brief");
        ASSERT_TRUE(s1.has_value());
        std::this_thread::sleep_for(std::chrono::milliseconds(1300));
        auto s2 = publish(**c, "short.lived", "brief");
        ASSERT_TRUE(s2.has_value());
        EXPECT_FALSE(s2->duplicate);
        EXPECT_GT(s2->offset, s1->offset);
    }
    ASSERT_EQ(broker.stop(), 0);
    ASSERT_TRUE(broker.start());
    {
        auto c = client::Client::connect(url(broker.port()));
        ASSERT_TRUE(c.has_value());
        auto again = publish(**c, "task.updated", "same-id");
        ASSERT_TRUE(again.has_value());
        EXPECT_TRUE(again->duplicate) << "the dedup window did not survive the restart";
    }
    ASSERT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

TEST(Producers, ShardAwareClientCausesNoForwardsAndAPlainClientReachesEveryPartition) {
    const auto dir = temp_dir("producers-shards");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    auto forwards = [&] { return metric_total(broker.admin_port(), "nagare_forwards_sent_total"); };
    auto publish_all = [&](bool shard_aware) {
        client::options o;
        o.shard_aware = shard_aware;
        auto c = client::Client::connect(url(broker.port()), o);
        EXPECT_TRUE(c.has_value());
        std::set<std::uint32_t> partitions;
        for (int k = 0; k < 200; ++k) {
            auto r = (*c)->publish("project-" + std::to_string(k), "task.updated", client::as_payload("x")).get();
            EXPECT_TRUE(r.has_value());
            if (r) partitions.insert(r->partition.value);
        }
        return partitions;
    };
    EXPECT_EQ(publish_all(true).size(), 2u);
    EXPECT_EQ(forwards(), 0u);
    EXPECT_EQ(publish_all(false).size(), 2u);  // a plain client on one port reaches both shards
    EXPECT_GT(forwards(), 0u);
    ASSERT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

// kill -9 at random moments while 4 producers publish with durability=fsync;
// the producers' clients reconnect and re-send with the same msg_ids.
TEST(Producers, KillNineLosesNothingAcknowledgedAndRetriesStoreEachMessageOnce) {
    const auto dir = temp_dir("producers-crash");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    constexpr int producers = 4;
    constexpr int kills_wanted = 6;
    constexpr int min_per_producer = 2'000;
    std::mutex acked_mutex;
    std::set<std::string> acked;
    std::atomic<bool> killing_done{false};
    std::atomic<int> published_total{0};
    std::vector<std::thread> threads;
    // Producers publish (paced) until every kill is done, so the kills
    // always land while messages are in flight, however fast the machine.
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            auto c = client::Client::connect(url(broker.port()), fast_reconnect());
            ASSERT_TRUE(c.has_value());
            int k = 0;
            for (; k < 1'000'000 && (!killing_done || k < min_per_producer); ++k) {
                const auto id = msg_id_of(p, k);
                client::publish_options o;
                o.msg_id = id;
                const auto project = project_of(p, k);
                (void)(*c)->publish(project, "task.updated", client::as_payload(id), o,
                                    [&, id](const client::publish_result& r) {
                                        if (r) {
                                            std::lock_guard lock(acked_mutex);
                                            acked.insert(id);
                                        }
                                    });
                if (k % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
            (*c)->flush(std::chrono::seconds(90));
            published_total += k;
        });
    }
    std::mt19937 rng(2026);
    for (int kill = 0; kill < kills_wanted; ++kill) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
        broker.kill(SIGKILL);
        // Everything acknowledged before the kill must be on disk right now.
        std::set<std::string> acked_now;
        {
            std::lock_guard lock(acked_mutex);
            acked_now = acked;
        }
        std::set<std::string> stored_ids;
        for (const auto& r : read_stream(dir / "data", "events", 2)) stored_ids.insert(r.msg_id);
        for (const auto& id : acked_now) ASSERT_TRUE(stored_ids.contains(id)) << id << " acked but lost";
        ASSERT_TRUE(broker.start());
    }
    killing_done = true;
    for (auto& t : threads) t.join();
    ASSERT_EQ(broker.stop(), 0);
    const auto records = read_stream(dir / "data", "events", 2);
    std::map<std::string, int> copies;
    for (const auto& r : records) ++copies[r.msg_id];
    EXPECT_EQ(acked.size(), static_cast<std::size_t>(published_total.load()));
    EXPECT_EQ(copies.size(), static_cast<std::size_t>(published_total.load()));
    for (const auto& [id, n] : copies) ASSERT_EQ(n, 1) << id << " stored " << n << " times";
    expect_dense_and_ordered(records);
    std::filesystem::remove_all(dir);
}

TEST(Producers, SigtermUnderLoadExitsWithinFiveSecondsAndKeepsEveryAck) {
    const auto dir = temp_dir("producers-sigterm");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    std::mutex acked_mutex;
    std::set<std::string> acked;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int p = 0; p < 4; ++p) {
        threads.emplace_back([&, p] {
            client::options o = fast_reconnect();
            o.give_up_after = std::chrono::seconds(1);
            auto c = client::Client::connect(url(broker.port()), o);
            ASSERT_TRUE(c.has_value());
            for (int k = 0; !stop && k < 1'000'000; ++k) {
                const auto id = msg_id_of(p, k);
                client::publish_options po;
                po.msg_id = id;
                auto ok = (*c)->publish(project_of(p, k), "task.updated", client::as_payload(id), po,
                                        [&, id](const client::publish_result& r) {
                                            if (r) {
                                                std::lock_guard lock(acked_mutex);
                                                acked.insert(id);
                                            }
                                        });
                if (!ok) break;
            }
            (*c)->close();
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    const auto t0 = std::chrono::steady_clock::now();
    const auto status = broker.stop(SIGTERM, std::chrono::seconds(5));
    const auto took = std::chrono::steady_clock::now() - t0;
    stop = true;
    for (auto& t : threads) t.join();
    ASSERT_TRUE(status.has_value()) << "nagared did not exit within 5 s of SIGTERM";
    EXPECT_EQ(*status, 0);
    EXPECT_LT(took, std::chrono::seconds(5));
    std::set<std::string> stored;
    for (const auto& r : read_stream(dir / "data", "events", 2)) stored.insert(r.msg_id);
    EXPECT_GT(acked.size(), 0u);
    for (const auto& id : acked) ASSERT_TRUE(stored.contains(id)) << id << " acked but lost";
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::testing
