// client_core's I/O thread: one per Client, owns every socket.
//
// One loop turn: take queued messages and new subscriptions (under the
// mutex), run each session's timers (connect, backoff, give up), write the
// subscriptions' frames (Subscribe, Ack, Unsubscribe) and Publish frames,
// sleep in poll(2) on every socket and the wake eventfd, read and dispatch
// frames, then resolve acknowledged slots and run their completions
// without holding the mutex.
#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client_core.h"
#include "client/limits.h"
#include "protocol/assert.h"

namespace nagare::client::detail {

namespace fb = protocol::fb;

namespace {

std::string where_text(std::string_view host, std::uint16_t port) {
    return std::string(host) + ":" + std::to_string(port);
}

}  // namespace

void client_core::run() noexcept {
    std::vector<pollfd> fds;
    std::vector<std::size_t> fd_session;  // fds[k] (k >= 1) belongs to session fd_session[k]
    fds.reserve(sessions_max + 1);
    fd_session.reserve(sessions_max + 1);
    while (true) {
        auto now = clock::now();
        std::size_t count = 0;
        {
            std::lock_guard lock(_mutex);
            _io_waiting = false;
            if (_closing) break;
            count = _session_count;
            gather_locked(count);
            _adopting.swap(_new_subscriptions);
            if (std::exchange(_subscription_work, false)) _subscriptions_due = true;
        }
        for (std::size_t i = 0; i < count; ++i) {
            auto& s = *_sessions[i];
            advance(s, now);
            if (i == 0) service_subscriptions(s, now);
            if (s.state == session_state::ready) {
                encode(s);
                write_out(s);
            }
            // After the write: unsubscribe() returns once its frames met the socket.
            if (i == 0) _subscriber.release_closed();
            if (s.lost) drop(s, *s.lost, now);
        }
        finish_completions();

        fds.clear();
        fd_session.clear();
        fds.push_back({_wake_fd.get(), POLLIN, 0});
        fd_session.push_back(0);
        for (std::size_t i = 0; i < count; ++i) {
            const auto& s = *_sessions[i];
            if (!s.fd.valid()) continue;
            short events = POLLIN;
            if (s.state == session_state::connecting) {
                events = POLLOUT;
            } else if (s.out_sent < s.out.size()) {
                events |= POLLOUT;
            }
            fds.push_back({s.fd.get(), events, 0});
            fd_session.push_back(i);
        }
        int wait_ms = 0;
        {
            std::lock_guard lock(_mutex);
            if (!_closing && _session_count == count && !has_sendable_locked(count) &&
                !_subscriptions_due) {
                wait_ms = poll_wait_ms(count, now);
                _io_waiting = wait_ms != 0;
            }
        }
        const int ready = ::poll(fds.data(), fds.size(), wait_ms);
        if (ready <= 0) continue;
        if ((fds[0].revents & POLLIN) != 0) {
            std::uint64_t wakes = 0;
            [[maybe_unused]] const auto n = ::read(_wake_fd.get(), &wakes, sizeof wakes);
        }
        now = clock::now();
        for (std::size_t k = 1; k < fds.size(); ++k) {
            const auto revents = fds[k].revents;
            if (revents == 0) continue;
            auto& s = *_sessions[fd_session[k]];
            if (s.state == session_state::connecting) {
                on_connected(s, now);
            } else {
                if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0) read_in(s);
                if (!s.lost && (revents & POLLOUT) != 0) write_out(s);
            }
            if (s.lost) drop(s, *s.lost, now);
        }
        finish_completions();
    }
    shutdown();
}

std::size_t client_core::send_room(const session& s) const noexcept {
    if (s.pending_publish_max == 0) return _slots.size();
    return s.pending_publish_max > s.inflight_messages ? s.pending_publish_max - s.inflight_messages
                                                       : 0;
}

void client_core::gather_locked(std::size_t session_count) {
    for (std::size_t i = 0; i < session_count; ++i) {
        auto& s = *_sessions[i];
        if (s.state != session_state::ready) continue;
        auto room = send_room(s);
        const auto unsent = s.out.size() - s.out_sent;
        std::size_t bytes = 0;
        while (room > 0 && !s.pending.empty() && unsent + bytes < out_buffer_high_bytes) {
            const auto index = s.pending.pop_front();
            s.sending.push_back(index);
            bytes += _slots[index].wire_bytes;
            --room;
        }
    }
}

bool client_core::has_sendable_locked(std::size_t session_count) const noexcept {
    if (_subscription_work || !_new_subscriptions.empty()) return true;
    for (std::size_t i = 0; i < session_count; ++i) {
        const auto& s = *_sessions[i];
        if (s.state == session_state::ready && !s.pending.empty() && send_room(s) > 0 &&
            s.out.size() - s.out_sent < out_buffer_high_bytes) {
            return true;
        }
    }
    return false;
}

int client_core::poll_wait_ms(std::size_t session_count, clock::time_point now) const {
    clock::duration wait = std::chrono::milliseconds{poll_wait_ms_max};
    for (std::size_t i = 0; i < session_count; ++i) {
        const auto& s = *_sessions[i];
        switch (s.state) {
            case session_state::idle:
                return 0;
            case session_state::backoff:
            case session_state::connecting:
            case session_state::hello_wait:
                wait = std::min(wait, s.deadline - now);
                break;
            case session_state::ready:
            case session_state::parked:
                break;
        }
        if (_options.give_up_after && s.down_since && !s.pending.empty() &&
            s.state != session_state::ready) {
            wait = std::min(wait, *s.down_since + *_options.give_up_after - now);
        }
    }
    if (wait <= clock::duration::zero()) return 0;
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
}

void client_core::advance(session& s, clock::time_point now) {
    switch (s.state) {
        case session_state::idle:
            start_connect(s, now);
            break;
        case session_state::backoff:
            if (now >= s.deadline) start_connect(s, now);
            break;
        case session_state::connecting:
        case session_state::hello_wait:
            if (now >= s.deadline) {
                drop(s,
                     error{errc_unavailable, "no HelloOk from " + where_text(_where.host, s.port) +
                                                 " within connect_timeout"},
                     now);
            }
            break;
        case session_state::ready:
        case session_state::parked:
            break;
    }
    give_up_if_due(s, now);
}

void client_core::start_connect(session& s, clock::time_point now) {
    auto fd = client::start_connect(with_port(_address, s.port));
    if (!fd) {
        drop(s,
             error{errc_unavailable, "cannot connect to " + where_text(_where.host, s.port) + ": " +
                                         errno_text(fd.error())},
             now);
        return;
    }
    s.fd = std::move(*fd);
    s.state = session_state::connecting;
    s.deadline = now + _options.connect_timeout;
}

void client_core::on_connected(session& s, clock::time_point now) {
    if (const int err = connect_error(s.fd.get()); err != 0) {
        drop(s,
             error{errc_unavailable,
                   "cannot connect to " + where_text(_where.host, s.port) + ": " + errno_text(err)},
             now);
        return;
    }
    const auto hello = _encoder.hello(_options.client_name, _options.token);
    s.out.insert(s.out.end(), hello.begin(), hello.end());
    s.state = session_state::hello_wait;
    write_out(s);
}

void client_core::encode(session& s) {
    // Each frame holds at least one message (validate() sized it against the limit).
    const auto budget =
        s.frame_bytes_max > frame_overhead_bytes ? s.frame_bytes_max - frame_overhead_bytes : 0;
    std::size_t first = 0;
    while (first < s.sending.size()) {
        std::size_t last = first;
        std::size_t bytes = 0;
        while (last < s.sending.size() && last - first < _options.max_batch_messages) {
            const auto wire = _slots[s.sending[last]].wire_bytes;
            if (last > first && bytes + wire > budget) break;
            bytes += wire;
            ++last;
        }
        const std::span<const std::uint32_t> frame_slots(s.sending.data() + first, last - first);
        _header_refs.clear();
        for (const auto index : frame_slots) {
            const auto& m = _slots[index];
            std::size_t at = m.project_bytes + m.subject_bytes + m.msg_id_bytes + m.payload_bytes;
            for (const auto& [key, value] : m.header_bytes) {
                _header_refs.push_back({std::string_view(m.bytes).substr(at, key),
                                        std::string_view(m.bytes).substr(at + key, value)});
                at += key + value;
            }
        }
        _refs.clear();
        std::size_t header_at = 0;
        for (const auto index : frame_slots) {
            const auto& m = _slots[index];
            const std::string_view all(m.bytes);
            const std::size_t payload_at = m.project_bytes + m.subject_bytes + m.msg_id_bytes;
            _refs.push_back(
                {all.substr(0, m.project_bytes), all.substr(m.project_bytes, m.subject_bytes),
                 all.substr(m.project_bytes + m.subject_bytes, m.msg_id_bytes),
                 std::span<const protocol::header_ref>(_header_refs)
                     .subspan(header_at, m.header_bytes.size()),
                 std::as_bytes(std::span(m.bytes.data() + payload_at, m.payload_bytes))});
            header_at += m.header_bytes.size();
        }
        const auto request_id = s.next_request_id++;
        const auto frame = _encoder.publish(request_id, _refs);
        s.out.insert(s.out.end(), frame.begin(), frame.end());
        std::vector<std::uint32_t> list;
        if (!s.spare_slot_lists.empty()) {
            list = std::move(s.spare_slot_lists.back());
            s.spare_slot_lists.pop_back();
        }
        list.assign(frame_slots.begin(), frame_slots.end());
        s.requests.push_back({request_id, std::move(list)});
        s.inflight_messages += frame_slots.size();
        _messages_sent.fetch_add(frame_slots.size(), std::memory_order_relaxed);
        _frames_sent.fetch_add(1, std::memory_order_relaxed);
        first = last;
    }
    s.sending.clear();
}

void client_core::write_out(session& s) {
    while (s.out_sent < s.out.size()) {
        const auto n =
            ::send(s.fd.get(), s.out.data() + s.out_sent, s.out.size() - s.out_sent, MSG_NOSIGNAL);
        if (n > 0) {
            s.out_sent += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        s.lost = error{errc_unavailable, "write to " + where_text(_where.host, s.port) +
                                             " failed: " + errno_text(errno)};
        return;
    }
    if (s.out_sent == s.out.size()) {
        s.out.clear();
        s.out_sent = 0;
    } else if (s.out_sent >= out_buffer_high_bytes) {
        s.out.erase(s.out.begin(), s.out.begin() + static_cast<std::ptrdiff_t>(s.out_sent));
        s.out_sent = 0;
    }
}

void client_core::read_in(session& s) {
    for (std::size_t turn = 0; turn < reads_per_turn_max; ++turn) {
        const auto n = ::recv(s.fd.get(), _read_buffer.data(), _read_buffer.size(), 0);
        if (n == 0) {
            s.lost = error{errc_unavailable,
                           "connection to " + where_text(_where.host, s.port) + " closed"};
            return;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            s.lost = error{errc_unavailable, "read from " + where_text(_where.host, s.port) +
                                                 " failed: " + errno_text(errno)};
            return;
        }
        const auto input =
            std::span<const std::byte>(_read_buffer).first(static_cast<std::size_t>(n));
        const auto fed = s.decoder.feed(input, [&](const protocol::frame_view& frame) {
            if (!s.lost) dispatch(s, frame);
        });
        if (!fed && !s.lost) {
            s.lost = error{fed.error(), "bad frame from the server: " +
                                            std::string(protocol::to_string(fed.error()))};
        }
        if (s.lost || static_cast<std::size_t>(n) < _read_buffer.size()) return;
    }
}

void client_core::dispatch(session& s, const protocol::frame_view& frame) {
    switch (frame.type()) {
        case fb::Body::HelloOk:
            on_hello_ok(s, *frame.as<fb::HelloOk>());
            break;
        case fb::Body::PubAck:
            on_pub_ack(s, *frame.as<fb::PubAck>());
            break;
        case fb::Body::Error:
            on_error_frame(s, *frame.as<fb::Error>());
            break;
        case fb::Body::Ping: {
            const auto pong = _encoder.pong(frame.as<fb::Ping>()->nonce());
            s.out.insert(s.out.end(), pong.begin(), pong.end());
            break;
        }
        // Subscriptions live on the url port's session only.
        case fb::Body::SubOk:
            if (&s != _sessions[0].get() || s.state != session_state::ready) break;
            _subscriber.on_sub_ok(*frame.as<fb::SubOk>());
            _subscriptions_due = _subscriptions_due || _subscriber.wants_service();
            break;
        case fb::Body::Deliver:
            if (&s != _sessions[0].get() || s.state != session_state::ready) break;
            _subscriber.on_deliver(*frame.as<fb::Deliver>(), clock::now());
            _subscriptions_due = _subscriptions_due || _subscriber.wants_service();
            break;
        // Pong, AdminResult and frames a client never receives are ignored.
        default:
            break;
    }
}

void client_core::on_hello_ok(session& s, const fb::HelloOk& hello) {
    if (s.state != session_state::hello_wait) return;
    if (hello.protocol_version() != protocol::protocol_version) {
        s.lost = error{errc::unsupported_version, "server speaks protocol version " +
                                                      std::to_string(hello.protocol_version())};
        return;
    }
    s.frame_bytes_max =
        hello.max_frame_bytes() == 0
            ? protocol::frame_bytes_max_default
            : std::min<std::size_t>(hello.max_frame_bytes(), protocol::frame_bytes_max_limit);
    s.pending_publish_max = hello.max_pending_publish();
    if (s.connected_once) _reconnects.fetch_add(1, std::memory_order_relaxed);
    s.state = session_state::ready;
    s.failures = 0;
    s.down_since.reset();
    s.connected_once = true;
    if (&s != _sessions[0].get()) return;
    _subscriptions_due = true;  // subscribe (again) on this connection
    auto routes = routing_table::from_hello(hello, _where.port, _options.shard_aware);
    std::lock_guard lock(_mutex);
    _routes = std::move(routes);
    if (_connect_phase != connect_phase::pending) return;
    _server.server_id = protocol::view(hello.server_id());
    _server.shard_count = hello.shard_count();
    if (const auto* ports = hello.shard_ports(); ports != nullptr) {
        _server.shard_ports.assign(ports->begin(), ports->end());
    }
    _server.frame_bytes_max = s.frame_bytes_max;
    _server.payload_bytes_max = hello.max_payload_bytes() == 0 ? protocol::payload_bytes_max_default
                                                               : hello.max_payload_bytes();
    _server.pending_publish_max = hello.max_pending_publish();
    _payload_bytes_max = _server.payload_bytes_max;
    _frame_bytes_max = _server.frame_bytes_max;
    _connect_phase = connect_phase::ready;
    _connect_cv.notify_all();
}

void client_core::on_pub_ack(session& s, const fb::PubAck& ack) {
    const auto request = std::ranges::find_if(
        s.requests, [&](const publish_request& r) { return r.request_id == ack.request_id(); });
    if (request == s.requests.end()) return;  // not ours (stale): ignore
    const auto* entries = ack.entries();
    const auto* streams = ack.streams();
    const auto& slots = request->slots;
    if (entries == nullptr || entries->size() != slots.size()) {
        const error e{errc::internal,
                      "PubAck with " + std::to_string(entries ? entries->size() : 0) +
                          " entries for " + std::to_string(slots.size()) + " messages"};
        for (const auto index : slots) resolve(index, std::unexpected(e));
    } else {
        for (std::uint32_t i = 0; i < slots.size(); ++i) {
            const auto* entry = entries->Get(i);
            if (entry->error() != fb::ErrorCode::NONE) {
                const auto code =
                    protocol::errc_from_wire(static_cast<std::uint16_t>(entry->error()));
                resolve(slots[i],
                        std::unexpected(
                            error{code, "not stored: " + std::string(protocol::to_string(code))}));
            } else if (streams == nullptr || entry->stream_index() >= streams->size()) {
                resolve(slots[i],
                        std::unexpected(error{errc::internal, "PubAck stream_index out of range"}));
            } else {
                resolve(slots[i],
                        position{std::string(protocol::view(streams->Get(entry->stream_index()))),
                                 partition_id{entry->partition()}, nagare::offset{entry->offset()},
                                 entry->duplicate()});
            }
        }
    }
    finish_request(s, request);
}

void client_core::on_error_frame(session& s, const fb::Error& frame) {
    const auto code = protocol::errc_from_wire(static_cast<std::uint16_t>(frame.code()));
    error e{code, std::string(protocol::to_string(code)) + ": " +
                      std::string(protocol::view(frame.message()))};
    if (s.state != session_state::ready || frame.request_id() == 0) {
        s.lost = std::move(e);  // about the connection: the server closes it
        return;
    }
    if ((frame.request_id() & subscription_id_bit) != 0) {
        if (&s == _sessions[0].get()) _subscriber.on_error(frame.request_id(), e);
        return;
    }
    const auto request = std::ranges::find_if(
        s.requests, [&](const publish_request& r) { return r.request_id == frame.request_id(); });
    if (request == s.requests.end()) return;
    for (const auto index : request->slots) resolve(index, std::unexpected(e));
    finish_request(s, request);
}

void client_core::service_subscriptions(session& s, clock::time_point now) {
    if (!_adopting.empty()) {
        _subscriber.adopt(_adopting);
        _subscriptions_due = true;
    }
    if (!_subscriptions_due) return;
    _subscriptions_due = false;
    _subscriber.service(s.state == session_state::ready, s.out, now);
    _live_subscriptions.store(_subscriber.size(), std::memory_order_relaxed);
}

void client_core::finish_request(session& s, std::deque<publish_request>::iterator request) {
    s.inflight_messages -= request->slots.size();
    request->slots.clear();
    s.spare_slot_lists.push_back(std::move(request->slots));
    s.requests.erase(request);
}

void client_core::resolve(std::uint32_t index, publish_result&& result) {
    auto& m = _slots[index];
    (result ? _acknowledged : _failed).fetch_add(1, std::memory_order_relaxed);
    _completions.emplace_back(std::move(m.done), std::move(result));
    m.done = std::monostate{};
    _freed.push_back(index);
}

void client_core::drop(session& s, error why, clock::time_point now) {
    s.lost.reset();
    s.fd.reset();
    s.out.clear();
    s.out_sent = 0;
    s.decoder = protocol::frame_decoder{};
    s.last_error = std::move(why);
    if (&s == _sessions[0].get() && s.connected_once) {
        _subscriber.on_connection_lost(now);
        _subscriptions_due = true;
    }
    if (&s == _sessions[0].get() && !s.connected_once) {
        // The first connect is connect()'s to report; it never retries.
        s.state = session_state::parked;
        std::lock_guard lock(_mutex);
        if (_connect_phase == connect_phase::pending) {
            _connect_phase = connect_phase::failed;
            _connect_error = s.last_error;
            _connect_cv.notify_all();
        }
        return;
    }
    if (!s.requests.empty()) {
        std::lock_guard lock(_mutex);
        for (auto r = s.requests.rbegin(); r != s.requests.rend(); ++r) {
            for (auto i = r->slots.rbegin(); i != r->slots.rend(); ++i) s.pending.push_front(*i);
        }
    }
    _messages_resent.fetch_add(s.inflight_messages, std::memory_order_relaxed);
    for (auto& r : s.requests) {
        r.slots.clear();
        s.spare_slot_lists.push_back(std::move(r.slots));
    }
    s.requests.clear();
    s.inflight_messages = 0;
    s.state = session_state::backoff;
    s.deadline = now + backoff_delay(s.failures);
    ++s.failures;
    if (!s.down_since) s.down_since = now;
}

void client_core::give_up_if_due(session& s, clock::time_point now) {
    if (!_options.give_up_after || !s.down_since || s.state == session_state::ready ||
        s.state == session_state::parked || now - *s.down_since < *_options.give_up_after) {
        return;
    }
    {
        std::lock_guard lock(_mutex);
        while (!s.pending.empty()) s.sending.push_back(s.pending.pop_front());
    }
    if (s.sending.empty()) return;
    const error e{errc_unavailable, "gave up after " +
                                        std::to_string(_options.give_up_after->count()) +
                                        " ms without a connection: " + s.last_error.message};
    for (const auto index : s.sending) resolve(index, std::unexpected(e));
    s.sending.clear();
}

clock::duration client_core::backoff_delay(std::size_t failures) {
    const auto& steps = _options.reconnect_backoff;
    const auto base =
        std::chrono::duration<double, std::milli>(steps[std::min(failures, steps.size() - 1)]);
    double factor = 1.0;
    if (_options.reconnect_jitter > 0) {
        std::uniform_real_distribution<double> jitter(1.0 - _options.reconnect_jitter,
                                                      1.0 + _options.reconnect_jitter);
        factor = jitter(_jitter_rng);
    }
    return std::chrono::duration_cast<clock::duration>(base * factor);
}

void client_core::finish_completions() {
    if (_freed.empty()) return;
    {
        std::lock_guard lock(_mutex);
        for (const auto index : _freed) {
            _slots[index].in_use = false;
            _free_slots.push_back(index);
        }
        _unresolved -= _freed.size();
        NG_DEBUG_ASSERT(_unresolved == _slots.size() - _free_slots.size(),
                        "every slot in use is unresolved");
        _completing = true;
        if (_slot_waiters > 0) _slot_cv.notify_all();
    }
    _freed.clear();
    for (auto& [done, result] : _completions) run_completion(done, std::move(result));
    _completions.clear();
    // flush() returns only once the callbacks of what it waited for have run.
    std::lock_guard lock(_mutex);
    _completing = false;
    if (_flush_waiters > 0) _resolved_cv.notify_all();
}

void client_core::shutdown() noexcept {
    const error closed{errc_closed, "client closed before the broker acknowledged"};
    std::size_t count = 0;
    {
        std::lock_guard lock(_mutex);
        count = _session_count;
        _adopting.insert(_adopting.end(), _new_subscriptions.begin(), _new_subscriptions.end());
        _new_subscriptions.clear();
    }
    // Subscriptions end without Unsubscribe: the connections close with them.
    _subscriber.shutdown(_adopting);
    _live_subscriptions.store(0, std::memory_order_relaxed);
    for (std::size_t i = 0; i < count; ++i) {
        auto& s = *_sessions[i];
        for (auto& r : s.requests) {
            for (const auto index : r.slots) resolve(index, std::unexpected(closed));
        }
        s.requests.clear();
        s.inflight_messages = 0;
        {
            std::lock_guard lock(_mutex);
            while (!s.pending.empty()) s.sending.push_back(s.pending.pop_front());
        }
        for (const auto index : s.sending) resolve(index, std::unexpected(closed));
        s.sending.clear();
        s.fd.reset();
    }
    finish_completions();
    std::lock_guard lock(_mutex);
    _io_done = true;
    if (_connect_phase == connect_phase::pending) {
        _connect_phase = connect_phase::failed;
        _connect_error = error{errc_closed, "client closed while connecting"};
    }
    _connect_cv.notify_all();
    _slot_cv.notify_all();
    _resolved_cv.notify_all();
}

}  // namespace nagare::client::detail
