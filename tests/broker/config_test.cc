#include "broker/config.h"
#include "protocol/units.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

namespace nagare::broker {
namespace {

std::expected<node_config, parse_failure> parse(std::vector<const char*> args) {
    args.insert(args.begin(), "nagared");
    return parse_node_config(static_cast<int>(args.size()), args.data());
}

TEST(Config, DefaultsAreTheDocumentedOnes) {
    auto c = parse({"--shards", "2"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->data_dir, "data");
    EXPECT_EQ(c->port, 4150);
    EXPECT_EQ(c->admin_port, 8222);
    EXPECT_EQ(c->shards, 2u);
    EXPECT_EQ(c->max_frame_bytes, 8u << 20);
    EXPECT_EQ(c->max_pending_publish, 4096u);
    EXPECT_EQ(c->fsync_interval_ms, 50u);
    EXPECT_TRUE(c->tokens.empty());
}

TEST(Config, FlagsOverrideTheFile) {
    const auto path = std::filesystem::temp_directory_path() / "nagare-config-test.toml";
    {
        std::ofstream out(path);
        out << "port = 5000\nadmin_port = 9000\ndata = \"/var/lib/nagare\"\nfsync_interval = \"20ms\"\n"
               "[[streams]]\nname = \"audit\"\nsubjects = [\"audit.>\"]\nprivate = true\n"
               "max_age = \"30d\"\ndurability = \"interval\"\nsegment_bytes = \"8MiB\"\n"
               "[[tokens]]\ntoken = \"t1\"\npublish = [\"task.>\"]\nadmin = true\n";
    }
    auto c = parse({"--config", path.c_str(), "--port", "6000", "--shards", "1"});
    std::filesystem::remove(path);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->port, 6000);        // flag wins
    EXPECT_EQ(c->admin_port, 9000);  // file value kept
    EXPECT_EQ(c->data_dir, "/var/lib/nagare");
    EXPECT_EQ(c->fsync_interval_ms, 20u);
    ASSERT_EQ(c->streams.size(), 1u);
    EXPECT_EQ(c->streams[0].name, "audit");
    EXPECT_TRUE(c->streams[0].is_private);
    EXPECT_EQ(c->streams[0].max_age_ms, 30ULL * 86'400'000);
    EXPECT_EQ(c->streams[0].segment_bytes, 8u << 20);
    EXPECT_EQ(c->streams[0].durability, protocol::fb::Durability::INTERVAL);
    ASSERT_EQ(c->tokens.size(), 1u);
    EXPECT_EQ(c->tokens[0].publish, std::vector<std::string>{"task.>"});
    EXPECT_EQ(c->tokens[0].subscribe, std::vector<std::string>{">"});
    EXPECT_TRUE(c->tokens[0].admin);
}

TEST(Config, BadInputGivesOneClearLine) {
    struct {
        const char* toml;
        const char* expected_fragment;
    } cases[] = {
        {"port = \"abc\"", "port"},
        {"portt = 1", "unknown key 'portt'"},
        {"[[streams]]\nname = \"a b\"\nsubjects = [\">\"]", "stream name"},
        {"[[streams]]\nname = \"x\"\nsubjects = [\"a.>.b\"]", "not a valid subject pattern"},
        {"[[streams]]\nname = \"x\"\nsubjects = [\">\"]\ndurability = \"sometimes\"", "durability"},
        {"[[streams]]\nname = \"x\"\nsubjects = [\">\"]\nmax_age = \"3 weeks\"", "max_age"},
        {"[[tokens]]\npublish = [\">\"]", "non-empty token"},
        {"port = [", "line 1"},
    };
    for (const auto& c : cases) {
        auto r = apply_toml(c.toml, node_config{});
        ASSERT_FALSE(r.has_value()) << c.toml;
        EXPECT_NE(r.error().find(c.expected_fragment), std::string::npos)
            << c.toml << " -> " << r.error();
        EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
    }
    auto bad_flag = parse({"--port", "99999"});
    ASSERT_FALSE(bad_flag.has_value());
    auto missing_file = parse({"--config", "/nonexistent/nagare.toml"});
    ASSERT_FALSE(missing_file.has_value());
    EXPECT_NE(missing_file.error().message.find("cannot read"), std::string::npos);
    auto help = parse({"--help"});
    ASSERT_FALSE(help.has_value());
    EXPECT_TRUE(help.error().help_requested);
}

TEST(Config, DurationsAndSizes) {
    EXPECT_EQ(protocol::parse_duration_ms("250").value(), 250u);
    EXPECT_EQ(protocol::parse_duration_ms("250ms").value(), 250u);
    EXPECT_EQ(protocol::parse_duration_ms("30s").value(), 30'000u);
    EXPECT_EQ(protocol::parse_duration_ms("7d").value(), 7ULL * 86'400'000);
    EXPECT_FALSE(protocol::parse_duration_ms("7 d").has_value());
    EXPECT_FALSE(protocol::parse_duration_ms("-1s").has_value());
    EXPECT_EQ(protocol::parse_bytes("64MiB").value(), 64u << 20);
    EXPECT_EQ(protocol::parse_bytes("1GB").value(), 1'000'000'000u);
    EXPECT_FALSE(protocol::parse_bytes("99999999999999999999GiB").has_value());
    EXPECT_FALSE(protocol::parse_bytes("12parsecs").has_value());
}

}  // namespace
}  // namespace nagare::broker
