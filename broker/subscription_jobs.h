// Requests between a session's shard and the shards owning a stream's
// partitions (shard_consumers.cc). subscribe_job and detach_job are heap
// objects handed over the mesh (rare); ack_job comes from the sender's pool
// and goes back to it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "broker/consumer.h"
#include "broker/consumer_config.h"
#include "protocol/errc.h"
#include "protocol/frame.h"

namespace nagare::broker {

struct subscribe_job {
    consumer_config config;
    std::uint64_t stream_epoch = 0;
    subscriber_address subscriber;
    std::uint32_t owner = 0;
    protocol::errc error = protocol::errc::none;
    std::string message;
    std::uint64_t handle = 0;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> starts;
};

struct detach_job {
    std::uint64_t handle = 0;
    std::uint32_t owner = 0;
    subscriber_address subscriber;
    protocol::errc reason = protocol::errc::none;
    std::string message;
};

struct ack_job {
    std::uint64_t handle = 0;
    protocol::fb::AckKind kind = protocol::fb::AckKind::ACK;
    std::uint32_t nak_delay_ms = 0;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> positions;
    subscriber_address from;
    std::uint32_t owner = 0;
    std::uint32_t unknown = 0;
};

}  // namespace nagare::broker
