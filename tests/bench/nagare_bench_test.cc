// nagare-bench itself: `publish --start-broker` against the real nagared,
// its JSON, and its refusals.
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

TEST(NagareBench, RefusesBadOptionsWithStatusTwo) {
    EXPECT_EQ(run_bench("publish --producers 0").status, 2);
    EXPECT_EQ(run_bench("publish --batch 5000").status, 2);
    EXPECT_EQ(run_bench("publish --durability always").status, 2);
    EXPECT_EQ(run_bench("publish --duration soon").status, 2);
    EXPECT_EQ(run_bench("publish --target kafka").status, 2);
    EXPECT_EQ(run_bench("publish --messages 10 --duration 1s").status, 2);
    EXPECT_EQ(run_bench("publish --start-broker --url nagare://127.0.0.1:1").status, 2);
    EXPECT_EQ(run_bench("publish --start-broker --nagared /nonexistent/nagared").status, 2);
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
