#include "tools/gateway/stream_session.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace nagare::gateway {

namespace {

std::uint64_t now_unix_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

std::string new_connection_id() {
    static std::atomic<std::uint64_t> counter{0};
    return fmt::format("{:x}-{:x}", now_unix_ns() / 1000, counter.fetch_add(1) + 1);
}

}  // namespace

stream_session::stream_session(gateway_parts parts, loop_context& loop, stream_request request,
                               bool websocket)
    : _parts(parts),
      _loop(loop),
      _request(std::move(request)),
      _connection_id(new_connection_id()),
      _websocket(websocket) {}

stream_session::~stream_session() = default;

void stream_session::begin() {
    _parts.stats.connects.fetch_add(1, std::memory_order_relaxed);
    if (_request.last_id) _parts.stats.reconnects.fetch_add(1, std::memory_order_relaxed);
    _hub = _parts.link.acquire(_request.stream, _request.project, _request.patterns);
    _hub->enroll(_loop.index);
    join_hub();
}

void stream_session::on_hub_outcome() {
    if (_closed || _mode != mode::acquiring) return;
    join_hub();
}

void stream_session::join_hub() {
    if (_hub->current_state() == hub::state::starting) {
        if (_hub->wait_ready(_loop.index, shared_from_this())) return;
    }
    if (_hub->current_state() == hub::state::failed) {
        const bool missing = _hub->failure().code == protocol::errc::no_such_stream;
        _hub->leave(_loop.index);
        _hub.reset();
        _mode = mode::ended;
        if (missing) {
            reject(404, "NO_SUCH_STREAM", "no such stream");
        } else {
            reject(503, "OVERLOADED", "the broker is unavailable");
        }
        return;
    }
    if (_hub->private_stream() && !_request.admin) {
        _parts.stats.rejected_forbidden.fetch_add(1, std::memory_order_relaxed);
        _hub->leave(_loop.index);
        _hub.reset();
        _mode = mode::ended;
        reject(403, "FORBIDDEN", "a private stream needs the admin role");
        return;
    }
    start_transport();
    if (_closed) return;

    const auto& last = _request.last_id;
    if (!last) {
        send_welcome(false);
        go_live(_hub->position(std::nullopt));
        return;
    }
    if (last->epoch != _hub->epoch()) {
        send_welcome(false);
        reset("epoch");
        go_live(_hub->position(std::nullopt));
        return;
    }
    _next = last->offset + 1;
    _received_next = _next;
    _last_sent = last->offset;
    auto r = _hub->position(_next);
    if (!r.needs_catchup) {
        _parts.stats.resume_hits.fetch_add(1, std::memory_order_relaxed);
        send_welcome(true);
        go_live(r);
        return;
    }
    _mode = mode::catchup;
    _parts.link.start_catchup(_loop.index, shared_from_this(), *_hub, _next);
}

void stream_session::on_catchup_started(std::expected<client::Subscription, client::error> sub,
                                        std::uint64_t start) {
    if (!sub) {
        if (!_closed) close_error("broker subscription failed");
        return;
    }
    _catchup = std::move(*sub);
    if (_closed || _mode != mode::catchup) {
        release_catchup();
        return;
    }
    if (start > _next) {
        // Events after the resume id are gone (retention).
        for (auto& [e, handle] : _catchup_early) (void)handle.ack();
        _catchup_early.clear();
        release_catchup();
        send_welcome(false);
        reset("retention");
        go_live(_hub->position(std::nullopt));
        return;
    }
    _parts.stats.resume_hits.fetch_add(1, std::memory_order_relaxed);
    send_welcome(true);
    auto early = std::move(_catchup_early);
    _catchup_early.clear();
    for (auto& [e, handle] : early) on_catchup_event(e, handle);
}

void stream_session::on_catchup_event(const event_ptr& e, const client::ack_handle& handle) {
    if (_closed || _mode != mode::catchup) {
        (void)handle.ack();
        return;
    }
    if (!_catchup) {  // before its SubOk reached this loop: after the welcome
        _catchup_early.emplace_back(e, handle);
        return;
    }
    append_replay(e, handle);
    if (_closed) return;
    if (_received_next >= _hub->covered_from()) {
        auto r = _hub->position(_received_next);
        if (r.ready && !r.needs_catchup) {
            release_catchup();
            go_live(r);
        }
    }
}

void stream_session::release_catchup() {
    if (_catchup) {
        _parts.link.release(std::move(*_catchup));
        _catchup.reset();
    }
}

void stream_session::go_live(const hub::join_result& r) {
    _mode = mode::live;
    if (_backlog.empty()) _next = std::max(_next, r.next);
    if (r.backlog.empty()) _received_next = std::max(_received_next, r.next);
    if (!_in_member_list) {
        _loop.members[_hub.get()].push_back(this);
        _in_member_list = true;
    }
    for (const auto& e : r.backlog) {  // offsets >= r.next
        append_replay(e, std::nullopt);
        if (_closed) return;
    }
}

void stream_session::send_welcome(bool recovered) {
    send_text(fmt::format(R"({{"type":"welcome","recovered":{},"connection":"{}","epoch":"{}"}})",
                          recovered, _connection_id, _hub->epoch()),
              "welcome");
}

void stream_session::reset(std::string_view reason) {
    _parts.stats.resume_resets.fetch_add(1, std::memory_order_relaxed);
    send_text(fmt::format(R"({{"type":"reset","reason":"{}"}})", reason), "reset");
}

void stream_session::end_slow() {
    if (_slow || _closed) return;
    _slow = true;
    _parts.stats.slow_closes.fetch_add(1, std::memory_order_relaxed);
    close_slow();
}

bool stream_session::deliver(const event_ptr& e) {
    if (_mode != mode::live || _closed || _slow) return false;
    if (!_backlog.empty() || queued_bytes() >= _parts.config.send_queue_bytes) {
        // Behind a replay, or a burst bigger than the send queue: wait in the
        // backlog (shared events, bounded) rather than close a browser that
        // keeps reading.
        append_replay(e, std::nullopt);
        return false;
    }
    return push(e);
}

void stream_session::append_replay(const event_ptr& e, std::optional<client::ack_handle> handle) {
    if (e->offset < _received_next || e->offset < _next) {
        if (handle) (void)handle->ack();
        return;
    }
    _received_next = e->offset + 1;
    _backlog_bytes += e->json.size();
    _backlog.push_back({e, std::move(handle)});
    // The replay is bounded by the ring and the catch-up window; live events
    // piling up behind it mean the browser cannot keep up.
    if (_backlog_bytes > _parts.config.ring_bytes + _parts.config.send_queue_bytes) {
        end_slow();
        return;
    }
    drain();
}

void stream_session::drain() {
    while (!_backlog.empty() && !_closed && queued_bytes() < _parts.config.send_queue_bytes / 2) {
        auto r = std::move(_backlog.front());
        _backlog.pop_front();
        _backlog_bytes -= r.e->json.size();
        const bool sent = push(r.e);
        if (sent) _parts.stats.delivered(r.e->subject, 1, std::nullopt);
        if (r.handle) {
            if (sent) {
                _catchup_acks.emplace_back(r.e->offset, std::move(*r.handle));
            } else {
                (void)r.handle->ack();
            }
        }
    }
}

bool stream_session::push(const event_ptr& e) {
    if (_slow || e->offset < _next) return false;  // seen (a ring backlog overlapping the fan-out)
    _next = e->offset + 1;
    _received_next = std::max(_received_next, _next);
    if (e->is_private && !_request.admin) return false;
    _last_sent = e->offset;
    if (_request.batch.count() > 0) {
        if (!e->is_private && !_parts.config.coalesce_subjects.empty() &&
            std::find(_parts.config.coalesce_subjects.begin(), _parts.config.coalesce_subjects.end(),
                      e->subject) != _parts.config.coalesce_subjects.end()) {
            std::erase_if(_batch, [&](const event_ptr& b) { return b->subject == e->subject; });
        }
        _batch.push_back(e);
        if (_batch.size() == 1) {
            if (!_batch_timer) _batch_timer.emplace(_loop.io);
            _batch_timer->expires_after(_request.batch);
            _batch_timer->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
                if (ec) return;
                if (auto s = weak.lock()) s->flush_batch();
            });
        }
        return true;
    }
    track(e);
    send_event(e);
    if (queued_bytes() > _parts.config.send_queue_bytes ||
        (_websocket && _inflight.size() > _parts.config.inflight_max)) {
        end_slow();
    }
    return true;
}

void stream_session::flush_batch() {
    if (_closed || _batch.empty()) return;
    std::vector<event_ptr> batch;
    batch.swap(_batch);
    for (const auto& e : batch) track(e);
    send_batch(batch);
    if (queued_bytes() > _parts.config.send_queue_bytes) {
        end_slow();
    }
}

void stream_session::track(const event_ptr& e) {
    if (!_websocket) return;
    const auto deadline = std::chrono::steady_clock::now() + _parts.config.ack_wait;
    _inflight[e->offset] = inflight{e, deadline, 0};
    _inflight_by_msg_id[e->msg_id] = e->offset;
    arm_resend_timer();
}

void stream_session::arm_resend_timer() {
    if (_resend_armed || _inflight.empty() || _closed) return;
    auto earliest = std::chrono::steady_clock::time_point::max();
    for (const auto& [offset, f] : _inflight) earliest = std::min(earliest, f.deadline);
    if (!_resend_timer) _resend_timer.emplace(_loop.io);
    _resend_timer->expires_at(earliest);
    _resend_armed = true;
    _resend_timer->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (ec) return;
        if (auto s = weak.lock()) s->on_resend_timer();
    });
}

void stream_session::on_resend_timer() {
    _resend_armed = false;
    if (_closed) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto it = _inflight.begin(); it != _inflight.end();) {
        auto& f = it->second;
        if (f.deadline > now) {
            ++it;
            continue;
        }
        if (f.resends >= _parts.config.max_resends) {
            _parts.stats.resends_given_up.fetch_add(1, std::memory_order_relaxed);
            _inflight_by_msg_id.erase(f.e->msg_id);
            it = _inflight.erase(it);
            continue;
        }
        ++f.resends;
        f.deadline = now + _parts.config.ack_wait;
        _parts.stats.resends.fetch_add(1, std::memory_order_relaxed);
        send_resend(*f.e, f.resends);
        ++it;
    }
    if (queued_bytes() > _parts.config.send_queue_bytes) {
        end_slow();
        return;
    }
    arm_resend_timer();
}

void stream_session::on_ack(std::string_view msg_id) {
    const auto it = _inflight_by_msg_id.find(std::string(msg_id));
    if (it == _inflight_by_msg_id.end()) return;
    _parts.stats.acks.fetch_add(1, std::memory_order_relaxed);
    _inflight.erase(it->second);
    _inflight_by_msg_id.erase(it);
}

std::string stream_session::resume_id() const {
    const std::uint64_t epoch = _hub ? _hub->epoch() : 0;
    if (!_inflight.empty()) {
        const auto first = _inflight.begin()->first;
        if (first == 0) return {};
        return format_event_id({epoch, first - 1});
    }
    if (_last_written) return format_event_id({epoch, *_last_written});
    if (_request.last_id) return format_event_id(*_request.last_id);
    return {};
}

void stream_session::written_event(std::uint64_t offset) {
    _last_written = offset;
    while (!_catchup_acks.empty() && _catchup_acks.front().first <= offset) {
        (void)_catchup_acks.front().second.ack();
        _catchup_acks.pop_front();
    }
}

void stream_session::on_write_done() {
    if (!_closed) drain();
}

void stream_session::opened() {
    _loop.streams.insert(this);
    (_websocket ? _parts.stats.websocket_connections : _parts.stats.sse_connections)
        .fetch_add(1, std::memory_order_relaxed);
}

void stream_session::closed() {
    if (_closed) return;
    _closed = true;
    if (_loop.streams.erase(this) > 0) {
        (_websocket ? _parts.stats.websocket_connections : _parts.stats.sse_connections)
            .fetch_sub(1, std::memory_order_relaxed);
    }
    if (_in_member_list) {
        auto& list = _loop.members[_hub.get()];
        if (_loop.walking == _hub.get()) {
            std::replace(list.begin(), list.end(), this, static_cast<stream_session*>(nullptr));
            _loop.walked_list_has_holes = true;
        } else {
            std::erase(list, this);
            if (list.empty()) _loop.members.erase(_hub.get());
        }
        _in_member_list = false;
    }
    for (auto& [offset, handle] : _catchup_acks) (void)handle.ack();
    _catchup_acks.clear();
    for (auto& r : _backlog) {
        if (r.handle) (void)r.handle->ack();
    }
    _backlog.clear();
    _backlog_bytes = 0;
    for (auto& [e, handle] : _catchup_early) (void)handle.ack();
    _catchup_early.clear();
    release_catchup();
    if (_hub) {
        _hub->leave(_loop.index);
    }
    if (_batch_timer) _batch_timer->cancel();
    if (_resend_timer) _resend_timer->cancel();
    _mode = mode::ended;
}

void deliver_to_members(loop_context& ctx, gateway_stats& stats, const hub& h, const event_ptr& e) {
    const auto it = ctx.members.find(&h);
    if (it == ctx.members.end()) return;
    // A member may close while it is handed the event (see loop_context::walking);
    // members that join meanwhile are appended and get it too (their offset check drops repeats).
    ctx.walking = &h;
    // Latency is taken per chunk of members, so a long walk shows as it is.
    constexpr std::uint64_t chunk = 256;
    std::uint64_t sent = 0;
    const auto record = [&] {
        if (sent == 0) return;
        const auto now = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                        std::chrono::system_clock::now().time_since_epoch())
                                                        .count());
        stats.delivered(e->subject, sent, now > e->timestamp_ns ? now - e->timestamp_ns : 0);
        sent = 0;
    };
    for (std::size_t i = 0; i < it->second.size(); ++i) {
        if (auto* s = it->second[i]; s != nullptr) sent += s->deliver(e) ? 1 : 0;
        if (sent == chunk) record();
    }
    record();
    ctx.walking = nullptr;
    if (ctx.walked_list_has_holes) {
        ctx.walked_list_has_holes = false;
        std::erase(it->second, nullptr);
        if (it->second.empty()) ctx.members.erase(it);
    }
}

}  // namespace nagare::gateway
