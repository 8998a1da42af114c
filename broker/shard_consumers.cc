// The shard's side of subscriptions (DESIGN.md section 4, "Deliver path"):
// Subscribe/Ack/Unsubscribe from sessions, the mesh round trips to the shards
// that own the partitions, Deliver frames back to sessions, dead letters,
// and the consumers' timers and state saves.
//
// A subscription lives on its session's shard (session_subscription); its
// consumer has one `consumer` object on every shard owning a partition of
// the stream. Control requests (subscribe_job, detach_job) are heap objects:
// rare. Acks (ack_job) and Deliver frames (deliver_frame) come from pools.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "broker/admin_job.h"
#include "broker/node.h"
#include "broker/shard.h"
#include "broker/subscription_jobs.h"
#include "protocol/assert.h"
#include "protocol/routing.h"
#include "protocol/subject.h"
#include "storage/limits.h"

namespace nagare::broker {

namespace fb = protocol::fb;
namespace fs = std::filesystem;
using protocol::errc;

inline constexpr std::size_t deliver_frames_per_shard_max = 4096;
inline constexpr std::size_t subscriptions_per_session_max = 1024;

namespace {

std::uint32_t handle_index(std::uint64_t handle) noexcept { return static_cast<std::uint32_t>(handle); }
std::uint32_t handle_generation(std::uint64_t handle) noexcept {
    return static_cast<std::uint32_t>(handle >> 32);
}

// A consumer filtered to one project reads only that project's partition.
bool reads_partition(const consumer_config& c, std::uint32_t partitions, std::uint32_t p) {
    return c.project.empty() || protocol::partition_for_project(c.project, partitions).value == p;
}

std::string dead_letter_stream(const consumer_config& c) {
    return "$dlq." + c.stream + "." + (c.ephemeral ? std::string("_ephemeral") : c.name);
}

}  // namespace

// ---- lookups --------------------------------------------------------------------

session* shard::session_at(std::uint32_t slot, std::uint32_t generation) noexcept {
    if (slot >= _sessions.size()) return nullptr;
    auto* s = _sessions[slot].get();
    return s->generation() == generation && s->is_open() ? s : nullptr;
}

consumer* shard::consumer_by_handle(std::uint64_t handle) noexcept {
    const auto index = handle_index(handle);
    if (index >= _consumers.size() || !_consumers[index]) return nullptr;
    return _consumer_generations[index] == handle_generation(handle) ? _consumers[index].get() : nullptr;
}

consumer* shard::find_consumer(std::string_view stream, std::string_view name) noexcept {
    for (auto& c : _consumers) {
        if (c && c->config().stream == stream && c->config().name == name) return c.get();
    }
    return nullptr;
}

consumer& shard::create_consumer(consumer_config config, std::uint64_t epoch) {
    std::uint32_t index = 0;
    while (index < _consumers.size() && _consumers[index]) ++index;
    if (index == _consumers.size()) {
        _consumers.emplace_back();
        _consumer_generations.push_back(0);
    }
    const auto generation = ++_consumer_generations[index];
    const std::uint64_t handle = (std::uint64_t{generation} << 32) | index;
    _consumers[index] = std::make_unique<consumer>(std::move(config), epoch, handle);
    return *_consumers[index];
}

consumer_cursor& shard::add_cursor(consumer& c, partition& part, std::uint32_t partition_id,
                                   std::optional<storage::partition_ack_state> state,
                                   storage::consumer_counters counters) {
    const fs::path* dir = c.config().ephemeral ? nullptr : &part.dir();
    auto cursor = std::make_unique<consumer_cursor>(c, part, partition_id, dir, std::move(state), counters);
    part.cursors().push_back(cursor.get());
    c.cursors().push_back(std::move(cursor));
    return *c.cursors().back();
}

void shard::end_consumer(consumer& c, errc reason, std::string_view message, bool remove_files) noexcept {
    // Tell the sessions (a detach from them may cross this: both sides ignore stale handles).
    for (std::uint32_t i = 0; i < c.subscribers().size(); ++i) {
        const auto& sub = c.subscribers()[i];
        if (!sub.live) continue;
        auto* job = new detach_job{c.handle(), _id.value, sub.address, reason, std::string(message)};
        if (sub.address.shard == _id.value) {
            ended(job);
        } else {
            send_to(shard_id{sub.address.shard}, mesh_kind::sub_ended, job);
        }
    }
    for (auto& cursor : c.cursors()) {
        std::erase(cursor->part().cursors(), cursor.get());
        if (cursor->active) std::erase(_active_cursors, cursor.get());
        if (remove_files) {
            std::error_code ec;
            fs::remove(cursor->part().dir() / "consumers" / (c.config().name + ".toml"), ec);
        }
        retire_store(cursor->release_store(), c.config().name, remove_files);
    }
    const auto index = handle_index(c.handle());
    _consumers[index].reset();
}

// ---- session side: Subscribe, Ack, Unsubscribe ---------------------------------------

void shard::subscribe(session& from, const fb::Subscribe& request) {
    const auto id = request.subscription_id();
    auto refuse = [&](errc code, std::string_view message) { from.fail_request(id, code, message); };
    if (from.find_subscription(id) != nullptr) return refuse(errc::bad_request, "subscription id in use");
    if (from.subscriptions().size() >= subscriptions_per_session_max) {
        return refuse(errc::overloaded, "more than 1024 subscriptions on one connection");
    }
    const auto* stream = _streams->find(protocol::view(request.stream()));
    if (stream == nullptr) return refuse(errc::no_such_stream, "no such stream");
    auto config = consumer_config_from(
        request, "_e" + std::to_string(_id.value) + "-" + std::to_string(++_ephemeral_count));
    if (!config) return refuse(config.error().code, config.error().message);
    if (const auto* token = from.token()) {
        if (stream->config.is_private && !token->admin) {
            return refuse(errc::not_authorized, "a private stream needs an admin token");
        }
        auto allowed = [&](std::string_view pattern) {
            return std::ranges::any_of(token->subscribe, [&](const std::string& mine) {
                return protocol::pattern_covers(mine, pattern);
            });
        };
        const bool ok = config->subjects.empty() ? allowed(">") : std::ranges::all_of(config->subjects, allowed);
        if (!ok) return refuse(errc::not_authorized, "this token may not read these subjects");
    }
    session_subscription sub;
    sub.id = id;
    sub.stream = stream->config.name;
    sub.stream_epoch = stream->epoch;
    sub.partitions = stream->config.partitions;
    sub.ack_none = !config->ack_explicit;
    sub.address = {_id.value, from.slot(), from.generation(), id};
    sub.handles.assign(_node.shard_count(), 0);
    std::vector<bool> owners(_node.shard_count(), false);
    for (std::uint32_t p = 0; p < stream->config.partitions; ++p) {
        if (!reads_partition(*config, stream->config.partitions, p)) continue;
        owners[protocol::shard_for_partition(sub.stream, partition_id{p}, _node.shard_count()).value] = true;
    }
    for (const bool o : owners) sub.replies_waiting += o ? 1 : 0;
    const auto address = sub.address;
    from.subscriptions().push_back(std::move(sub));
    for (std::uint32_t owner = 0; owner < owners.size(); ++owner) {
        if (!owners[owner]) continue;
        auto* job = new subscribe_job{*config, stream->epoch, address, owner, errc::none, {}, 0, {}};
        if (owner == _id.value) {
            attach_here(job);
        } else {
            send_to(shard_id{owner}, mesh_kind::sub_attach, job);
        }
    }
}

void shard::detach_subscription(const session_subscription& sub) noexcept {
    for (std::uint32_t owner = 0; owner < sub.handles.size(); ++owner) {
        if (sub.handles[owner] == 0) continue;
        auto* job = new detach_job{sub.handles[owner], owner, sub.address, errc::none, {}};
        if (owner == _id.value) {
            detach_here(job);
        } else {
            send_to(shard_id{owner}, mesh_kind::sub_detach, job);
        }
    }
}

void shard::unsubscribe(session& from, std::uint64_t subscription_id) {
    auto& subs = from.subscriptions();
    const auto it = std::ranges::find_if(subs, [&](const auto& s) { return s.id == subscription_id; });
    if (it == subs.end()) {
        from.fail_request(subscription_id, errc::no_such_subscription, "no such subscription");
        return;
    }
    detach_subscription(*it);  // owners still answering a subscribe detach in attached()
    subs.erase(it);
}

void shard::ack(session& from, const fb::Ack& request) {
    const auto id = request.subscription_id();
    auto* sub = from.find_subscription(id);
    if (sub == nullptr || !sub->ready) {
        from.fail_request(id, errc::no_such_subscription, "no such subscription");
        return;
    }
    if (sub->ack_none) {
        from.fail_request(id, errc::bad_request, "this subscription's ack policy is none");
        return;
    }
    std::uint32_t unknown = 0;
    std::vector<ack_job*> jobs(_node.shard_count(), nullptr);  // small: shard_count pointers
    if (const auto* positions = request.positions()) {
        for (const auto* p : *positions) {
            if (p->partition() >= sub->partitions) {
                ++unknown;
                continue;
            }
            const auto owner =
                protocol::shard_for_partition(sub->stream, partition_id{p->partition()}, _node.shard_count()).value;
            auto*& job = jobs[owner];
            if (job == nullptr) {
                if (_free_ack_jobs.empty()) {
                    _ack_job_storage.push_back(std::make_unique<ack_job>());
                    job = _ack_job_storage.back().get();
                } else {
                    job = _free_ack_jobs.back();
                    _free_ack_jobs.pop_back();
                }
                job->handle = sub->handles[owner];
                job->kind = request.kind();
                job->nak_delay_ms = request.nak_delay_ms();
                job->positions.clear();
                job->from = sub->address;
                job->owner = owner;
                job->unknown = 0;
            }
            job->positions.emplace_back(p->partition(), p->offset());
        }
    }
    for (std::uint32_t owner = 0; owner < jobs.size(); ++owner) {
        auto* job = jobs[owner];
        if (job == nullptr) continue;
        if (owner == _id.value) {
            ack_here(job);
            unknown += job->unknown;
            _free_ack_jobs.push_back(job);
        } else {
            send_to(shard_id{owner}, mesh_kind::ack, job);
        }
    }
    if (unknown > 0) {
        from.fail_request(id, errc::unknown_position,
                          std::to_string(unknown) + " position(s) not in flight for this consumer");
    }
}

// ---- owner side ------------------------------------------------------------------------

void shard::attach_here(subscribe_job* job) noexcept {
    auto answer = [&] {
        if (job->subscriber.shard == _id.value) {
            attached(job);
        } else {
            send_to(shard_id{job->subscriber.shard}, mesh_kind::sub_attached, job);
        }
    };
    const auto* stream = _streams->find(job->config.stream);
    if (stream == nullptr || stream->epoch != job->stream_epoch) {
        job->error = errc::no_such_stream;
        job->message = "the stream was deleted";
        return answer();
    }
    auto* c = find_consumer(job->config.stream, job->config.name);
    if (c != nullptr && !c->config().same_definition(job->config)) {
        job->error = errc::consumer_exists;
        job->message = "consumer '" + job->config.name + "' exists with another filter or policy";
        return answer();
    }
    if (c == nullptr) {
        c = &create_consumer(job->config, stream->epoch);
        const auto stream_index = static_cast<std::uint32_t>(stream - _streams->streams().data());
        for (std::uint32_t p = 0; p < stream->config.partitions; ++p) {
            auto* part = local_partition(stream_index, p);
            if (part == nullptr || !reads_partition(c->config(), stream->config.partitions, p)) continue;
            if (!c->config().ephemeral) {
                std::error_code ec;
                fs::create_directories(part->dir() / "consumers", ec);
                auto saved = save_consumer_config(part->dir() / "consumers" / (c->config().name + ".toml"),
                                                  c->config());
                if (!saved) spdlog::error("event=consumer_config_save_failed error=\"{}\"", saved.error());
            }
            (void)add_cursor(*c, *part, p, std::nullopt, {});
        }
        spdlog::info("event=consumer_created shard={} stream={} consumer={}", _id.value,
                     c->config().stream, c->config().name);
    }
    const auto index = c->attach(job->subscriber);
    if (!index) {
        job->error = errc::overloaded;
        job->message = "too many subscribers on this consumer";
        if (c->config().ephemeral && c->subscriber_count() == 0) end_consumer(*c, errc::none, {}, false);
        return answer();
    }
    job->handle = c->handle();
    for (auto& cursor : c->cursors()) job->starts.emplace_back(cursor->partition_id(), cursor->start_offset().value);
    c->activate_all(*this);
    answer();
}

void shard::detach_here(detach_job* job) noexcept {
    std::unique_ptr<detach_job> owned(job);
    auto* c = consumer_by_handle(job->handle);
    if (c == nullptr) return;
    const auto index = c->find(job->subscriber);
    if (!index) return;
    c->detach(*index);
    if (c->config().ephemeral && c->subscriber_count() == 0) {
        end_consumer(*c, errc::none, {}, false);
        return;
    }
    c->activate_all(*this);
}

void shard::ack_here(ack_job* job) noexcept {
    auto* c = consumer_by_handle(job->handle);
    if (c == nullptr) {
        job->unknown += static_cast<std::uint32_t>(job->positions.size());
        return;
    }
    for (const auto& [p, o] : job->positions) {
        consumer_cursor* cursor = nullptr;
        for (auto& cur : c->cursors()) {
            if (cur->partition_id() == p) cursor = cur.get();
        }
        if (cursor == nullptr ||
            cursor->ack(job->kind, offset{o}, job->nak_delay_ms, *this) == consumer_cursor::ack_result::unknown) {
            ++job->unknown;
        } else {
            _probe.acks.add();
        }
    }
}

void shard::frame_back(deliver_frame* frame) noexcept {
    if (auto* c = consumer_by_handle(frame->consumer_handle)) {
        c->frame_returned(frame->subscriber, frame->subscriber_generation);
        c->activate_all(*this);
    }
    frame->bytes.clear();
    _free_frames.push_back(frame);
}

// ---- session side: answers ----------------------------------------------------------

void shard::attached(subscribe_job* job) noexcept {
    std::unique_ptr<subscribe_job> owned(job);
    auto* s = session_at(job->subscriber.slot, job->subscriber.generation);
    auto* sub = s == nullptr ? nullptr : s->find_subscription(job->subscriber.subscription_id);
    if (sub == nullptr || sub->address != job->subscriber) {  // gone meanwhile: undo
        if (job->handle != 0) {
            auto* detach = new detach_job{job->handle, job->owner, job->subscriber, errc::none, {}};
            if (job->owner == _id.value) {
                detach_here(detach);
            } else {
                send_to(shard_id{job->owner}, mesh_kind::sub_detach, detach);
            }
        }
        return;
    }
    if (job->error != errc::none) {
        if (sub->error == errc::none) {
            sub->error = job->error;
            sub->error_message = job->message;
        }
    } else {
        sub->handles[job->owner] = job->handle;
        sub->start_positions.insert(sub->start_positions.end(), job->starts.begin(), job->starts.end());
    }
    if (--sub->replies_waiting > 0) return;
    if (sub->error != errc::none) {
        s->fail_request(sub->id, sub->error, sub->error_message);
        detach_subscription(*sub);
        std::erase_if(s->subscriptions(), [&](const auto& x) { return x.id == job->subscriber.subscription_id; });
        return;
    }
    sub->ready = true;
    std::ranges::sort(sub->start_positions);
    auto& enc = s->encoder();
    enc.reset();
    auto& b = enc.builder();
    std::vector<fb::PartitionPosition> starts;
    starts.reserve(sub->start_positions.size());
    for (const auto& [p, o] : sub->start_positions) starts.emplace_back(p, o);
    s->send_or_close(enc.finish(fb::CreateSubOk(b, sub->id, sub->stream_epoch, b.CreateVectorOfStructs(starts))));
}

void shard::ended(detach_job* job) noexcept {
    std::unique_ptr<detach_job> owned(job);
    auto* s = session_at(job->subscriber.slot, job->subscriber.generation);
    auto* sub = s == nullptr ? nullptr : s->find_subscription(job->subscriber.subscription_id);
    if (sub == nullptr || job->owner >= sub->handles.size() || sub->handles[job->owner] != job->handle) return;
    sub->handles[job->owner] = 0;  // that consumer is gone already
    s->fail_request(sub->id, job->reason, job->message);
    detach_subscription(*sub);
    std::erase_if(s->subscriptions(), [&](const auto& x) { return x.id == job->subscriber.subscription_id; });
}

void shard::ack_answered(ack_job* job) noexcept {
    if (job->unknown > 0) {
        if (auto* s = session_at(job->from.slot, job->from.generation)) {
            s->fail_request(job->from.subscription_id, errc::unknown_position,
                            std::to_string(job->unknown) + " position(s) not in flight for this consumer");
        }
    }
    _free_ack_jobs.push_back(job);
}

void shard::deliver_here(deliver_frame* frame) noexcept {
    if (auto* s = session_at(frame->to.slot, frame->to.generation)) {
        s->deliver(frame);  // gives it back through return_frame
        return;
    }
    frame->taken = false;
    return_frame(frame);
}

void shard::return_frame(deliver_frame* frame) noexcept {
    if (frame->owner == _id.value) {
        frame_back(frame);
    } else {
        send_to(shard_id{frame->owner}, mesh_kind::deliver_back, frame);
    }
}

void shard::discard_consumer_message(mesh_kind kind, void* object) noexcept {
    // Frames and ack jobs belong to their sender's pools; control jobs are
    // owned by whoever holds them.
    if (kind == mesh_kind::sub_attach || kind == mesh_kind::sub_attached) {
        delete static_cast<subscribe_job*>(object);
    } else if (kind == mesh_kind::sub_detach || kind == mesh_kind::sub_ended) {
        delete static_cast<detach_job*>(object);
    }
}

void shard::on_consumer_message(mesh_kind kind, void* object) noexcept {
    switch (kind) {
        case mesh_kind::sub_attach: attach_here(static_cast<subscribe_job*>(object)); break;
        case mesh_kind::sub_attached: attached(static_cast<subscribe_job*>(object)); break;
        case mesh_kind::sub_detach: detach_here(static_cast<detach_job*>(object)); break;
        case mesh_kind::sub_ended: ended(static_cast<detach_job*>(object)); break;
        case mesh_kind::deliver: deliver_here(static_cast<deliver_frame*>(object)); break;
        case mesh_kind::deliver_back: frame_back(static_cast<deliver_frame*>(object)); break;
        case mesh_kind::ack: {
            auto* job = static_cast<ack_job*>(object);
            ack_here(job);
            send_to(shard_id{job->from.shard}, mesh_kind::ack_done, job);
            break;
        }
        case mesh_kind::ack_done: ack_answered(static_cast<ack_job*>(object)); break;
        default: break;
    }
}

// ---- consumer_host ------------------------------------------------------------------

std::span<std::byte> shard::read_buffer() noexcept {
    if (!_read_buffer) _read_buffer.reset(new std::byte[storage::batch_bytes_max]);
    return {_read_buffer.get(), storage::batch_bytes_max};
}

deliver_frame* shard::take_deliver_frame() noexcept {
    if (!_free_frames.empty()) {
        auto* f = _free_frames.back();
        _free_frames.pop_back();
        return f;
    }
    if (_frame_storage.size() >= deliver_frames_per_shard_max) return nullptr;
    _frame_storage.push_back(std::make_unique<deliver_frame>());
    return _frame_storage.back().get();
}

void shard::send_deliver(deliver_frame* frame) noexcept {
    frame->owner = _id.value;
    _probe.delivered_frames.add();
    if (frame->to.shard == _id.value) {
        deliver_here(frame);
    } else {
        send_to(shard_id{frame->to.shard}, mesh_kind::deliver, frame);
    }
}

void shard::activate(consumer_cursor& cursor) noexcept {
    if (cursor.active) return;
    cursor.active = true;
    _active_cursors.push_back(&cursor);
}

void shard::on_new_data(partition& p) noexcept {
    for (auto* cursor : p.cursors()) activate(*cursor);
}

void shard::run_consumers() noexcept {
    // A cursor that still has work after its pass runs again next turn.
    for (int round = 0; round < 4 && !_active_cursors.empty(); ++round) {
        _running_cursors.swap(_active_cursors);
        for (auto* cursor : _running_cursors) cursor->active = false;
        for (std::size_t i = 0; i < _running_cursors.size(); ++i) {
            auto* cursor = _running_cursors[i];
            if (cursor == nullptr) continue;
            if (cursor->run(*this)) activate(*cursor);
        }
        _running_cursors.clear();
    }
}

void shard::tick_consumers() noexcept {
    for (auto& c : _consumers) {
        if (!c) continue;
        for (auto& cursor : c->cursors()) {
            if (cursor->tick(*this)) activate(*cursor);
        }
    }
}

std::size_t shard::save_consumer_states(consumer_cursor::save_when when) noexcept {
    if (!_orphan_stores.empty()) reap_orphan_stores();
    auto in_flight = state_saves_in_flight();
    std::size_t started = 0;
    // A store of an ended cursor may still be writing the same files.
    auto orphaned = [&](const consumer& c, consumer_cursor& cursor) {
        return std::ranges::any_of(_orphan_stores, [&](const orphan_store& o) {
            return o.name == c.config().name && o.store->directory() == cursor.part().dir() / "consumers";
        });
    };
    for (auto& c : _consumers) {
        if (!c || c->config().ephemeral) continue;
        for (auto& cursor : c->cursors()) {
            auto step_when = when;
            if (in_flight >= state_saves_in_flight_max ||
                (!_orphan_stores.empty() && orphaned(*c, *cursor))) {
                step_when = consumer_cursor::save_when::never;
            }
            const auto step = cursor->step_state_save(*_file_io, step_when);
            in_flight += step.started ? 1 : 0;
            started += step.started ? 1 : 0;
            if (step.failed) {
                _probe.consumer_save_errors.add();
                spdlog::error("event=consumer_state_save_failed consumer={} partition={} error={}",
                              c->config().name, cursor->partition_id(), storage::to_string(*step.failed));
            }
        }
    }
    return started;
}

std::size_t shard::state_saves_in_flight() const noexcept {
    std::size_t n = _orphan_stores.size();
    for (const auto& c : _consumers) {
        if (!c) continue;
        for (const auto& cursor : c->cursors()) n += cursor->state_save_in_flight() ? 1 : 0;
    }
    return n;
}

void shard::retire_store(std::unique_ptr<storage::consumer_state_store> store, std::string_view name,
                         bool remove_files) noexcept {
    if (!store) return;
    if (store->save_in_flight()) {
        _orphan_stores.push_back({std::move(store), std::string(name), remove_files});
        return;
    }
    if (remove_files) (void)store->remove(name);  // blocking: a consumer delete (admin)
}

void shard::reap_orphan_stores() noexcept {
    std::erase_if(_orphan_stores, [&](orphan_store& o) {
        if (o.store->save_in_flight()) return false;
        if (auto outcome = o.store->take_save_result(); outcome && !*outcome) {
            spdlog::warn("event=consumer_state_save_failed consumer={} dir={} error={} (consumer ended)",
                         o.name, o.store->directory().string(), storage::to_string(outcome->error()));
        }
        if (o.remove_files) (void)o.store->remove(o.name);
        return true;
    });
}

void shard::load_consumers(const stream_info& stream, partition& part, std::uint32_t partition_id) {
    const auto dir = part.dir() / "consumers";
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.path().extension() != ".toml") continue;
        auto config = load_consumer_config(entry.path());
        if (!config || config->stream != stream.config.name) {
            spdlog::error("event=consumer_config_bad file={} error=\"{}\"", entry.path().string(),
                          config ? "names another stream" : config.error());
            continue;
        }
        auto* c = find_consumer(config->stream, config->name);
        if (c == nullptr) c = &create_consumer(*config, stream.epoch);
        std::optional<storage::partition_ack_state> state;
        storage::consumer_counters counters;
        if (auto store = storage::consumer_state_store::open(part.dir())) {
            if (auto loaded = store->load(config->name);
                loaded && loaded->state.stream_epoch == stream.epoch && loaded->state.partitions.size() == 1) {
                state = std::move(loaded->state.partitions[0]);
                counters = loaded->state.counters;
            } else if (!loaded && loaded.error() != storage::errc::not_found) {
                spdlog::error("event=consumer_state_unreadable consumer={} partition={}", config->name,
                              partition_id);
            }
        }
        (void)add_cursor(*c, part, partition_id, std::move(state), counters);
    }
}

// ---- dead letters ---------------------------------------------------------------------

dead_letter_result shard::dead_letter(consumer_cursor& cursor, std::uint32_t slot,
                                      const storage::record_view& record,
                                      std::uint32_t deliveries) noexcept {
    auto& c = cursor.owner();
    const auto name = dead_letter_stream(c.config());
    const auto* stream = _streams->find(name);
    if (stream == nullptr) {
        const auto asked = std::ranges::find(_dlq_requested, name, &dead_letter_request::stream);
        if (asked == _dlq_requested.end() || (asked->failed && _now_ns >= asked->retry_at_ns)) {
            if (asked == _dlq_requested.end()) {
                _dlq_requested.push_back({name, false, 0});
            } else {
                asked->failed = false;
            }
            auto* job = new admin_job;
            job->op = fb::AdminOp::STREAM_CREATE;
            job->config = std::make_unique<fb::StreamConfigT>();
            job->config->name = name;
            job->config->partitions = 1;
            job->origin = _id.value;
            job->internal = true;
            if (_id.value == 0) {
                start_admin_job(job);
            } else {
                send_to(shard_id{0}, mesh_kind::admin_request, job);
            }
        }
        return dead_letter_result::not_ready;
    }
    _dlq_values = {"max_deliver",
                   std::to_string(deliveries),
                   c.config().stream,
                   std::to_string(cursor.partition_id()),
                   std::to_string(record.record_offset.value),
                   c.config().name};
    static constexpr std::array<std::string_view, 6> keys = {
        "nagare-dlq-reason", "nagare-dlq-deliveries", "nagare-dlq-stream",
        "nagare-dlq-partition", "nagare-dlq-offset", "nagare-dlq-consumer"};
    _dlq_headers.clear();
    for (const auto& h : record.headers) {
        if (_dlq_headers.size() + keys.size() >= protocol::headers_max) break;
        _dlq_headers.push_back({h.key, h.value});
    }
    for (std::size_t i = 0; i < keys.size(); ++i) _dlq_headers.push_back({keys[i], _dlq_values[i]});
    std::uint32_t cursor_index = 0;
    while (c.cursors()[cursor_index].get() != &cursor) ++cursor_index;
    const publish_ticket ticket{handle_index(c.handle()), handle_generation(c.handle()),
                                (cursor_index << 16) | slot, ticket_dead_letter};
    const protocol::message_ref ref{record.project, record.subject, record.msg_id, _dlq_headers,
                                    record.payload};
    return publish(*stream, ref, ticket) == partition::accepted::yes ? dead_letter_result::accepted
                                                                     : dead_letter_result::busy;
}

void shard::on_dead_lettered(const publish_ticket& ticket, const publish_outcome& outcome) noexcept {
    const std::uint64_t handle = (std::uint64_t{ticket.generation} << 32) | ticket.owner;
    auto* c = consumer_by_handle(handle);
    if (c == nullptr) return;
    const auto cursor_index = ticket.index >> 16;
    if (cursor_index >= c->cursors().size()) return;
    auto& cursor = *c->cursors()[cursor_index];
    const bool stored = outcome.error == errc::none;
    if (!stored) {
        spdlog::warn("event=dead_letter_failed consumer={} error={}", c->config().name,
                     protocol::to_string(outcome.error));
    }
    if (stored) _probe.dead_letters.add();
    cursor.dead_lettered(ticket.index & 0xffff, stored);
    activate(cursor);
}

}  // namespace nagare::broker
