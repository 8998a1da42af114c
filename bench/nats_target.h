// nats_target: the `nats` target of nagare-bench, NATS JetStream through the
// NATS C client (libnats, <nats/nats.h>).
//
// Streams: `bench_<durability>` with subjects `bench.<durability>.>`, file
// storage, a 30 s duplicate window. JetStream 2.9 has no fsync before the
// ack (no sync option; it syncs every 2 minutes): every durability maps to
// the same setting, named in description().
// Publishing: each connection is one natsConnection with its JetStream
// context; js_PublishMsgAsync with the scenario's msg_id as `Nats-Msg-Id`,
// in-flight window = PublishAsync.MaxPending; the ack handler resolves the
// sink exactly once per accepted message. JetStream has no projects: the
// project is not sent (the subject alone routes).
// Consuming: a pull consumer (durable: created if missing and bound, kept on
// close; ephemeral: created by the subscription, removed on close) with
// FilterSubject, AckExplicit or AckNone and MaxAckPending; one thread per
// subscription fetches batches, hands each message to the sink and acks it
// (natsMsg_Ack, asynchronous); drain() flushes the connection.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "bench/target.h"

namespace nagare::bench {

struct nats_target_options {
    std::string url = "nats://127.0.0.1:4222";
};

// How every durability maps onto JetStream 2.9, for reports.
inline constexpr std::string_view nats_durability_description =
    "jetstream file storage, sync every 2 min (default), ack after write to page cache; "
    "fsync-before-ack is not available in nats-server 2.9";

[[nodiscard]] std::unique_ptr<target> make_nats_target(nats_target_options options);

}  // namespace nagare::bench
