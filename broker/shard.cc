#include "broker/shard.h"

#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

#include "broker/node.h"
#include "broker/subscription_jobs.h"
#include "protocol/assert.h"
#include "protocol/routing.h"

namespace nagare::broker {

namespace fb = protocol::fb;
using protocol::errc;

namespace {

std::uint64_t clock_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
}

std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
}

storage::durability durability_of(fb::Durability d) noexcept {
    switch (d) {
        case fb::Durability::INTERVAL: return storage::durability::interval;
        case fb::Durability::NONE: return storage::durability::none;
        default: return storage::durability::fsync;
    }
}


}  // namespace

void forward_batch::clear() noexcept {
    next = 0;
    resolved = 0;
    streams.reset();
    arena.clear();
    items.clear();
    header_spans.clear();
    outcomes.clear();
}

std::uint32_t forward_batch::add(std::string_view bytes) {
    const auto at = static_cast<std::uint32_t>(arena.size());
    const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
    arena.insert(arena.end(), data, data + bytes.size());
    return at;
}

shard::shard(node& owner, shard_id id) : _node(owner), _id(id) {}

shard::~shard() = default;

const node_config& shard::config() const noexcept { return _node.config(); }

void shard::run() noexcept {
    this_shard = _id.value;
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    CPU_SET(_id.value % std::max(1u, std::thread::hardware_concurrency()), &cpus);
    pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
    if (!set_up()) {
        _node.shard_ready();
        return;
    }
    _node.shard_ready();
    serve();
    shut_down();
}

bool shard::set_up() {
    const auto& cfg = config();
    _streams = _node.initial_streams();
    _session_limits = {.max_frame_bytes = cfg.max_frame_bytes,
                       .max_payload_bytes = cfg.max_payload_bytes,
                       .max_pending_publish = cfg.max_pending_publish,
                       .ping_interval_ns = cfg.ping_interval_ms * 1'000'000,
                       .send_queue_bytes = std::max<std::size_t>(1u << 20, cfg.max_frame_bytes)};
    auto fail = [&](std::string what) {
        _node.report_failure("shard " + std::to_string(_id.value) + ": " + what);
        _node.arrive_and_drop();
        return false;
    };
    auto ring = io::ring::create(4096);
    if (!ring) return fail(std::string("io_uring setup failed: ") + std::strerror(ring.error()));
    _ring = std::move(*ring);
    auto buffers = io::buffer_ring::create(*_ring, 0, 512, 16u << 10);
    if (!buffers) return fail(std::string("buffer ring: ") + std::strerror(buffers.error()));
    _buffers = std::move(*buffers);
    if (!io::uring_file_io::supported(*_ring)) {
        return fail("io_uring lacks file operations (openat, close, renameat, fsync): kernel 5.11 or later");
    }
    _file_io = std::make_unique<io::uring_file_io>(*_ring, io::file_ops_max_default + state_saves_in_flight_max);
    auto target = io::wake_target::create(*_ring, *this);
    if (!target) return fail(std::string("eventfd: ") + std::strerror(target.error()));
    _wake_target = std::move(*target);
    _wake_target->start();
    _node.publish_wake_target(_id, _wake_target.get());
    _timer = std::make_unique<io::timer>(*_ring, static_cast<io::timer_handler&>(*this));
    if (!open_partitions()) return fail("cannot open partitions");
    for (int which = 0; which < 2; ++which) {
        const auto port = which == 0 ? cfg.port : static_cast<std::uint16_t>(cfg.port + 1 + _id.value);
        auto listener = io::tcp_listener::create(*_ring, cfg.host, port, *this);
        if (!listener) {
            return fail("cannot listen on " + cfg.host + ":" + std::to_string(port) + ": " +
                        std::strerror(listener.error()));
        }
        (which == 0 ? _main_listener : _shard_listener) = std::move(*listener);
    }
    _node.arrive_and_wait();  // every wake target exists
    _wakers.resize(_node.shard_count());
    for (std::uint32_t s = 0; s < _node.shard_count(); ++s) {
        if (s != _id.value) {
            _wakers[s] = std::make_unique<io::waker>(*_ring, *_node.wake_target_of(shard_id{s}));
        }
    }
    _outbox.assign(_node.shard_count(), nullptr);
    _batch_storage.reserve(forward_batches_per_shard_max);
    _inbound.assign(forward_batches_per_shard_max * _node.shard_count(), nullptr);
    for (std::uint32_t i = static_cast<std::uint32_t>(_inbound.size()); i-- > 0;) {
        _free_inbound.push_back(i);
    }
    _header_scratch.reserve(protocol::headers_max);
    _main_listener->start();
    _shard_listener->start();
    _timer->arm_periodic(shard_tick_ns);
    update_clock();
    return true;
}

bool shard::open_partitions() {
    _partitions.clear();
    for (const auto& stream : _streams->streams()) {
        auto& parts = _partitions.emplace_back();
        parts.resize(stream.config.partitions);
        const auto stream_index = static_cast<std::uint32_t>(_partitions.size() - 1);
        for (std::uint32_t p = 0; p < stream.config.partitions; ++p) {
            if (protocol::shard_for_partition(stream.config.name, partition_id{p},
                                              _node.shard_count()) != _id) {
                continue;
            }
            parts[p] = open_partition(stream, stream_index, p);
            if (!parts[p]) return false;
            load_consumers(stream, *parts[p], p);
        }
    }
    return true;
}

std::unique_ptr<partition> shard::open_partition(const stream_info& stream,
                                                 std::uint32_t stream_index,
                                                 std::uint32_t partition_id) {
    const auto& cfg = config();
    partition_settings settings;
    settings.log.segment_bytes = stream.config.segment_bytes;
    settings.log.durability_mode = durability_of(stream.config.durability);
    settings.log.fsync_interval_ns = cfg.fsync_interval_ms * 1'000'000;
    settings.log.max_age_ns = stream.config.max_age_ms * 1'000'000;
    settings.log.max_bytes =
        stream.config.max_bytes == 0 ? storage::max_bytes_unlimited : stream.config.max_bytes;
    settings.dedup.window_ns = stream.config.dedup_window_ms * 1'000'000;
    const auto dir = _node.store().stream_dir(stream.config.name) / std::to_string(partition_id);
    auto opened = partition::open(dir, settings, *_file_io, *this);
    if (!opened) {
        _node.report_failure(opened.error());
        spdlog::error("event=partition_open_failed shard={} error=\"{}\"", _id.value, opened.error());
        return nullptr;
    }
    (*opened)->set_identity(stream_index, partition_id);
    (*opened)->set_latency_probe(&_probe.fsync_latency);
    return std::move(*opened);
}

void shard::update_clock() noexcept { _now_ns = clock_ns(); }

void shard::serve() noexcept {
    while (!_stop_requested.load(std::memory_order_acquire)) {
        const int rc = _ring->submit_and_wait_for(1, 100'000'000);
        NG_ASSERT(rc == 0, "io_uring_enter failed");
        const auto busy_from = steady_ns();
        update_clock();
        _ring->dispatch();
        drain_mesh();
        end_of_turn();
        const auto busy_ns = steady_ns() - busy_from;
        _probe.loop_turns.add();
        _probe.busy_ns.add(busy_ns);
        _probe.loop_turn_busy.record_ns(busy_ns);
    }
}

void shard::end_of_turn() noexcept {
    run_consumers();
    for (auto* p : _dirty_partitions) p->end_of_turn();
    _dirty_partitions.clear();
    send_forwards();
    if (!_inbound_stalled.empty()) {
        auto stalled = std::move(_inbound_stalled);
        _inbound_stalled.clear();
        for (auto* batch : stalled) publish_inbound(*batch);
    }
    if (!_stalled_sessions.empty()) {
        auto stalled = std::move(_stalled_sessions);
        _stalled_sessions.clear();
        for (auto* s : stalled) {
            if (s->is_open() && !s->retry()) _stalled_sessions.push_back(s);
        }
    }
    // Appends made by replays and inbound batches go out in this same turn.
    for (auto* p : _dirty_partitions) p->end_of_turn();
    _dirty_partitions.clear();
    if (!_orphan_stores.empty()) reap_orphan_stores();
    if (!_retiring.empty() || !_retiring_jobs.empty()) retire_partitions();
}

// --- accepting and sessions ---

void shard::on_accept(int fd) noexcept {
    std::uint32_t slot = 0;
    if (!_free_sessions.empty()) {
        slot = _free_sessions.back();
        _free_sessions.pop_back();
    } else if (_sessions.size() < sessions_per_shard_max) {
        slot = static_cast<std::uint32_t>(_sessions.size());
        _sessions.push_back(std::make_unique<session>(static_cast<session_host&>(*this), *_ring,
                                                      *_buffers, _session_limits, slot));
    } else {
        ::close(fd);  // too many connections on this shard
        return;
    }
    _probe.connections_accepted.add();
    _probe.connections_open.add();
    _sessions[slot]->open(fd);
}

void shard::on_accept_error(int error) noexcept {
    spdlog::warn("event=accept_error shard={} error={}", _id.value, std::strerror(-error));
}

void shard::closed(session& s) noexcept {
    _probe.connections_open.set(_probe.connections_open.get() - 1);
    for (const auto& sub : s.subscriptions()) detach_subscription(sub);
    s.subscriptions().clear();
    std::erase(_stalled_sessions, &s);
    _free_sessions.push_back(s.slot());
}

void shard::stalled(session& s) noexcept {
    if (std::find(_stalled_sessions.begin(), _stalled_sessions.end(), &s) == _stalled_sessions.end()) {
        _stalled_sessions.push_back(&s);
        _probe.stalls.add();
    }
}

std::span<const std::byte> shard::hello_ok(protocol::frame_encoder& encoder) {
    const auto& cfg = config();
    encoder.reset();
    auto& b = encoder.builder();
    std::vector<std::uint16_t> ports;
    for (std::uint32_t s = 0; s < _node.shard_count(); ++s) {
        ports.push_back(static_cast<std::uint16_t>(cfg.port + 1 + s));
    }
    std::vector<flatbuffers::Offset<fb::StreamRoute>> routes;
    for (const auto& st : _streams->streams()) {
        std::vector<flatbuffers::Offset<flatbuffers::String>> subjects;
        for (const auto& p : st.config.subjects) subjects.push_back(b.CreateString(p));
        routes.push_back(fb::CreateStreamRoute(b, b.CreateString(st.config.name),
                                               b.CreateVector(subjects), st.config.partitions,
                                               st.epoch));
    }
    return encoder.finish(fb::CreateHelloOk(
        b, b.CreateString(_node.server_id()), protocol::protocol_version, _node.shard_count(),
        fb::PartitionRule::XXH3_64, b.CreateVector(ports),
        static_cast<std::uint32_t>(cfg.max_frame_bytes),
        static_cast<std::uint32_t>(cfg.max_payload_bytes), cfg.max_pending_publish,
        b.CreateVector(routes)));
}

// --- publishing ---

partition* shard::local_partition(std::uint32_t stream_index, std::uint32_t partition_id) noexcept {
    if (stream_index >= _partitions.size() || partition_id >= _partitions[stream_index].size()) {
        return nullptr;
    }
    return _partitions[stream_index][partition_id].get();
}

partition::accepted shard::publish(const stream_info& stream, const protocol::message_ref& message,
                                   const publish_ticket& ticket) noexcept {
    const auto stream_index = static_cast<std::uint32_t>(&stream - _streams->streams().data());
    _probe.publish_bytes.add(message.payload.size());
    const auto part = protocol::partition_for_project(message.project, stream.config.partitions);
    const auto owner = protocol::shard_for_partition(stream.config.name, part, _node.shard_count());
    if (owner != _id) return forward(owner, stream_index, part.value, message, ticket);
    partition* p = local_partition(stream_index, part.value);
    NG_ASSERT(p != nullptr, "a partition this shard owns is not open");
    const auto accepted = p->publish(message, ticket, _now_ns);
    if (accepted == partition::accepted::yes && !p->dirty()) {
        p->mark_dirty();
        _dirty_partitions.push_back(p);
    }
    return accepted;
}

void shard::on_published(const publish_ticket& ticket, const publish_outcome& outcome) noexcept {
    if (ticket.kind == ticket_from_forward) {
        auto* batch = ticket.owner < _inbound.size() ? _inbound[ticket.owner] : nullptr;
        if (batch == nullptr || batch->generation != ticket.generation) return;
        batch->outcomes[ticket.index] = outcome;
        if (++batch->resolved == batch->items.size()) finish_forward(*batch);
        return;
    }
    resolve_origin(ticket, outcome);
}

void shard::resolve_origin(const publish_ticket& ticket, const publish_outcome& outcome) noexcept {
    if (ticket.kind == ticket_dead_letter) {
        on_dead_lettered(ticket, outcome);
        return;
    }
    if (outcome.error != errc::none) {
        _probe.publish_errors.add();
    } else if (outcome.duplicate) {
        _probe.duplicates.add();
    } else {
        _probe.publishes.add();
    }
    if (ticket.owner >= _sessions.size()) return;
    auto& s = *_sessions[ticket.owner];
    if (s.generation() != ticket.generation) return;  // the connection is gone
    s.resolve(ticket.index, fb::PubAckEntry(outcome.position.value, outcome.partition,
                                            static_cast<std::uint16_t>(outcome.stream_index),
                                            static_cast<fb::ErrorCode>(outcome.error),
                                            outcome.duplicate));
}

forward_batch* shard::take_batch() noexcept {
    if (!_free_batches.empty()) {
        auto* b = _free_batches.back();
        _free_batches.pop_back();
        return b;
    }
    if (_batch_storage.size() >= forward_batches_per_shard_max) return nullptr;
    _batch_storage.push_back(std::make_unique<forward_batch>());
    return _batch_storage.back().get();
}

partition::accepted shard::forward(shard_id owner, std::uint32_t stream_index,
                                   std::uint32_t partition_id, const protocol::message_ref& message,
                                   const publish_ticket& ticket) noexcept {
    auto*& batch = _outbox[owner.value];
    if (batch != nullptr && batch->items.size() >= forward_batch_messages_max) return partition::accepted::busy;
    if (batch == nullptr) {
        batch = take_batch();
        if (batch == nullptr) return partition::accepted::busy;
        batch->clear();
        batch->from = _id.value;
        batch->to = owner.value;
        batch->streams = _streams;
    }
    forward_item item;
    item.stream_index = stream_index;
    item.partition = partition_id;
    item.origin = ticket;
    item.project_bytes = static_cast<std::uint32_t>(message.project.size());
    item.project_offset = batch->add(message.project);
    item.subject_bytes = static_cast<std::uint32_t>(message.subject.size());
    item.subject_offset = batch->add(message.subject);
    item.msg_id_bytes = static_cast<std::uint32_t>(message.msg_id.size());
    item.msg_id_offset = batch->add(message.msg_id);
    const std::string_view payload(reinterpret_cast<const char*>(message.payload.data()),
                                   message.payload.size());
    item.payload_bytes = static_cast<std::uint32_t>(payload.size());
    item.payload_offset = batch->add(payload);
    item.headers_first = static_cast<std::uint32_t>(batch->header_spans.size());
    item.headers_count = static_cast<std::uint32_t>(message.headers.size());
    for (const auto& h : message.headers) {
        batch->header_spans.push_back(batch->add(h.key));
        batch->header_spans.push_back(static_cast<std::uint32_t>(h.key.size()));
        batch->header_spans.push_back(batch->add(h.value));
        batch->header_spans.push_back(static_cast<std::uint32_t>(h.value.size()));
    }
    batch->items.push_back(item);
    _probe.forwards_sent.add();
    return partition::accepted::yes;
}

void shard::send_forwards() noexcept {
    // Retry refused pushes first: they are older.
    std::size_t kept = 0;
    for (const auto& m : _unsent) {
        const shard_id to{static_cast<std::uint32_t>(m.arg)};
        if (_node.mesh().push(_id, to, m)) {
            _wakers[to.value]->wake();
        } else {
            _unsent[kept++] = m;
        }
    }
    _unsent.resize(kept);
    for (std::uint32_t to = 0; to < _outbox.size(); ++to) {
        auto* batch = _outbox[to];
        if (batch == nullptr) continue;
        _outbox[to] = nullptr;
        batch->outcomes.assign(batch->items.size(), publish_outcome{});
        const mesh_message m{.kind = static_cast<std::uint16_t>(mesh_kind::forward_publish),
                             .arg = to,
                             .object = batch};
        if (_node.mesh().push(_id, shard_id{to}, m)) {
            _wakers[to]->wake();
        } else {
            _unsent.push_back(m);
        }
    }
}

void shard::drain_mesh() noexcept {
    _node.mesh().drain(_id, [&](const mesh_message& m) {
        auto* batch = static_cast<forward_batch*>(m.object);
        switch (static_cast<mesh_kind>(m.kind)) {
            case mesh_kind::admin_request:
            case mesh_kind::admin_apply:
            case mesh_kind::admin_applied:
            case mesh_kind::admin_done:
                on_admin_message(static_cast<mesh_kind>(m.kind), static_cast<admin_job*>(m.object));
                break;
            case mesh_kind::forward_publish: {
                NG_ASSERT(!_free_inbound.empty(), "inbound forward slots exhausted");
                batch->inbound_slot = _free_inbound.back();
                _free_inbound.pop_back();
                batch->generation += 1;
                _inbound[batch->inbound_slot] = batch;
                _probe.forwards_received.add(batch->items.size());
                publish_inbound(*batch);
                break;
            }
            case mesh_kind::sub_attach:
            case mesh_kind::sub_attached:
            case mesh_kind::sub_detach:
            case mesh_kind::sub_ended:
            case mesh_kind::deliver:
            case mesh_kind::deliver_back:
            case mesh_kind::ack:
            case mesh_kind::ack_done:
                on_consumer_message(static_cast<mesh_kind>(m.kind), m.object);
                break;
            case mesh_kind::forward_done: {
                for (std::size_t i = 0; i < batch->items.size(); ++i) {
                    resolve_origin(batch->items[i].origin, batch->outcomes[i]);
                }
                batch->clear();
                _free_batches.push_back(batch);
                break;
            }
        }
    }, 1024);
}

void shard::on_wake() noexcept { drain_mesh(); }

void shard::publish_inbound(forward_batch& batch) noexcept {
    const bool same_table = batch.streams == _streams;
    for (; batch.next < batch.items.size(); ++batch.next) {
        const auto& item = batch.items[batch.next];
        std::uint32_t stream_index = item.stream_index;
        if (!same_table) {
            const auto& name = batch.streams->streams()[item.stream_index].config.name;
            const auto* st = _streams->find(name);
            stream_index = st == nullptr ? UINT32_MAX
                                         : static_cast<std::uint32_t>(st - _streams->streams().data());
        }
        partition* p = local_partition(stream_index, item.partition);
        const publish_ticket ticket{batch.inbound_slot, batch.generation, batch.next, ticket_from_forward};
        if (p == nullptr) {
            on_published(ticket, {{}, false, errc::no_such_stream});
            continue;
        }
        auto text = [&](std::uint32_t at, std::uint32_t bytes) {
            return std::string_view(reinterpret_cast<const char*>(batch.arena.data()) + at, bytes);
        };
        _header_scratch.clear();
        for (std::uint32_t h = 0; h < item.headers_count; ++h) {
            const auto* span = &batch.header_spans[(item.headers_first + h) * 4];
            _header_scratch.push_back({text(span[0], span[1]), text(span[2], span[3])});
        }
        const protocol::message_ref ref{
            text(item.project_offset, item.project_bytes), text(item.subject_offset, item.subject_bytes),
            text(item.msg_id_offset, item.msg_id_bytes), _header_scratch,
            std::span(batch.arena).subspan(item.payload_offset, item.payload_bytes)};
        if (p->publish(ref, ticket, _now_ns) == partition::accepted::busy) {
            _inbound_stalled.push_back(&batch);
            return;
        }
        if (!p->dirty()) {
            p->mark_dirty();
            _dirty_partitions.push_back(p);
        }
    }
}

void shard::finish_forward(forward_batch& batch) noexcept {
    _inbound[batch.inbound_slot] = nullptr;
    _free_inbound.push_back(batch.inbound_slot);
    const shard_id to{batch.from};
    const mesh_message m{.kind = static_cast<std::uint16_t>(mesh_kind::forward_done),
                         .arg = to.value,
                         .object = &batch};
    if (_node.mesh().push(_id, to, m)) {
        _wakers[to.value]->wake();
    } else {
        _unsent.push_back(m);
    }
}

void shard::admin(session& from, const fb::Admin& request) { handle_admin(from, request); }

// --- timers and shutdown ---

void shard::on_timer() noexcept {
    update_clock();
    for (auto& parts : _partitions) {
        for (auto& p : parts) {
            if (p) p->tick(_now_ns);
        }
    }
    tick_consumers();
    save_consumer_states(consumer_cursor::save_when::due);
    if (++_ticks % 100 == 0) {  // once a second
        for (auto& s : _sessions) s->tick(_now_ns);
        for (auto& parts : _partitions) {
            for (auto& p : parts) {
                if (p) (void)p->log().enforce_retention(_now_ns);
            }
        }
    }
}

void shard::wait_for_state_saves(std::uint64_t deadline_ns) noexcept {
    for (;;) {
        save_consumer_states(consumer_cursor::save_when::never);  // takes outcomes
        if (state_saves_in_flight() == 0) return;
        if (steady_ns() >= deadline_ns) {
            spdlog::error("event=consumer_state_saves_unfinished shard={} count={}", _id.value,
                          state_saves_in_flight());
            return;
        }
        (void)_ring->submit_and_wait_for(1, 10'000'000);
        update_clock();
        _ring->dispatch();
    }
}

void shard::drain_consumer_states(std::uint64_t deadline_ns) noexcept {
    wait_for_state_saves(deadline_ns);
    // Every changed state once more: the cap on saves in flight may take
    // several rounds (a save that fails is not retried past them).
    std::size_t durable = 0;
    for (const auto& c : _consumers) {
        if (c && !c->config().ephemeral) durable += c->cursors().size();
    }
    for (std::size_t round = 0; round <= durable / state_saves_in_flight_max; ++round) {
        if (save_consumer_states(consumer_cursor::save_when::now) == 0) break;
        wait_for_state_saves(deadline_ns);
    }
}

void shard::shut_down() noexcept {
    _main_listener->stop();
    _shard_listener->stop();
    _timer->cancel();
    // Finish what is in flight: appends get written and synced, acks sent.
    const auto deadline = steady_ns() + 3'000'000'000ULL;
    auto busy = [&] {
        if (!_unsent.empty() || !_inbound_stalled.empty() || !_stalled_sessions.empty() ||
            !_retiring.empty()) {
            return true;
        }
        for (auto* b : _outbox) {
            if (b != nullptr) return true;
        }
        for (auto& parts : _partitions) {
            for (auto& p : parts) {
                if (p && (p->waiting() > 0 || p->log().io_in_flight())) return true;
            }
        }
        for (std::size_t i = 0; i < _inbound.size(); ++i) {
            if (_inbound[i] != nullptr) return true;
        }
        return _batch_storage.size() != _free_batches.size();
    };
    while (busy() && steady_ns() < deadline) {
        (void)_ring->submit_and_wait_for(1, 10'000'000);
        update_clock();
        _ring->dispatch();
        drain_mesh();
        end_of_turn();
    }
    for (auto& s : _sessions) {
        if (s->is_open()) s->close_after_send();
    }
    drain_consumer_states(steady_ns() + 3'000'000'000ULL);
    _active_cursors.clear();
    for (auto& c : _consumers) {  // a save still in flight keeps its store (past the deadline only)
        if (!c) continue;
        for (auto& cursor : c->cursors()) retire_store(cursor->release_store(), c->config().name, false);
    }
    _consumers.clear();  // cursors point into partitions
    for (auto& parts : _partitions) {
        for (auto& p : parts) {
            if (p) (void)p->close_blocking();
        }
    }
    // Wait for sockets, listeners, timer to go quiet.
    auto quiet = [&] {
        for (auto& s : _sessions) {
            if (!s->idle()) return false;
        }
        return _main_listener->stopped() && _shard_listener->stopped() && _timer->idle();
    };
    auto wait_quiet = [&](std::uint64_t budget_ns) {
        const auto until = steady_ns() + budget_ns;
        while (!quiet() && steady_ns() < until) {
            (void)_ring->submit_and_wait_for(1, 10'000'000);
            _ring->dispatch();
            drain_mesh();
        }
    };
    wait_quiet(500'000'000);
    // A peer that does not read its acks cannot hold the exit: close hard.
    for (auto& s : _sessions) {
        if (!s->idle()) s->close();
    }
    wait_quiet(1'000'000'000);
    NG_ASSERT(quiet(), "connections still busy after a hard close");
    // Wakers stop waking; then every shard may drop its target.
    _node.arrive_and_wait();
    _wake_target->stop();
    const auto wake_deadline = steady_ns() + 1'000'000'000ULL;
    auto wakers_idle = [&] {
        for (auto& w : _wakers) {
            if (w && !w->idle()) return false;
        }
        return _wake_target->idle();
    };
    while (!wakers_idle() && steady_ns() < wake_deadline) {
        (void)_ring->submit_and_wait_for(1, 10'000'000);
        _ring->dispatch();
    }
    _node.arrive_and_wait();
    // Nobody sends any more: free the control objects left in the queues.
    _node.mesh().drain(_id, [&](const mesh_message& m) {
        discard_consumer_message(static_cast<mesh_kind>(m.kind), m.object);
    }, mesh_queue_capacity_default);
    // SINGLE_ISSUER: everything on the ring goes away on this thread, ring last.
    _sessions.clear();
    _partitions.clear();
    _main_listener.reset();
    _shard_listener.reset();
    _timer.reset();
    _wakers.clear();
    _wake_target.reset();
    _file_io.reset();
    _buffers.reset();
    _ring.reset();
}

}  // namespace nagare::broker
