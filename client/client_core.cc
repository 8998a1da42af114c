// client_core: construction, the producer side (validate, submit), flush,
// close and stats. The I/O thread is in io_thread.cc.
#include "client/client_core.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include <sys/eventfd.h>
#include <unistd.h>

#include "client/limits.h"
#include "client/wire_size.h"
#include "protocol/assert.h"
#include "protocol/subject.h"
#include "protocol/validate.h"

namespace nagare::client::detail {

namespace {

std::unexpected<error> fail(errc code, std::string message) {
    return std::unexpected(error{code, std::move(message)});
}

}  // namespace

void batch_state::complete(std::size_t index, publish_result&& result) {
    if (on_each) {
        on_each(index, result);
    } else {
        results[index] = std::move(result);
    }
    if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (on_done) {
        on_done(results);
    } else if (promise) {
        promise->set_value(std::move(results));
    }
}

void run_completion(completion& done, publish_result&& result) {
    if (auto* callback = std::get_if<publish_callback>(&done)) {
        if (*callback) (*callback)(result);
    } else if (auto* promise = std::get_if<std::promise<publish_result>>(&done)) {
        promise->set_value(std::move(result));
    } else if (auto* batch = std::get_if<batch_ref>(&done)) {
        batch->state->complete(batch->index, std::move(result));
    }
    done = std::monostate{};
}

client_core::client_core(endpoint where, socket_address address, options opts)
    : _where(std::move(where)),
      _address(address),
      _options(std::move(opts)),
      _wake_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      _slots(_options.max_inflight_messages),
      _sessions(sessions_max),
      _routes(_where.port),
      _read_buffer(read_buffer_bytes),
      _jitter_rng(std::random_device{}()) {
    NG_ASSERT(_wake_fd.valid(), "eventfd failed");
    _free_slots.reserve(_slots.size());
    for (std::size_t i = _slots.size(); i-- > 0;) {
        _free_slots.push_back(static_cast<std::uint32_t>(i));
    }
    _sessions[0] = std::make_unique<session>(_where.port, _slots.size());
    _session_count = 1;
    _refs.reserve(_options.max_batch_messages);
    _freed.reserve(_slots.size());
}

client_core::~client_core() { close(); }

bool client_core::on_io_thread() const noexcept { return std::this_thread::get_id() == _io_id; }

std::expected<void, error> client_core::start() {
    _io = std::thread([this] { run(); });
    _io_id = _io.get_id();
    std::unique_lock lock(_mutex);
    // The I/O thread decides within connect_timeout; the margin only guards a bug.
    const bool decided =
        _connect_cv.wait_for(lock, _options.connect_timeout + std::chrono::seconds{5},
                             [&] { return _connect_phase != connect_phase::pending; });
    if (decided && _connect_phase == connect_phase::ready) return {};
    auto why = decided ? _connect_error
                       : error{errc_unavailable, "no answer to Hello within connect_timeout"};
    lock.unlock();
    close();
    return std::unexpected(std::move(why));
}

std::expected<void, error> client_core::validate(const message& m) const {
    using protocol::errc;
    if (protocol::validate_project(m.project) != errc::none) {
        return fail(errc::bad_project, "bad project: 1..128 bytes of [A-Za-z0-9_.:-]");
    }
    if (protocol::validate_subject(m.subject) != errc::none) {
        return fail(errc::bad_subject,
                    "bad subject: 2..16 tokens of [A-Za-z0-9_-] joined by '.', at most 256 bytes");
    }
    if (!m.options.msg_id.empty() && protocol::validate_msg_id(m.options.msg_id) != errc::none) {
        return fail(errc::bad_msg_id, "bad msg_id: 1..128 bytes of printable ASCII, no space");
    }
    if (m.options.headers.size() > protocol::headers_max) {
        return fail(errc::bad_headers, "too many headers: at most 64");
    }
    std::size_t field_bytes = m.project.size() + m.subject.size() +
                              std::max(m.options.msg_id.size(), protocol::ulid_chars) +
                              m.payload.size();
    for (const auto& h : m.options.headers) {
        if (protocol::validate_header(h.key, h.value) != errc::none) {
            return fail(errc::bad_headers,
                        "bad header: key 1..64 bytes of [A-Za-z0-9_-], value at most 1024 bytes");
        }
        field_bytes += h.key.size() + h.value.size();
    }
    if (m.payload.size() > _payload_bytes_max) {
        return fail(errc::payload_too_large, "payload of " + std::to_string(m.payload.size()) +
                                                 " bytes is above the server's maximum of " +
                                                 std::to_string(_payload_bytes_max));
    }
    if (message_wire_bytes(field_bytes, m.options.headers.size()) + frame_overhead_bytes >
        _frame_bytes_max) {
        return fail(errc::payload_too_large, "message does not fit in the server's maximum frame");
    }
    return {};
}

std::expected<void, error> client_core::wait_for_slots(std::unique_lock<std::mutex>& lock,
                                                       std::size_t count, bool may_block) {
    while (true) {
        if (_closing || _io_done) return fail(errc_closed, "client is closed");
        if (_free_slots.size() >= count) return {};
        if (!may_block || on_io_thread()) {
            return fail(errc::overloaded,
                        "in-flight window full (" + std::to_string(_slots.size()) + " messages)");
        }
        ++_slot_waiters;
        _slot_cv.wait(lock);
        --_slot_waiters;
    }
}

std::expected<void, error> client_core::submit(const message& m, completion&& done,
                                               bool may_block) {
    std::unique_lock lock(_mutex);
    if (auto room = wait_for_slots(lock, 1, may_block); !room) return room;
    enqueue_locked(m, std::move(done));
    return {};
}

std::expected<void, error> client_core::submit_batch(std::span<const message> messages,
                                                     const std::shared_ptr<batch_state>& state,
                                                     bool may_block) {
    if (messages.size() > _slots.size()) {
        return fail(errc::bad_request, "batch of " + std::to_string(messages.size()) +
                                           " messages is larger than max_inflight_messages");
    }
    std::unique_lock lock(_mutex);
    if (auto room = wait_for_slots(lock, messages.size(), may_block); !room) return room;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        enqueue_locked(messages[i], batch_ref{state, i});
    }
    return {};
}

void client_core::enqueue_locked(const message& m, completion&& done) {
    NG_ASSERT(!_free_slots.empty(), "enqueue without a free slot");
    const auto index = _free_slots.back();
    _free_slots.pop_back();
    auto& s = _slots[index];
    NG_ASSERT(!s.in_use, "free slot in use");
    s.bytes.clear();
    s.bytes.append(m.project).append(m.subject);
    if (m.options.msg_id.empty()) {
        const auto id = _ulids.next();
        s.bytes.append(id.data(), id.size());
        s.msg_id_bytes = static_cast<std::uint32_t>(id.size());
    } else {
        s.bytes.append(m.options.msg_id);
        s.msg_id_bytes = static_cast<std::uint32_t>(m.options.msg_id.size());
    }
    s.bytes.append(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    s.header_bytes.clear();
    for (const auto& h : m.options.headers) {
        s.bytes.append(h.key).append(h.value);
        s.header_bytes.emplace_back(static_cast<std::uint32_t>(h.key.size()),
                                    static_cast<std::uint32_t>(h.value.size()));
    }
    s.project_bytes = static_cast<std::uint32_t>(m.project.size());
    s.subject_bytes = static_cast<std::uint32_t>(m.subject.size());
    s.payload_bytes = static_cast<std::uint32_t>(m.payload.size());
    s.wire_bytes = message_wire_bytes(s.bytes.size(), s.header_bytes.size());
    s.seq = _next_seq++;
    s.in_use = true;
    s.done = std::move(done);
    ++_unresolved;
    const auto port = _routes.port_for(m.project, m.subject);
    _sessions[session_for_locked(port)]->pending.push_back(index);
    wake_io_locked();
}

std::size_t client_core::session_for_locked(std::uint16_t port) {
    for (std::size_t i = 0; i < _session_count; ++i) {
        if (_sessions[i]->port == port) return i;
    }
    // A node that changed its shard ports across restarts could exhaust the
    // table: the url's port still reaches every partition (the node forwards).
    if (_session_count == _sessions.size()) return 0;
    _sessions[_session_count] = std::make_unique<session>(port, _slots.size());
    return _session_count++;
}

void client_core::wake_io_locked() noexcept {
    if (!_io_waiting) return;
    _io_waiting = false;
    const std::uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the thread will wake anyway.
    [[maybe_unused]] const auto n = ::write(_wake_fd.get(), &one, sizeof one);
}

bool client_core::flush(std::chrono::milliseconds wait_max) {
    NG_ASSERT(!on_io_thread(), "flush() from the I/O thread (a callback) would never return");
    std::unique_lock lock(_mutex);
    const auto target = _next_seq;
    const auto done = [&] {
        if (_completing) return false;
        if (_unresolved == 0) return true;
        return std::ranges::none_of(_slots,
                                    [&](const slot& s) { return s.in_use && s.seq < target; });
    };
    ++_flush_waiters;
    bool flushed = false;
    if (wait_max == std::chrono::milliseconds::max()) {
        _resolved_cv.wait(lock, [&] { return done() || _io_done; });
        flushed = done();
    } else {
        flushed =
            _resolved_cv.wait_for(lock, wait_max, [&] { return done() || _io_done; }) && done();
    }
    --_flush_waiters;
    return flushed;
}

void client_core::close() noexcept {
    NG_ASSERT(!on_io_thread(), "close() from the I/O thread (a callback)");
    {
        std::lock_guard lock(_mutex);
        _closing = true;
        _io_waiting = true;
        wake_io_locked();
        _slot_cv.notify_all();
    }
    std::lock_guard joiner(_close_mutex);
    if (_io.joinable()) _io.join();
}

std::expected<Subscription, error> client_core::subscribe(std::string_view stream,
                                                          subscription_filter filter,
                                                          subscribe_options options,
                                                          message_handler handler) {
    if (on_io_thread()) {
        return fail(errc::bad_request,
                    "subscribe() from a handler or callback would block the I/O thread");
    }
    std::shared_ptr<subscription_state> state;
    {
        std::lock_guard lock(_mutex);
        if (_closing || _io_done) return fail(errc_closed, "client is closed");
        if (_new_subscriptions.size() + _live_subscriptions.load(std::memory_order_relaxed) >=
            subscriptions_max) {
            return fail(errc::overloaded, "too many subscriptions (at most " +
                                              std::to_string(subscriptions_max) + ")");
        }
        const auto id = subscription_id_bit | ++_next_subscription;
        state = std::make_shared<subscription_state>(id, std::string(stream), std::move(filter),
                                                     std::move(options), std::move(handler), *this);
        _new_subscriptions.push_back(state);
        wake_io_locked();
    }
    if (auto subscribed = state->wait_subscribed(); !subscribed) {
        return std::unexpected(std::move(subscribed.error()));
    }
    return subscription_access::make(std::move(state));
}

void client_core::notify_subscriptions() noexcept {
    std::lock_guard lock(_mutex);
    _subscription_work = true;
    wake_io_locked();
}

client_stats client_core::stats() const {
    client_stats out;
    out.messages_sent = _messages_sent.load(std::memory_order_relaxed);
    out.messages_resent = _messages_resent.load(std::memory_order_relaxed);
    out.frames_sent = _frames_sent.load(std::memory_order_relaxed);
    out.acknowledged = _acknowledged.load(std::memory_order_relaxed);
    out.failed = _failed.load(std::memory_order_relaxed);
    out.reconnects = _reconnects.load(std::memory_order_relaxed);
    std::lock_guard lock(_mutex);
    out.unresolved = _unresolved;
    out.sessions = _session_count;
    return out;
}

}  // namespace nagare::client::detail
