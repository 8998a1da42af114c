#include "protocol/routing.h"

#include <gtest/gtest.h>

#include <xxhash.h>

#include <string>
#include <vector>

namespace nagare::protocol {
namespace {

TEST(Routing, PartitionIsXxh3OfProjectModuloPartitions) {
    const std::string project = "proj-42";
    const auto expected = XXH3_64bits(project.data(), project.size()) % 7;
    EXPECT_EQ(partition_for_project(project, 7).value, expected);
    EXPECT_EQ(partition_for_project(project, 1).value, 0u);
}

TEST(Routing, ProjectsSpreadOverPartitions) {
    std::vector<int> counts(8);
    for (int i = 0; i < 8000; ++i) {
        ++counts[partition_for_project("project-" + std::to_string(i), 8).value];
    }
    for (const int c : counts) {
        EXPECT_GT(c, 800);
        EXPECT_LT(c, 1200);
    }
}

TEST(Routing, ShardOwnerRotatesWithStreamHash) {
    const auto h = hash64("events");
    for (std::uint32_t p = 0; p < 6; ++p) {
        EXPECT_EQ(shard_for_partition("events", partition_id{p}, 4).value, (h + p) % 4);
    }
    // Consecutive partitions land on different shards.
    EXPECT_NE(shard_for_partition("audit", partition_id{0}, 2),
              shard_for_partition("audit", partition_id{1}, 2));
}

}  // namespace
}  // namespace nagare::protocol
