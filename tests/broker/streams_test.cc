#include "broker/streams.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace nagare::broker {
namespace {

namespace fs = std::filesystem;

class Streams : public ::testing::Test {
protected:
    void SetUp() override {
        _dir = fs::temp_directory_path() /
               ("nagare-streams-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(_dir);
    }
    void TearDown() override { fs::remove_all(_dir); }
    fs::path _dir;
};

stream_info stream(std::string name, std::vector<std::string> subjects) {
    stream_info s{.config = {.name = std::move(name), .subjects = std::move(subjects)},
                  .epoch = new_epoch()};
    s.config.partitions = 2;
    return s;
}

TEST_F(Streams, FirstStartCreatesEventsWithOnePartitionPerShard) {
    stream_store store(_dir);
    node_config config;
    config.shards = 3;
    auto streams = reconcile_streams(store, config);
    ASSERT_TRUE(streams.has_value()) << streams.error();
    ASSERT_EQ(streams->size(), 1u);
    EXPECT_EQ((*streams)[0].config.name, "events");
    EXPECT_EQ((*streams)[0].config.partitions, 3u);
    EXPECT_NE((*streams)[0].epoch, 0u);
    // A restart with other shards keeps partitions and epoch.
    config.shards = 1;
    auto again = reconcile_streams(store, config);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ((*again)[0].config.partitions, 3u);
    EXPECT_EQ((*again)[0].epoch, (*streams)[0].epoch);
}

TEST_F(Streams, ConfigStreamsAreCreatedAndUpdatedButKeepPartitionsAndEpoch) {
    stream_store store(_dir);
    node_config config;
    config.shards = 2;
    config.streams.push_back({.name = "audit", .subjects = {"audit.>"}, .is_private = true});
    auto first = reconcile_streams(store, config);
    ASSERT_TRUE(first.has_value()) << first.error();
    ASSERT_EQ(first->size(), 2u);
    const stream_table first_table(*first);
    const auto* audit = first_table.find("audit");
    ASSERT_NE(audit, nullptr);
    EXPECT_TRUE(audit->config.is_private);
    config.streams[0].max_age_ms = 1000;
    config.streams[0].partitions = 8;
    auto second = reconcile_streams(store, config);
    ASSERT_TRUE(second.has_value());
    const stream_table second_table(*second);
    const auto* updated = second_table.find("audit");
    EXPECT_EQ(updated->config.max_age_ms, 1000u);
    EXPECT_EQ(updated->config.partitions, 2u);
    EXPECT_EQ(updated->epoch, audit->epoch);
    auto reloaded = store.load();
    ASSERT_TRUE(reloaded.has_value());
    const stream_table reloaded_table(*reloaded);
    EXPECT_EQ(reloaded_table.find("audit")->config.max_age_ms, 1000u);
}

TEST_F(Streams, RoutingPicksTheMatchingStreamElseEvents) {
    stream_table table({stream("events", {">"}), stream("audit", {"audit.>"}),
                        stream("orders", {"order.*", "stock.>"})});
    EXPECT_EQ(table.route("audit.login").config.name, "audit");
    EXPECT_EQ(table.route("order.created").config.name, "orders");
    EXPECT_EQ(table.route("stock.item.depleted").config.name, "orders");
    EXPECT_EQ(table.route("order.tasks.reordered").config.name, "events");
    EXPECT_EQ(table.route("task.updated").config.name, "events");
}

TEST_F(Streams, OverlappingOrDuplicateStreamsAreRefused) {
    stream_table table({stream("events", {">"}), stream("audit", {"audit.>"})});
    EXPECT_TRUE(table.admits({.name = "tasks", .subjects = {"task.*"}}).has_value());
    auto dup = table.admits({.name = "audit", .subjects = {"x.y"}});
    ASSERT_FALSE(dup.has_value());
    EXPECT_NE(dup.error().find("exists"), std::string::npos);
    auto overlap = table.admits({.name = "logins", .subjects = {"*.login"}});
    ASSERT_FALSE(overlap.has_value());
    EXPECT_NE(overlap.error().find("overlap"), std::string::npos);
}

TEST_F(Streams, BrokenStreamFileIsReportedWithItsPath) {
    stream_store store(_dir);
    ASSERT_TRUE(store.save(stream("events", {">"})).has_value());
    {
        std::ofstream out(_dir / "events" / "stream.toml", std::ios::trunc);
        out << "epoch = \"x\"\n";
    }
    auto loaded = store.load();
    ASSERT_FALSE(loaded.has_value());
    EXPECT_NE(loaded.error().find("stream.toml"), std::string::npos);
}

TEST_F(Streams, RemoveDeletesTheDirectory) {
    stream_store store(_dir);
    ASSERT_TRUE(store.save(stream("audit", {"audit.>"})).has_value());
    fs::create_directories(_dir / "audit" / "0");
    ASSERT_TRUE(store.remove("audit").has_value());
    EXPECT_FALSE(fs::exists(_dir / "audit"));
}

}  // namespace
}  // namespace nagare::broker
