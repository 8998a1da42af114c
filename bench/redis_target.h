// redis_target: the `redis` target of nagare-bench, Redis Streams through
// hiredis (issue 7).
//
// Mapping, like for like with nagare:
// - A stream `bench_<durability>` is one Redis stream key of that name.
//   Projects are not keys: every project's messages go to the one key, which
//   orders them all (nagare orders per project; one key orders more, and a
//   subscriber needs no list of projects). Each entry holds the fields
//   p <project> s <subject> id <msg_id> d <payload>.
// - Durability is the server's appendfsync (one setting per server):
//   fsync -> `appendonly yes, appendfsync always` (AOF written and fsynced
//   before the reply), interval -> `everysec`, none -> `no` (the kernel
//   flushes). prepare_stream refuses a server set otherwise.
// - Redis does not deduplicate: the msg_id is carried as a field only, a
//   repeated msg_id is stored again (never publish_outcome::duplicate).
// - publish: each connection is one socket and one I/O thread; publish()
//   encodes XADD key * ... and hands it to the thread, which writes
//   everything queued in one write (pipelining up to the in-flight window)
//   and resolves the sink in reply order (one reply per XADD, FIFO).
//   batch_messages has no Redis meaning: every XADD is its own command.
// - subscribe: a consumer group (durable: the consumer name, shared;
//   ephemeral: a fresh group destroyed at close), XREADGROUP COUNT
//   <inflight> BLOCK 100 ... >, each entry to the sink, then one XACK with
//   the batch's ids, pipelined before the next XREADGROUP. ack none: NOACK.
//   Each subscription is its own connection and thread (also on a
//   subscriber_connection).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "bench/target.h"

namespace nagare::bench {

struct redis_target_options {
    std::string url = "redis://127.0.0.1:6379";
};

// The appendfsync value for `mode`: "always", "everysec" or "no".
[[nodiscard]] std::string_view redis_appendfsync(durability mode) noexcept;
// "appendfsync always" etc.: the setting named next to the figures.
[[nodiscard]] std::string redis_durability_setting(durability mode);

[[nodiscard]] std::unique_ptr<target> make_redis_target(redis_target_options options);

}  // namespace nagare::bench
