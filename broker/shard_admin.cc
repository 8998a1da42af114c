// Stream admin on a shard: info and list answered from the shard's stream
// table. Creating and deleting streams at run time needs every shard to
// open or close partitions; until that lands, streams are declared in the
// config file and these requests get BAD_REQUEST with that advice.
#include "broker/node.h"
#include "broker/shard.h"
#include "protocol/routing.h"

namespace nagare::broker {

namespace fb = protocol::fb;

namespace {

flatbuffers::Offset<fb::StreamConfig> encode_config(flatbuffers::FlatBufferBuilder& b,
                                                    const stream_config& c) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> subjects;
    for (const auto& s : c.subjects) subjects.push_back(b.CreateString(s));
    return fb::CreateStreamConfig(b, b.CreateString(c.name), b.CreateVector(subjects), c.partitions,
                                  c.max_age_ms, c.max_bytes, c.segment_bytes,
                                  static_cast<std::uint32_t>(c.dedup_window_ms), c.durability,
                                  c.is_private);
}

}  // namespace

void shard::handle_admin(session& from, const fb::Admin& request) {
    auto& enc = from.encoder();
    enc.reset();
    auto& b = enc.builder();
    auto reply = [&](fb::ErrorCode error, std::string_view message,
                     std::vector<flatbuffers::Offset<fb::StreamInfo>> infos) {
        from.send_or_close(enc.finish(fb::CreateAdminResult(
            b, request.request_id(), error, b.CreateString(message), b.CreateVector(infos))));
    };
    const auto op = request.op();
    if (op != fb::AdminOp::STREAM_INFO && op != fb::AdminOp::STREAM_LIST) {
        reply(fb::ErrorCode::BAD_REQUEST,
              "streams are declared in the config file ([[streams]]) and created at start-up", {});
        return;
    }
    std::vector<flatbuffers::Offset<fb::StreamInfo>> infos;
    const auto wanted = protocol::view(request.stream());
    for (const auto& st : _streams->streams()) {
        if (op == fb::AdminOp::STREAM_INFO && st.config.name != wanted) continue;
        std::vector<flatbuffers::Offset<fb::PartitionInfo>> parts;
        for (std::uint32_t p = 0; p < st.config.partitions; ++p) {
            const auto owner = protocol::shard_for_partition(st.config.name, partition_id{p},
                                                             _node.shard_count());
            parts.push_back(fb::CreatePartitionInfo(b, p, owner.value, 0, 0, 0));
        }
        const auto config_offset = encode_config(b, st.config);
        infos.push_back(fb::CreateStreamInfo(b, config_offset, st.epoch, b.CreateVector(parts)));
    }
    if (op == fb::AdminOp::STREAM_INFO && infos.empty()) {
        reply(fb::ErrorCode::NO_SUCH_STREAM, "no stream named '" + std::string(wanted) + "'", {});
        return;
    }
    reply(fb::ErrorCode::NONE, "", std::move(infos));
}

}  // namespace nagare::broker
