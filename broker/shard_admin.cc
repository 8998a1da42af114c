// Stream admin across shards. Shard 0 owns the stream metadata and runs one
// job at a time:
//   origin shard --admin_request--> shard 0: validate, persist, new table
//   shard 0 --admin_apply--> every shard: adopt the table (open partitions
//       of a new stream, retire those of a deleted one), fill partition stats
//   every shard --admin_applied--> shard 0 (after retired partitions closed):
//       remove a deleted stream's directory
//   shard 0 --admin_done--> origin: the session gets its AdminResult.
// Blocking file work (stream.toml, opening partitions) happens on the shard
// thread here: admin is rare and small.
#include <spdlog/spdlog.h>

#include "broker/admin_job.h"
#include "broker/node.h"
#include "broker/shard.h"
#include "protocol/routing.h"
#include "protocol/validate.h"

namespace nagare::broker {

namespace fb = protocol::fb;
using protocol::errc;


namespace {

stream_config from_wire(const fb::StreamConfigT& c, std::uint32_t shards) {
    stream_config s;
    s.name = c.name;
    s.subjects = c.subjects;
    s.partitions = c.partitions == 0 ? shards : c.partitions;
    if (c.max_age_ms != 0) s.max_age_ms = c.max_age_ms;
    s.max_bytes = c.max_bytes;
    if (c.segment_bytes != 0) s.segment_bytes = c.segment_bytes;
    if (c.dedup_window_ms != 0) s.dedup_window_ms = c.dedup_window_ms;
    s.durability = c.durability;
    s.is_private = c.private_stream;
    return s;
}

flatbuffers::Offset<fb::StreamConfig> encode_config(flatbuffers::FlatBufferBuilder& b,
                                                    const stream_config& c) {
    std::vector<flatbuffers::Offset<flatbuffers::String>> subjects;
    for (const auto& s : c.subjects) subjects.push_back(b.CreateString(s));
    return fb::CreateStreamConfig(b, b.CreateString(c.name), b.CreateVector(subjects), c.partitions,
                                  c.max_age_ms, c.max_bytes, c.segment_bytes,
                                  static_cast<std::uint32_t>(c.dedup_window_ms), c.durability,
                                  c.is_private);
}

// Merges the shards' reports of each consumer (each shard saw its partitions).
flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::ConsumerInfo>>> encode_consumers(
    flatbuffers::FlatBufferBuilder& b, const admin_job& job) {
    std::vector<consumer_report> merged;
    for (const auto& reports : job.consumers) {
        for (const auto& r : reports) {
            auto it = std::ranges::find_if(merged, [&](const auto& m) { return m.config.name == r.config.name; });
            if (it == merged.end()) {
                merged.push_back(r);
                continue;
            }
            it->ack_floors.insert(it->ack_floors.end(), r.ack_floors.begin(), r.ack_floors.end());
            it->pending += r.pending;
            it->redelivered += r.redelivered;
            it->dead_lettered += r.dead_lettered;
            it->terminated += r.terminated;
        }
    }
    std::ranges::sort(merged, {}, [](const auto& m) { return m.config.name; });
    std::vector<flatbuffers::Offset<fb::ConsumerInfo>> out;
    for (auto& m : merged) {
        std::ranges::sort(m.ack_floors);
        std::vector<fb::PartitionPosition> floors;
        for (const auto& [p, o] : m.ack_floors) floors.emplace_back(p, o);
        std::vector<flatbuffers::Offset<flatbuffers::String>> subjects;
        for (const auto& s : m.config.subjects) subjects.push_back(b.CreateString(s));
        const auto& c = m.config;
        out.push_back(fb::CreateConsumerInfo(
            b, b.CreateString(c.stream), b.CreateString(c.name), b.CreateString(c.project),
            b.CreateVector(subjects), c.ack_explicit ? fb::AckPolicy::EXPLICIT : fb::AckPolicy::NONE,
            c.ack_wait_ms, c.max_deliver, c.max_inflight, c.ordered, b.CreateVectorOfStructs(floors),
            m.pending, m.redelivered, m.dead_lettered, m.terminated));
    }
    return b.CreateVector(out);
}

bool mutates(fb::AdminOp op) {
    return op == fb::AdminOp::STREAM_CREATE || op == fb::AdminOp::STREAM_UPDATE ||
           op == fb::AdminOp::STREAM_DELETE || op == fb::AdminOp::CONSUMER_DELETE;
}

}  // namespace

void shard::send_to(shard_id to, mesh_kind kind, void* object) noexcept {
    const mesh_message m{.kind = static_cast<std::uint16_t>(kind), .arg = to.value, .object = object};
    if (_node.mesh().push(_id, to, m)) {
        _wakers[to.value]->wake();
    } else {
        _unsent.push_back(m);
    }
}

void shard::handle_admin(session& from, const fb::Admin& request) {
    auto* job = new admin_job;
    job->request_id = request.request_id();
    job->op = request.op();
    job->stream = std::string(protocol::view(request.stream()));
    job->consumer = std::string(protocol::view(request.consumer()));
    if (request.config() != nullptr) job->config.reset(request.config()->UnPack());
    job->origin = _id.value;
    job->session_slot = from.slot();
    job->session_generation = from.generation();
    if (mutates(job->op) && from.token() != nullptr && !from.token()->admin) {
        job->error = fb::ErrorCode::NOT_AUTHORIZED;
        job->message = "stream admin needs a token with admin = true";
        answer_admin(job);
        return;
    }
    if (_id.value == 0) {
        start_admin_job(job);
    } else {
        send_to(shard_id{0}, mesh_kind::admin_request, job);
    }
}

void shard::on_admin_message(mesh_kind kind, admin_job* job) noexcept {
    switch (kind) {
        case mesh_kind::admin_request: start_admin_job(job); break;
        case mesh_kind::admin_apply: apply_admin(job); break;
        case mesh_kind::admin_applied:
            if (--job->waiting == 0) finish_admin(job);
            break;
        case mesh_kind::admin_done: answer_admin(job); break;
        default: break;
    }
}

void shard::start_admin_job(admin_job* job) noexcept {
    NG_ASSERT(_id.value == 0, "stream metadata lives on shard 0");
    if (_admin_running != nullptr) {
        _admin_queue.push_back(job);
        return;
    }
    _admin_running = job;
    auto refuse = [&](fb::ErrorCode code, std::string message) {
        job->error = code;
        job->message = std::move(message);
        job->waiting = 1;
        finish_admin(job);
    };
    std::vector<stream_info> next(_streams->streams().begin(), _streams->streams().end());
    switch (job->op) {
        case fb::AdminOp::STREAM_CREATE: {
            if (!job->config) return refuse(fb::ErrorCode::BAD_REQUEST, "create needs a config");
            auto wanted = from_wire(*job->config, _node.shard_count());
            if (auto ok = validate(wanted); !ok) return refuse(fb::ErrorCode::BAD_REQUEST, ok.error());
            if (const auto* existing = _streams->find(wanted.name)) {
                return refuse(fb::ErrorCode::STREAM_EXISTS,
                              "stream '" + wanted.name + "' exists (" +
                                  std::to_string(existing->config.partitions) + " partitions)");
            }
            if (auto ok = _streams->admits(wanted); !ok) {
                return refuse(fb::ErrorCode::BAD_REQUEST, ok.error());
            }
            stream_info created{.config = std::move(wanted), .epoch = new_epoch()};
            if (auto ok = _node.store().save(created); !ok) {
                return refuse(fb::ErrorCode::STORAGE_ERROR, ok.error());
            }
            job->stream = created.config.name;
            next.push_back(std::move(created));
            spdlog::info("event=stream_created stream={}", job->stream);
            break;
        }
        case fb::AdminOp::STREAM_DELETE: {
            if (job->stream == default_stream_name) {
                return refuse(fb::ErrorCode::BAD_REQUEST, "the default stream cannot be deleted");
            }
            if (_streams->find(job->stream) == nullptr) {
                return refuse(fb::ErrorCode::NO_SUCH_STREAM, "no stream named '" + job->stream + "'");
            }
            std::erase_if(next, [&](const stream_info& s) { return s.config.name == job->stream; });
            break;
        }
        case fb::AdminOp::STREAM_INFO:
            if (_streams->find(job->stream) == nullptr) {
                return refuse(fb::ErrorCode::NO_SUCH_STREAM, "no stream named '" + job->stream + "'");
            }
            break;
        case fb::AdminOp::STREAM_LIST: break;
        case fb::AdminOp::STREAM_UPDATE:
            return refuse(fb::ErrorCode::BAD_REQUEST,
                          "stream update: change [[streams]] in the config file and restart");
        case fb::AdminOp::CONSUMER_INFO:
        case fb::AdminOp::CONSUMER_DELETE:
        case fb::AdminOp::CONSUMER_LIST:
            if (_streams->find(job->stream) == nullptr) {
                return refuse(fb::ErrorCode::NO_SUCH_STREAM, "no stream named '" + job->stream + "'");
            }
            job->consumers.assign(_node.shard_count(), {});
            break;
        default: return refuse(fb::ErrorCode::BAD_REQUEST, "unknown admin op");
    }
    const bool new_table = mutates(job->op) && job->op != fb::AdminOp::CONSUMER_DELETE;
    job->table = new_table ? std::make_shared<const stream_table>(std::move(next)) : _streams;
    broadcast_admin(job);
}

void shard::broadcast_admin(admin_job* job) noexcept {
    job->stats.assign(job->table->streams().size(), {});
    for (std::size_t i = 0; i < job->stats.size(); ++i) {
        job->stats[i].resize(job->table->streams()[i].config.partitions);
    }
    job->waiting = _node.shard_count();
    for (std::uint32_t s = 1; s < _node.shard_count(); ++s) {
        send_to(shard_id{s}, mesh_kind::admin_apply, job);
    }
    apply_admin(job);
}

void shard::apply_admin(admin_job* job) noexcept {
    if (job->table != _streams) apply_table(job->table);
    if (!job->consumers.empty()) fill_consumer_reports(job);
    // Stats of the partitions this shard owns: disjoint entries, no race.
    for (std::size_t i = 0; i < _partitions.size() && i < job->stats.size(); ++i) {
        for (std::size_t p = 0; p < _partitions[i].size(); ++p) {
            if (const auto& part = _partitions[i][p]) {
                auto& log = part->log();
                job->stats[i][p] = {log.first_offset().value, log.durable_end().value, log.bytes()};
            }
        }
    }
    if (!_retiring.empty() || !_orphan_stores.empty()) {
        // Reported once the partitions are closed and the state saves of
        // ended consumers are done (and a deleted consumer's files gone).
        _retiring_jobs.push_back(job);
        return;
    }
    if (_id.value == 0) {
        on_admin_message(mesh_kind::admin_applied, job);
    } else {
        send_to(shard_id{0}, mesh_kind::admin_applied, job);
    }
}

void shard::retire_partitions() noexcept {
    std::erase_if(_retiring, [&](std::unique_ptr<partition>& p) {
        if (p->waiting() > 0 || p->log().io_in_flight() || p->log().unflushed_bytes() > 0) {
            p->end_of_turn();
            return false;
        }
        (void)p->log().close();
        return true;
    });
    if (!_retiring.empty() || !_orphan_stores.empty()) return;
    auto jobs = std::move(_retiring_jobs);
    _retiring_jobs.clear();
    for (auto* job : jobs) {
        if (_id.value == 0) {
            on_admin_message(mesh_kind::admin_applied, job);
        } else {
            send_to(shard_id{0}, mesh_kind::admin_applied, job);
        }
    }
}

void shard::fill_consumer_reports(admin_job* job) noexcept {
    auto& reports = job->consumers[_id.value];
    const bool one = job->op != fb::AdminOp::CONSUMER_LIST;
    for (auto& c : _consumers) {
        if (!c || c->config().stream != job->stream) continue;
        if (one && c->config().name != job->consumer) continue;
        consumer_report r;
        r.config = c->config();
        for (auto& cursor : c->cursors()) {
            r.ack_floors.emplace_back(cursor->partition_id(), cursor->ack_state().floor().value);
            r.pending += cursor->in_flight() + cursor->not_yet_delivered();
            r.redelivered += cursor->counters().redelivered;
            r.dead_lettered += cursor->counters().dead_lettered;
            r.terminated += cursor->counters().terminated;
        }
        reports.push_back(std::move(r));
        if (job->op == fb::AdminOp::CONSUMER_DELETE) {
            end_consumer(*c, errc::no_such_consumer, "the consumer was deleted", true);
        }
    }
}

void shard::apply_table(stream_table_ptr next) {
    for (auto& c : _consumers) {  // consumers of deleted (or re-created) streams end
        if (!c) continue;
        const auto* st = next->find(c->config().stream);
        if (st == nullptr || st->epoch != c->stream_epoch()) {
            end_consumer(*c, errc::no_such_stream, "the stream was deleted", false);
        }
    }
    std::vector<std::vector<std::unique_ptr<partition>>> fresh;
    for (const auto& stream : next->streams()) {
        const auto index = static_cast<std::uint32_t>(fresh.size());
        auto& parts = fresh.emplace_back();
        const auto* old = _streams->find(stream.config.name);
        if (old != nullptr) {
            parts = std::move(_partitions[static_cast<std::size_t>(old - _streams->streams().data())]);
            for (std::uint32_t p = 0; p < parts.size(); ++p) {
                if (parts[p]) parts[p]->set_identity(index, p);
            }
            continue;
        }
        parts.resize(stream.config.partitions);
        for (std::uint32_t p = 0; p < stream.config.partitions; ++p) {
            if (protocol::shard_for_partition(stream.config.name, partition_id{p},
                                              _node.shard_count()) == _id) {
                parts[p] = open_partition(stream, index, p);
            }
        }
    }
    for (auto& parts : _partitions) {  // what is left belongs to deleted streams
        for (auto& p : parts) {
            if (p) _retiring.push_back(std::move(p));
        }
    }
    _partitions = std::move(fresh);
    _streams = std::move(next);
}

void shard::finish_admin(admin_job* job) noexcept {
    const bool consumer_op = job->op == fb::AdminOp::CONSUMER_INFO || job->op == fb::AdminOp::CONSUMER_DELETE;
    if (consumer_op && job->error == fb::ErrorCode::NONE &&
        std::ranges::all_of(job->consumers, [](const auto& r) { return r.empty(); })) {
        job->error = fb::ErrorCode::NO_SUCH_CONSUMER;
        job->message = "no consumer named '" + job->consumer + "' on stream '" + job->stream + "'";
    }
    if (job->op == fb::AdminOp::STREAM_DELETE && job->error == fb::ErrorCode::NONE) {
        if (auto ok = _node.store().remove(job->stream); !ok) {
            job->error = fb::ErrorCode::STORAGE_ERROR;
            job->message = ok.error();
        } else {
            spdlog::info("event=stream_deleted stream={}", job->stream);
        }
    }
    _admin_running = nullptr;
    if (job->origin == _id.value) {
        answer_admin(job);
    } else {
        send_to(shard_id{job->origin}, mesh_kind::admin_done, job);
    }
    if (!_admin_queue.empty()) {
        auto* next = _admin_queue.front();
        _admin_queue.erase(_admin_queue.begin());
        start_admin_job(next);
    }
}

void shard::answer_admin(admin_job* job) noexcept {
    std::unique_ptr<admin_job> owned(job);
    if (job->internal) {
        if (job->error != fb::ErrorCode::NONE && job->error != fb::ErrorCode::STREAM_EXISTS) {
            spdlog::error("event=dead_letter_stream_failed stream={} error=\"{}\"", job->config->name, job->message);
        }
        const auto asked = std::ranges::find(_dlq_requested, job->config->name, &dead_letter_request::stream);
        if (asked == _dlq_requested.end()) return;
        if (job->error != fb::ErrorCode::NONE && job->error != fb::ErrorCode::STREAM_EXISTS) {
            asked->failed = true;  // asked again after a pause, not on every tick
            asked->retry_at_ns = _now_ns + 5'000'000'000ULL;
        } else {
            _dlq_requested.erase(asked);
        }
        return;
    }
    if (job->session_slot >= _sessions.size()) return;
    auto& s = *_sessions[job->session_slot];
    if (s.generation() != job->session_generation || !s.is_open()) return;
    auto& enc = s.encoder();
    enc.reset();
    auto& b = enc.builder();
    std::vector<flatbuffers::Offset<fb::StreamInfo>> infos;
    if (job->error == fb::ErrorCode::NONE && job->table) {
        const auto& streams = job->table->streams();
        for (std::size_t i = 0; i < streams.size(); ++i) {
            const auto& st = streams[i];
            const bool wanted = job->op == fb::AdminOp::STREAM_LIST ||
                                (job->op != fb::AdminOp::STREAM_DELETE && st.config.name == job->stream);
            if (!wanted) continue;
            std::vector<flatbuffers::Offset<fb::PartitionInfo>> parts;
            for (std::uint32_t p = 0; p < st.config.partitions; ++p) {
                const auto owner = protocol::shard_for_partition(st.config.name, partition_id{p},
                                                                 _node.shard_count());
                const auto& ps = job->stats[i][p];
                parts.push_back(fb::CreatePartitionInfo(b, p, owner.value, ps.first_offset,
                                                        ps.next_offset, ps.bytes));
            }
            const auto config_offset = encode_config(b, st.config);
            infos.push_back(fb::CreateStreamInfo(b, config_offset, st.epoch, b.CreateVector(parts)));
        }
    }
    const auto consumers = encode_consumers(b, *job);
    s.send_or_close(enc.finish(fb::CreateAdminResult(b, job->request_id, job->error,
                                                     b.CreateString(job->message),
                                                     b.CreateVector(infos), consumers)));
}

}  // namespace nagare::broker
