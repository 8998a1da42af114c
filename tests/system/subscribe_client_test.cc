// The client library's subscriptions and `nagare sub` against the real
// nagared (issue 5, client side): publish with Client, consume with
// Client::subscribe + ack, durable consumers across a broker restart, the
// consumer admin calls, and the CLI.
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "nagare/admin.h"
#include "nagare/client.h"
#include "tests/system/nagared_process.h"
#include "tests/tools/run_cli.h"
#include "tests/wait_until.h"

namespace nagare::testing {
namespace {

using namespace std::chrono_literals;
namespace nc = nagare::client;

// Messages arrive within this (generous: ASan builds, two shared cores).
constexpr auto arrival_wait = 30s;

nc::options fast_options() {
    nc::options o;
    o.client_name = "subscribe-system-test";
    o.connect_timeout = 5s;
    o.reconnect_backoff = {50ms, 100ms, 200ms};
    o.reconnect_jitter = 0;
    return o;
}

std::string msg_id_of(std::size_t i) { return "sys-" + std::to_string(i); }
std::string project_of(std::size_t i, std::size_t projects) {
    return "proj-" + std::to_string(i % projects);
}

// Publishes `count` messages (msg_id sys-<i>, payload <i>) over `projects`
// projects and waits until every one is stored.
void publish_numbered(nc::Client& client, std::size_t first, std::size_t count,
                      std::size_t projects) {
    std::atomic<std::size_t> failed{0};
    for (std::size_t i = first; i < first + count; ++i) {
        const auto id = msg_id_of(i);
        const auto payload = std::to_string(i);
        ASSERT_TRUE(client.publish(project_of(i, projects), "task.updated", nc::as_payload(payload),
                                   {id, {}}, [&](const nc::publish_result& r) {
                                       if (!r) ++failed;
                                   }));
    }
    ASSERT_TRUE(client.flush(30s));
    ASSERT_EQ(failed.load(), 0u);
}

// What a subscription saw, per msg_id, and in which order per project.
class received {
public:
    // Acks each message in the handler.
    nc::message_handler handler() {
        return [this](const nc::Message& m) {
            {
                std::lock_guard lock(_mutex);
                ++_calls[std::string(m.msg_id())];
                const std::string payload(reinterpret_cast<const char*>(m.payload().data()),
                                          m.payload().size());
                _order[std::string(m.project())].push_back(std::stoul(payload));
            }
            EXPECT_TRUE(m.ack().has_value());
        };
    }
    [[nodiscard]] std::size_t distinct() const {
        std::lock_guard lock(_mutex);
        return _calls.size();
    }
    [[nodiscard]] std::map<std::string, int> calls() const {
        std::lock_guard lock(_mutex);
        return _calls;
    }
    [[nodiscard]] std::map<std::string, std::vector<std::size_t>> order() const {
        std::lock_guard lock(_mutex);
        return _order;
    }

private:
    mutable std::mutex _mutex;
    std::map<std::string, int> _calls;
    std::map<std::string, std::vector<std::size_t>> _order;
};

// A running nagared and a client connected to it; both end with the test.
class SubscribeClient : public ::testing::Test {
protected:
    void SetUp() override {
        _dir = temp_dir(std::string("subscribe-client-") +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
        broker.emplace(_dir / "data");
        ASSERT_TRUE(broker->start());
        auto connected = nc::Client::connect(url(), fast_options());
        ASSERT_TRUE(connected.has_value()) << connected.error().message;
        client = std::move(*connected);
    }
    void TearDown() override {
        if (client) client->close();
        if (broker && broker->pid() > 0) {
            EXPECT_EQ(broker->stop(), 0);
        }
        std::filesystem::remove_all(_dir);
    }
    [[nodiscard]] std::string url() const {
        return "nagare://127.0.0.1:" + std::to_string(broker->port());
    }

    std::optional<nagared_process> broker;
    std::unique_ptr<nc::Client> client;

private:
    fs::path _dir;
};

void expect_each_once_in_project_order(const received& got, std::size_t first, std::size_t count) {
    const auto calls = got.calls();
    ASSERT_EQ(calls.size(), count);
    for (std::size_t i = first; i < first + count; ++i) {
        const auto it = calls.find(msg_id_of(i));
        ASSERT_NE(it, calls.end()) << msg_id_of(i) << " never arrived";
        EXPECT_EQ(it->second, 1) << msg_id_of(i) << " reached the handler twice";
    }
    for (const auto& [project, indices] : got.order()) {
        for (std::size_t k = 1; k < indices.size(); ++k) {
            EXPECT_LT(indices[k - 1], indices[k]) << project << " out of order";
        }
    }
}

TEST_F(SubscribeClient, EveryPublishedMessageIsDeliveredOnceInProjectOrderAndAcked) {
    constexpr std::size_t total = 5000;
    constexpr std::size_t projects = 100;
    publish_numbered(*client, 0, total, projects);

    received got;
    auto sub = client->subscribe("events", {}, {}, got.handler());
    ASSERT_TRUE(sub.has_value()) << nc::errc_name(sub.error().code) << ": " << sub.error().message;
    ASSERT_TRUE(wait_until([&] { return got.distinct() == total; }, arrival_wait))
        << got.distinct() << " of " << total;
    expect_each_once_in_project_order(got, 0, total);
    ASSERT_TRUE(wait_until([&] { return sub->stats().acks_sent == total; }));
    EXPECT_EQ(sub->stats().server_errors, 0u) << "an ack the broker did not know";

    // Live tail: a new_only subscription sees only what comes after it.
    received live;
    nc::subscribe_options only_new;
    only_new.deliver = nc::deliver_policy::new_only;
    auto tail = client->subscribe("events", {"", {"task.*"}}, only_new, live.handler());
    ASSERT_TRUE(tail.has_value()) << tail.error().message;
    publish_numbered(*client, total, 200, projects);
    ASSERT_TRUE(wait_until([&] { return live.distinct() == 200; }, arrival_wait))
        << live.distinct();
    expect_each_once_in_project_order(live, total, 200);
}

TEST_F(SubscribeClient, ProjectFilterDeliversOnlyThatProject) {
    publish_numbered(*client, 0, 1000, 10);  // proj-3 holds i % 10 == 3
    received got;
    auto sub = client->subscribe("events", {"proj-3", {}}, {}, got.handler());
    ASSERT_TRUE(sub.has_value()) << sub.error().message;
    ASSERT_TRUE(wait_until([&] { return got.distinct() == 100; }, arrival_wait)) << got.distinct();
    for (const auto& [id, n] : got.calls()) {
        EXPECT_EQ(std::stoul(id.substr(4)) % 10, 3u) << id;
    }
}

TEST_F(SubscribeClient, DurableConsumerResumesAfterABrokerRestartAndShowsInAdmin) {
    constexpr std::size_t total = 2000;
    publish_numbered(*client, 0, total / 2, 20);

    received got;
    nc::subscribe_options durable;
    durable.consumer = "sys-durable";
    auto sub = client->subscribe("events", {}, durable, got.handler());
    ASSERT_TRUE(sub.has_value()) << sub.error().message;
    ASSERT_TRUE(wait_until([&] { return got.distinct() == total / 2; }, arrival_wait))
        << got.distinct();
    ASSERT_TRUE(wait_until([&] { return sub->stats().acks_sent == total / 2; }));

    // Restart the broker: the client reconnects and subscribes again by name.
    ASSERT_EQ(broker->stop(), 0);
    ASSERT_TRUE(broker->start());
    ASSERT_TRUE(wait_until([&] { return sub->stats().resubscribes >= 1; }, arrival_wait));
    ASSERT_TRUE(wait_until([&] { return client->stats().reconnects >= 1; }, arrival_wait));
    publish_numbered(*client, total / 2, total / 2, 20);
    ASSERT_TRUE(wait_until([&] { return got.distinct() == total; }, arrival_wait))
        << got.distinct();
    expect_each_once_in_project_order(got, 0, total);  // redeliveries of acked ids are dropped
    ASSERT_TRUE(wait_until([&] { return sub->stats().acks_sent >= total; }));
    sub->unsubscribe();

    auto admin = nc::admin_session::connect(url(), "");
    ASSERT_TRUE(admin.has_value()) << admin.error().message;
    const auto listed = (*admin)->consumer_list("events");
    ASSERT_TRUE(listed.has_value()) << listed.error().message;
    ASSERT_EQ(listed->size(), 1u);
    EXPECT_EQ((*listed)[0].name, "sys-durable");
    ASSERT_TRUE(wait_until([&] {
        const auto info = (*admin)->consumer_info("events", "sys-durable");
        return info.has_value() && info->pending == 0;
    }));
    const auto info = (*admin)->consumer_info("events", "sys-durable");
    ASSERT_TRUE(info.has_value()) << info.error().message;
    std::uint64_t settled = 0;
    for (const auto& [partition, floor] : info->ack_floors) settled += floor.value;
    EXPECT_EQ(settled, total) << "the ack floors cover every message";
    ASSERT_TRUE((*admin)->consumer_delete("events", "sys-durable").has_value());
    EXPECT_EQ((*admin)->consumer_info("events", "sys-durable").error().code,
              nc::errc::no_such_consumer);
}

TEST_F(SubscribeClient, NagareSubPrintsAndAcksCountMessages) {
    publish_numbered(*client, 0, 100, 5);
    const auto url_arg = " --url " + url();
    const auto r = run_cli("sub events --count 100 --timeout 30s --consumer cli-reader" + url_arg);
    EXPECT_EQ(r.exit_code, 0) << r.output.substr(0, 2000);
    EXPECT_EQ(count_lines(r.output), 100u);
    std::set<std::string> ids;
    for (std::size_t at = r.output.find("msg_id="); at != std::string::npos;
         at = r.output.find("msg_id=", at + 1)) {
        ids.insert(r.output.substr(at + 7, r.output.find(' ', at) - at - 7));
    }
    EXPECT_EQ(ids.size(), 100u);
    EXPECT_NE(r.output.find("subject=task.updated project=proj-"), std::string::npos);
    // Everything was acked: the durable consumer has nothing pending (once
    // the broker has read what the exited process wrote).
    auto admin = nc::admin_session::connect(url(), "");
    ASSERT_TRUE(admin.has_value()) << admin.error().message;
    EXPECT_TRUE(wait_until([&] {
        const auto state = (*admin)->consumer_info("events", "cli-reader");
        return state.has_value() && state->pending == 0;
    }));
    const auto info = run_cli("consumer info events cli-reader" + url_arg);
    EXPECT_EQ(info.exit_code, 0) << info.output;
    EXPECT_NE(info.output.find(" pending=0 "), std::string::npos) << info.output;
    const auto none_left =
        run_cli("sub events --consumer cli-reader --count 1 --timeout 500ms" + url_arg);
    EXPECT_EQ(none_left.exit_code, 1) << none_left.output;
    EXPECT_NE(none_left.output.find("timed out after 0 of 1 messages"), std::string::npos);
    EXPECT_EQ(run_cli("consumer rm events cli-reader" + url_arg).exit_code, 0);
}

}  // namespace
}  // namespace nagare::testing
