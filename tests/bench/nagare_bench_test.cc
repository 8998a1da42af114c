// nagare-bench itself: `publish`, `consume`, `e2e` and `fanout` with --start-broker
// against the real nagared, their JSON, and their refusals.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace nagare::bench {
namespace {

namespace fs = std::filesystem;
namespace pt = boost::property_tree;

struct run_output {
    int status = -1;
    std::string text;  // stdout and stderr
};

run_output run_bench(const std::string& args) {
    const std::string command = std::string(NAGARE_BENCH_PATH) + " " + args + " 2>&1";
    run_output out;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return out;
    char chunk[4096];
    while (const auto n = std::fread(chunk, 1, sizeof chunk, pipe)) out.text.append(chunk, n);
    const int status = ::pclose(pipe);
    out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
}

fs::path fresh_dir(const std::string& name) {
    const auto dir = fs::temp_directory_path() /
                     ("nagare-bench-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

TEST(NagareBench, PublishAgainstAStartedBrokerWritesConsistentJson) {
    const auto dir = fresh_dir("publish");
    const auto json = dir / "result.json";
    const auto out =
        run_bench("publish --start-broker --nagared " + std::string(NAGARED_PATH) + " --data " +
                  (dir / "data").string() +
                  " --messages 20000 --producers 2 --durability none --json " + json.string());
    ASSERT_EQ(out.status, 0) << out.text;
    EXPECT_NE(out.text.find("msgs/s"), std::string::npos) << out.text;
    pt::ptree r;
    pt::read_json(json.string(), r);
    EXPECT_EQ(r.get<std::string>("scenario"), "publish");
    EXPECT_EQ(r.get<std::string>("target"), "nagare");
    EXPECT_EQ(r.get<std::string>("parameters.durability"), "none");
    EXPECT_EQ(r.get<int>("parameters.producers"), 2);
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 20'000u);
    const auto measured = r.get<std::uint64_t>("messages_measured");
    EXPECT_GT(measured, 0u);
    EXPECT_LE(measured, 20'000u);
    EXPECT_EQ(r.get<int>("errors"), 0);
    EXPECT_EQ(r.get<int>("duplicates"), 0);
    EXPECT_GT(r.get<double>("msgs_per_s"), 0);
    EXPECT_NEAR(r.get<double>("mb_per_s"), r.get<double>("msgs_per_s") * 128 / 1e6, 0.01);
    const auto p50 = r.get<double>("latency_us.p50");
    const auto p90 = r.get<double>("latency_us.p90");
    const auto p99 = r.get<double>("latency_us.p99");
    const auto p999 = r.get<double>("latency_us.p999");
    const auto max = r.get<double>("latency_us.max");
    EXPECT_GT(p50, 0);
    EXPECT_LE(p50, p90);
    EXPECT_LE(p90, p99);
    EXPECT_LE(p99, p999);
    EXPECT_LE(p999, max);
    EXPECT_GE(r.get<double>("server_cpu_s"), 0);
    EXPECT_GT(r.get<std::uint64_t>("server_peak_rss_kib"), 0u);
    // Every message went out in Publish frames, none was re-sent.
    EXPECT_EQ(r.get<double>("target_counters.messages_sent"), 20'000);
    EXPECT_EQ(r.get<double>("target_counters.messages_resent"), 0);
    // The broker's own counters over the measured interval: it stored about
    // what was measured (the window's worth either side) and, with a
    // shard-aware client, forwarded nothing between shards.
    const auto publishes = r.get<double>("server_counters.publishes");
    EXPECT_GT(publishes, 0);
    EXPECT_LE(publishes, 20'000);
    EXPECT_EQ(r.get<double>("server_counters.forwards_sent"), 0);
    EXPECT_EQ(r.get<double>("server_counters.publish_errors"), 0);
    EXPECT_GT(r.get<double>("server_counters.loop_busy_s"), 0);
    // The broker was stopped and its data directory removed.
    EXPECT_TRUE(fs::is_empty(dir / "data")) << "left behind in " << (dir / "data");
    fs::remove_all(dir);
}

std::string started_broker_args(const fs::path& dir) {
    return "--start-broker --nagared " + std::string(NAGARED_PATH) + " --data " +
           (dir / "data").string();
}

TEST(NagareBench, ConsumeReadsBackTheFillAndJudgesTheRatio) {
    const auto dir = fresh_dir("consume");
    const auto json = dir / "result.json";
    const auto out = run_bench("consume " + started_broker_args(dir) +
                               " --messages 40000 --producers 2 --consumers 2 --durable"
                               " --durability none --json " +
                               json.string());
    ASSERT_EQ(out.status, 0) << out.text;
    EXPECT_NE(out.text.find("nagare fill "), std::string::npos) << out.text;
    EXPECT_NE(out.text.find("consume / publish msgs/s"), std::string::npos) << out.text;
    pt::ptree r;
    pt::read_json(json.string(), r);
    EXPECT_EQ(r.get<std::string>("scenario"), "consume");
    EXPECT_EQ(r.get<std::string>("phase"), "consume");
    EXPECT_EQ(r.get<std::string>("parameters.ack"), "explicit");
    EXPECT_EQ(r.get<int>("parameters.consumers"), 2);
    EXPECT_EQ(r.get<std::string>("parameters.consumer").rfind("bench-", 0), 0u);
    // The two subscribers shared the durable consumer: every message once in all.
    EXPECT_EQ(r.get<int>("errors"), 0);
    EXPECT_EQ(r.get<int>("lost"), 0);
    EXPECT_EQ(r.get<int>("duplicates"), 0);
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 40'000u);
    EXPECT_EQ(r.get<double>("target_counters.delivered"), 40'000);
    EXPECT_EQ(r.get<double>("target_counters.acks_sent"), 40'000);
    EXPECT_EQ(r.get<double>("target_counters.acks_dropped"), 0);
    const auto consume_rate = r.get<double>("msgs_per_s");
    EXPECT_GT(consume_rate, 0);
    EXPECT_EQ(r.get<std::string>("latency_us"), "null");
    // The broker applied acks during the measured interval.
    EXPECT_GT(r.get<double>("server_counters.acks"), 0);
    EXPECT_GT(r.get<double>("server_counters.deliver_frames"), 0);
    const auto& fill = r.get_child("phases").front().second;
    EXPECT_EQ(fill.get<std::string>("phase"), "fill");
    EXPECT_EQ(fill.get<std::uint64_t>("messages_total"), 40'000u);
    const auto publish_rate = fill.get<double>("msgs_per_s");
    EXPECT_GT(publish_rate, 0);
    // The verdict follows from the two rates (whatever they were on this machine).
    const auto ratio = r.get<double>("figures.consume_to_publish.value");
    EXPECT_NEAR(ratio, consume_rate / publish_rate, 0.001 + ratio * 0.001);
    EXPECT_DOUBLE_EQ(r.get<double>("figures.consume_to_publish.at_least"), 0.5);
    EXPECT_EQ(r.get<std::string>("figures.consume_to_publish.verdict"),
              ratio >= 0.5 ? "met" : "missed");
    EXPECT_TRUE(fs::is_empty(dir / "data")) << "left behind in " << (dir / "data");
    fs::remove_all(dir);
}

TEST(NagareBench, E2eMeasuresLatencyAtAFixedRate) {
    const auto dir = fresh_dir("e2e");
    const auto json = dir / "result.json";
    const auto out =
        run_bench("e2e " + started_broker_args(dir) +
                  " --rate 2000 --duration 1s --durability interval --json " + json.string());
    ASSERT_EQ(out.status, 0) << out.text;
    pt::ptree r;
    pt::read_json(json.string(), r);
    EXPECT_EQ(r.get<std::string>("scenario"), "e2e");
    EXPECT_EQ(r.get<int>("parameters.rate"), 2000);
    EXPECT_EQ(r.get<int>("errors"), 0);
    EXPECT_EQ(r.get<int>("lost"), 0);
    EXPECT_EQ(r.get<int>("duplicates"), 0);
    // 0.5 s of warm-up and 1 s measured at 2,000 msgs/s.
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 3000u);
    EXPECT_EQ(r.get<std::uint64_t>("messages_measured"), 2000u);
    EXPECT_EQ(r.get<std::uint64_t>("latency_us.count"), 2000u);
    EXPECT_NEAR(r.get<double>("msgs_per_s"), 2000, 400);
    const auto p50 = r.get<double>("latency_us.p50");
    EXPECT_GT(p50, 0);
    EXPECT_LE(p50, r.get<double>("latency_us.p99"));
    EXPECT_LE(r.get<double>("latency_us.p99"), r.get<double>("latency_us.p999"));
    EXPECT_LE(r.get<double>("latency_us.p999"), r.get<double>("latency_us.max"));
    EXPECT_EQ(r.get<double>("target_counters.delivered"), 3000);
    EXPECT_TRUE(fs::is_empty(dir / "data")) << "left behind in " << (dir / "data");
    fs::remove_all(dir);
}

TEST(NagareBench, FanoutDeliversEveryMessageToEverySubscriber) {
    const auto dir = fresh_dir("fanout");
    const auto json = dir / "result.json";
    const auto out = run_bench("fanout " + started_broker_args(dir) +
                               " --rate 1000 --duration 1s --subscribers 20 --connections 3"
                               " --json " +
                               json.string());
    ASSERT_EQ(out.status, 0) << out.text;
    pt::ptree r;
    pt::read_json(json.string(), r);
    EXPECT_EQ(r.get<std::string>("scenario"), "fanout");
    EXPECT_EQ(r.get<int>("parameters.subscribers"), 20);
    EXPECT_EQ(r.get<std::string>("parameters.via"), "broker");
    EXPECT_EQ(r.get<int>("errors"), 0);
    EXPECT_EQ(r.get<int>("lost"), 0);
    EXPECT_EQ(r.get<int>("duplicates"), 0);
    // 0.5 s of warm-up and 1 s measured at 1,000 msgs/s, to 20 subscribers.
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 30'000u);
    EXPECT_EQ(r.get<std::uint64_t>("messages_measured"), 20'000u);
    EXPECT_EQ(r.get<std::uint64_t>("latency_us.count"), 20'000u);
    EXPECT_NEAR(r.get<double>("msgs_per_s"), 20'000, 4'000);
    EXPECT_EQ(r.get<double>("target_counters.delivered"), 30'000);
    EXPECT_TRUE(fs::is_empty(dir / "data")) << "left behind in " << (dir / "data");
    fs::remove_all(dir);
}

TEST(NagareBench, FanoutThroughAStartedGatewayReachesEverySseClient) {
    const auto dir = fresh_dir("fanout-gateway");
    const auto json = dir / "result.json";
    const auto out = run_bench("fanout " + started_broker_args(dir) + " --start-gateway" +
                               " --nagare-gateway " + std::string(NAGARE_GATEWAY_PATH) +
                               " --rate 1000 --duration 1s --subscribers 20 --connections 2"
                               " --json " +
                               json.string());
    ASSERT_EQ(out.status, 0) << out.text;
    pt::ptree r;
    pt::read_json(json.string(), r);
    EXPECT_EQ(r.get<std::string>("target"), "nagare via gateway");
    EXPECT_TRUE(r.get<std::string>("parameters.via").starts_with("gateway http://127.0.0.1:"));
    EXPECT_EQ(r.get<int>("errors"), 0);
    EXPECT_EQ(r.get<int>("lost"), 0);
    EXPECT_EQ(r.get<int>("duplicates"), 0);
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 30'000u);
    EXPECT_EQ(r.get<std::uint64_t>("latency_us.count"), 20'000u);
    EXPECT_EQ(r.get<double>("target_counters.sse_events"), 30'020);  // and 20 welcomes
    EXPECT_EQ(r.get<double>("target_counters.sse_clients_failed"), 0);
    EXPECT_GT(r.get<double>("target_counters.gateway_cpu_s"), 0);
    EXPECT_TRUE(fs::is_empty(dir / "data")) << "left behind in " << (dir / "data");
    fs::remove_all(dir);
}

TEST(NagareBench, RefusesBadOptionsWithStatusTwo) {
    EXPECT_EQ(run_bench("publish --producers 0").status, 2);
    EXPECT_EQ(run_bench("publish --batch 5000").status, 2);
    EXPECT_EQ(run_bench("publish --durability always").status, 2);
    EXPECT_EQ(run_bench("publish --duration soon").status, 2);
    EXPECT_EQ(run_bench("publish --target kafka").status, 2);
    EXPECT_EQ(run_bench("publish --messages 10 --duration 1s").status, 2);
    EXPECT_EQ(run_bench("publish --start-broker --url nagare://127.0.0.1:1").status, 2);
    EXPECT_EQ(run_bench("publish --start-broker --nagared /nonexistent/nagared").status, 2);
    EXPECT_EQ(run_bench("consume --consumers 0").status, 2);
    EXPECT_EQ(run_bench("consume --ack sometimes").status, 2);
    EXPECT_EQ(run_bench("consume --max-inflight 100000").status, 2);
    EXPECT_EQ(run_bench("consume --duration 1s").status, 2);  // consume fills --messages
    EXPECT_EQ(run_bench("consume --idle-timeout never").status, 2);
    EXPECT_EQ(run_bench("e2e --rate 0").status, 2);
    EXPECT_EQ(run_bench("e2e --message-bytes 8").status, 2);
    EXPECT_EQ(run_bench("e2e --messages 10").status, 2);  // e2e runs for --duration
    EXPECT_EQ(run_bench("fanout --subscribers 0").status, 2);
    EXPECT_EQ(run_bench("fanout --message-bytes 64").status, 2);
    EXPECT_EQ(run_bench("fanout --via-gateway ftp://x").status, 2);
    EXPECT_EQ(run_bench("fanout --via-gateway http://a:1 --start-gateway").status, 2);
    EXPECT_EQ(run_bench("fanout --nagare-gateway /x").status, 2);  // needs --start-gateway
    EXPECT_EQ(
        run_bench("fanout --start-broker --start-gateway --nagare-gateway /nonexistent").status, 2);
}

TEST(NagareBench, UnreachableBrokerIsAOneLineFailure) {
    // Port 1 on loopback: nothing listens there.
    const auto out = run_bench("publish --url nagare://127.0.0.1:1 --messages 10");
    EXPECT_EQ(out.status, 2);
    EXPECT_NE(out.text.find("nagare-bench:"), std::string::npos) << out.text;
    EXPECT_EQ(std::count(out.text.begin(), out.text.end(), '\n'), 1) << out.text;
}

}  // namespace
}  // namespace nagare::bench
