#include "client/routing_table.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/routing.h"

namespace nagare::client {
namespace {

namespace fb = protocol::fb;

struct hello_bytes {
    flatbuffers::FlatBufferBuilder builder;
    const fb::HelloOk* hello = nullptr;
};

// A HelloOk with `events` (4 partitions) and `audit` (audit.>, 2 partitions).
void build(hello_bytes& out, std::vector<std::uint16_t> ports, std::uint32_t shard_count,
           fb::PartitionRule rule = fb::PartitionRule::XXH3_64) {
    fb::HelloOkT ok;
    ok.protocol_version = 1;
    ok.shard_count = shard_count;
    ok.partition_rule = rule;
    ok.shard_ports = std::move(ports);
    for (const auto& [name, subjects, partitions] :
         std::vector<std::tuple<std::string, std::vector<std::string>, std::uint32_t>>{
             {"events", {}, 4},
             {"audit", {"audit.>", "bad..pattern"}, 2},
             {"orders", {"order.*"}, 0}}) {
        auto route = std::make_unique<fb::StreamRouteT>();
        route->name = name;
        route->subjects = subjects;
        route->partitions = partitions;
        ok.streams.push_back(std::move(route));
    }
    out.builder.Finish(fb::HelloOk::Pack(out.builder, &ok));
    out.hello = flatbuffers::GetRoot<fb::HelloOk>(out.builder.GetBufferPointer());
}

std::uint16_t expected_port(const std::vector<std::uint16_t>& ports, std::string_view stream,
                            std::uint32_t partitions, std::string_view project) {
    const auto partition = protocol::partition_for_project(project, partitions);
    return ports[protocol::shard_for_partition(stream, partition,
                                               static_cast<std::uint32_t>(ports.size()))
                     .value];
}

TEST(RoutingTable, SubjectPicksStreamThenProjectPicksShard) {
    hello_bytes h;
    const std::vector<std::uint16_t> ports{5001, 5002, 5003};
    build(h, ports, 3);
    const auto table = routing_table::from_hello(*h.hello, 4150, true);
    ASSERT_TRUE(table.shard_aware());
    int hits_per_port[3] = {};
    for (int i = 0; i < 200; ++i) {
        const auto project = "p-" + std::to_string(i);
        const auto events_port = table.port_for(project, "task.updated");
        EXPECT_EQ(events_port, expected_port(ports, "events", 4, project));
        EXPECT_EQ(table.port_for(project, "audit.login.failed"),
                  expected_port(ports, "audit", 2, project));
        ++hits_per_port[events_port - 5001];
    }
    for (const int hits : hits_per_port) EXPECT_GT(hits, 0);
}

TEST(RoutingTable, StreamWithoutPartitionsGoesToTheMainPort) {
    hello_bytes h;
    build(h, {5001, 5002}, 2);
    const auto table = routing_table::from_hello(*h.hello, 4150, true);
    EXPECT_EQ(table.port_for("p", "order.created"), 4150);
}

TEST(RoutingTable, PlainWhenOffOrUnusable) {
    {
        hello_bytes h;
        build(h, {5001, 5002}, 2);
        EXPECT_FALSE(routing_table::from_hello(*h.hello, 4150, false).shard_aware());
    }
    {
        hello_bytes h;
        build(h, {}, 2);  // no shard ports
        const auto table = routing_table::from_hello(*h.hello, 4150, true);
        EXPECT_FALSE(table.shard_aware());
        EXPECT_EQ(table.port_for("p", "task.updated"), 4150);
    }
    {
        hello_bytes h;
        build(h, {5001, 5002}, 3);  // count and ports disagree
        EXPECT_FALSE(routing_table::from_hello(*h.hello, 4150, true).shard_aware());
    }
    {
        hello_bytes h;
        build(h, {5001, 0}, 2);  // a zero port
        EXPECT_FALSE(routing_table::from_hello(*h.hello, 4150, true).shard_aware());
    }
    {
        hello_bytes h;
        build(h, {5001, 5002}, 2, static_cast<fb::PartitionRule>(7));  // unknown rule
        EXPECT_FALSE(routing_table::from_hello(*h.hello, 4150, true).shard_aware());
    }
}

}  // namespace
}  // namespace nagare::client
