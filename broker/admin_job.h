// One admin request on its way through the shards (shard_admin.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "broker/consumer_config.h"
#include "broker/streams.h"
#include "protocol/frame.h"

namespace nagare::broker {

// What one shard knows of one consumer (its partitions only).
struct consumer_report {
    consumer_config config;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> ack_floors;  // (partition, floor)
    std::uint64_t pending = 0;  // in flight + not yet delivered
    std::uint64_t redelivered = 0;
    std::uint64_t dead_lettered = 0;
    std::uint64_t terminated = 0;
};

struct partition_stats {
    std::uint64_t first_offset = 0;
    std::uint64_t next_offset = 0;
    std::uint64_t bytes = 0;
};

struct admin_job {
    std::uint64_t request_id = 0;
    protocol::fb::AdminOp op = protocol::fb::AdminOp::STREAM_LIST;
    std::string stream;
    std::string consumer;
    std::unique_ptr<protocol::fb::StreamConfigT> config;
    std::uint32_t origin = 0;
    std::uint32_t session_slot = 0;
    std::uint32_t session_generation = 0;

    protocol::fb::ErrorCode error = protocol::fb::ErrorCode::NONE;
    std::string message;
    stream_table_ptr table;  // the streams after the operation
    std::vector<std::vector<partition_stats>> stats;  // [stream in table][partition]
    std::uint32_t waiting = 0;  // shards yet to report applied
    bool retiring = false;      // this shard's part waits for partitions to close
    bool internal = false;      // asked by a shard (a dead-letter stream), no session waits
    std::vector<std::vector<consumer_report>> consumers;  // [shard]: CONSUMER_* results
};

}  // namespace nagare::broker
