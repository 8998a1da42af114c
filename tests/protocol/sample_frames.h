// One frame of every body type, with every field set, for codec tests. The
// frames are described with the FlatBuffers object API (FrameT), packed,
// and compared after decoding with the generated operator==.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "protocol/frame.h"

namespace nagare::protocol::testing {

using frame_bytes = std::vector<std::byte>;

inline frame_bytes copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

inline frame_bytes pack(const fb::FrameT& frame) {
    flatbuffers::FlatBufferBuilder b;
    b.FinishSizePrefixed(fb::Frame::Pack(b, &frame), fb::FrameIdentifier());
    const auto* data = reinterpret_cast<const std::byte*>(b.GetBufferPointer());
    return {data, data + b.GetSize()};
}

template <class T>
fb::FrameT frame_of(T body) {
    fb::FrameT frame;
    frame.body.Set(std::move(body));
    return frame;
}

inline std::unique_ptr<fb::HeaderT> header(std::string key, std::string value) {
    auto h = std::make_unique<fb::HeaderT>();
    h->key = std::move(key);
    h->value = std::move(value);
    return h;
}

inline std::unique_ptr<fb::StreamConfigT> stream_config() {
    auto c = std::make_unique<fb::StreamConfigT>();
    c->name = "audit";
    c->subjects = {"audit.>"};
    c->partitions = 4;
    c->max_age_ms = 86'400'000;
    c->max_bytes = 1ULL << 40;
    c->segment_bytes = 64u << 20;
    c->dedup_window_ms = 30'000;
    c->durability = fb::Durability::INTERVAL;
    c->private_stream = true;
    return c;
}

// Frames in the order of the Body union (Hello .. Error), all fields set.
inline std::vector<fb::FrameT> sample_frame_objects() {
    std::vector<fb::FrameT> out;

    fb::HelloT hello;
    hello.protocol_version = protocol_version;
    hello.client_name = "worker-1";
    hello.auth_token = "secret-token";
    out.push_back(frame_of(std::move(hello)));

    fb::HelloOkT hello_ok;
    hello_ok.server_id = "node-a";
    hello_ok.protocol_version = protocol_version;
    hello_ok.shard_count = 2;
    hello_ok.shard_ports = {4151, 4152};
    hello_ok.max_frame_bytes = 8u << 20;
    hello_ok.max_payload_bytes = 1u << 20;
    hello_ok.max_pending_publish = 4096;
    auto route = std::make_unique<fb::StreamRouteT>();
    route->name = "events";
    route->subjects = {">"};
    route->partitions = 2;
    route->epoch = 0xfeedULL;
    hello_ok.streams.push_back(std::move(route));
    out.push_back(frame_of(std::move(hello_ok)));

    fb::PublishT publish;
    publish.request_id = 42;
    for (int i = 0; i < 3; ++i) {
        auto m = std::make_unique<fb::PublishMessageT>();
        m->project = "proj-" + std::to_string(i);
        m->subject = i == 0 ? "task.updated" : "order.tasks.reordered";
        m->msg_id = "01J00000000000000000000A" + std::to_string(i);
        m->headers.push_back(header("trace_id", "t-" + std::to_string(i)));
        m->headers.push_back(header("source", "api"));
        m->payload.assign(128, static_cast<std::uint8_t>('a' + i));
        publish.messages.push_back(std::move(m));
    }
    out.push_back(frame_of(std::move(publish)));

    fb::PubAckT pub_ack;
    pub_ack.request_id = 42;
    pub_ack.streams = {"events", "audit"};
    pub_ack.entries = {fb::PubAckEntry(7, 1, 0, fb::ErrorCode::NONE, false),
                       fb::PubAckEntry(3, 0, 1, fb::ErrorCode::NONE, true),
                       fb::PubAckEntry(0, 0, 0, fb::ErrorCode::BAD_SUBJECT, false)};
    out.push_back(frame_of(std::move(pub_ack)));

    fb::SubscribeT subscribe;
    subscribe.subscription_id = 9;
    subscribe.stream = "events";
    subscribe.consumer = "projector";
    subscribe.project = "proj-1";
    subscribe.subjects = {"task.*", "order.>"};
    subscribe.deliver = fb::DeliverPolicy::FROM_TIME;
    subscribe.start_offset = 100;
    subscribe.start_time_ns = 1'700'000'000'000'000'000ULL;
    subscribe.ack = fb::AckPolicy::EXPLICIT;
    subscribe.ack_wait_ms = 30'000;
    subscribe.max_deliver = 5;
    subscribe.backoff_ms = {1000, 5000, 10000};
    subscribe.max_inflight = 1024;
    subscribe.ordered = true;
    out.push_back(frame_of(std::move(subscribe)));

    fb::SubOkT sub_ok;
    sub_ok.subscription_id = 9;
    sub_ok.stream_epoch = 0xabcdULL;
    sub_ok.start_positions = {fb::PartitionPosition(0, 100), fb::PartitionPosition(1, 200)};
    out.push_back(frame_of(std::move(sub_ok)));

    fb::DeliverT deliver;
    deliver.subscription_id = 9;
    for (std::uint32_t i = 0; i < 2; ++i) {
        auto m = std::make_unique<fb::DeliverMessageT>();
        m->partition = i;
        m->offset = 100 + i;
        m->project = "proj-1";
        m->subject = "task.updated";
        m->msg_id = "id-" + std::to_string(i);
        m->timestamp_ns = 1'700'000'000'000'000'000ULL + i;
        m->delivery_count = 2;
        m->headers.push_back(header("correlation_id", "c-1"));
        m->payload = {'{', '}'};
        deliver.messages.push_back(std::move(m));
    }
    out.push_back(frame_of(std::move(deliver)));

    fb::AckT ack;
    ack.subscription_id = 9;
    ack.kind = fb::AckKind::NAK;
    ack.nak_delay_ms = 2000;
    ack.positions = {fb::PartitionPosition(1, 100), fb::PartitionPosition(0, 7)};
    out.push_back(frame_of(std::move(ack)));

    fb::UnsubscribeT unsubscribe;
    unsubscribe.subscription_id = 9;
    out.push_back(frame_of(std::move(unsubscribe)));

    fb::AdminT admin;
    admin.request_id = 77;
    admin.op = fb::AdminOp::STREAM_CREATE;
    admin.stream = "audit";
    admin.consumer = "projector";
    admin.config = stream_config();
    out.push_back(frame_of(std::move(admin)));

    fb::AdminResultT result;
    result.request_id = 77;
    result.error = fb::ErrorCode::NONE;
    result.message = "ok";
    auto info = std::make_unique<fb::StreamInfoT>();
    info->config = stream_config();
    info->epoch = 0x1234ULL;
    auto part = std::make_unique<fb::PartitionInfoT>();
    part->partition = 0;
    part->shard = 1;
    part->first_offset = 0;
    part->next_offset = 10;
    part->bytes = 4096;
    info->partitions.push_back(std::move(part));
    result.streams.push_back(std::move(info));
    auto consumer = std::make_unique<fb::ConsumerInfoT>();
    consumer->stream = "events";
    consumer->name = "projector";
    consumer->project = "proj-1";
    consumer->subjects = {"task.*"};
    consumer->ack_wait_ms = 30'000;
    consumer->max_deliver = 5;
    consumer->max_inflight = 1024;
    consumer->ordered = true;
    consumer->ack_floors = {fb::PartitionPosition(0, 5)};
    consumer->pending = 3;
    consumer->redelivered = 2;
    consumer->dead_lettered = 1;
    consumer->terminated = 1;
    result.consumers.push_back(std::move(consumer));
    out.push_back(frame_of(std::move(result)));

    fb::PingT ping;
    ping.nonce = 5;
    out.push_back(frame_of(std::move(ping)));

    fb::PongT pong;
    pong.nonce = 5;
    out.push_back(frame_of(std::move(pong)));

    fb::ErrorT error;
    error.request_id = 42;
    error.code = fb::ErrorCode::BAD_SUBJECT;
    error.message = "subject 'x' has one token";
    out.push_back(frame_of(std::move(error)));
    return out;
}

inline std::vector<frame_bytes> sample_frames() {
    std::vector<frame_bytes> out;
    for (const auto& f : sample_frame_objects()) out.push_back(pack(f));
    return out;
}

inline frame_bytes concat(const std::vector<frame_bytes>& frames) {
    frame_bytes all;
    for (const auto& f : frames) all.insert(all.end(), f.begin(), f.end());
    return all;
}

// Reads every field of a verified frame (the object API unpacks all of it),
// so a verifier gap shows up as a sanitizer report.
inline std::unique_ptr<fb::FrameT> unpack(const frame_view& view) {
    return std::unique_ptr<fb::FrameT>(view.frame->UnPack());
}

}  // namespace nagare::protocol::testing
