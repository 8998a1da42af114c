#include "broker/session.h"

#include <cstring>

#include "protocol/assert.h"
#include "protocol/subject.h"
#include "protocol/validate.h"

namespace nagare::broker {

namespace fb = protocol::fb;
using protocol::errc;

session::session(session_host& host, io::ring& ring, io::buffer_ring& buffers,
                 const session_limits& limits, std::uint32_t slot)
    : _host(host),
      _limits(limits),
      _slot(slot),
      _connection(ring, buffers, limits.send_queue_bytes),
      _decoder({.frame_bytes_max = limits.max_frame_bytes}),
      _encoder(4u << 10),
      _tracker(limits.max_pending_publish + protocol::messages_per_publish_max, 1024) {
    _headers.reserve(protocol::headers_max);
}

void session::open(int fd) noexcept {
    _decoder = protocol::frame_decoder({.frame_bytes_max = _limits.max_frame_bytes});
    _tracker.reset();
    _token = nullptr;
    _hello_done = false;
    _closing = false;
    _held.clear();
    _held_consumed = 0;
    _resume_base.reset();
    _last_heard_ns = _host.now_ns();
    _pings_unanswered = 0;
    _connection.open(fd, *this);
}

void session::on_data(std::span<const std::byte> bytes) noexcept {
    _last_heard_ns = _host.now_ns();
    _pings_unanswered = 0;
    const auto status = _decoder.feed(bytes, [&](const protocol::frame_view& frame) {
        if (_closing) return;
        if (!_held.empty()) {
            hold(frame.bytes);
            return;
        }
        handle_frame(frame);
    });
    if (!status && !_closing) {
        fail(status.error(),
             status.error() == errc::frame_too_large ? "frame length above the limit"
                                                      : "frame failed verification",
             true);
    }
}

bool session::handle_frame(const protocol::frame_view& frame) noexcept {
    const auto type = frame.type();
    if (!_hello_done && type != fb::Body::Hello) {
        fail(errc::bad_request, "the first frame must be Hello", true);
        return false;
    }
    switch (type) {
        case fb::Body::Hello: return handle_hello(*frame.as<fb::Hello>());
        case fb::Body::Publish: {
            const bool done = handle_publish(*frame.as<fb::Publish>());
            if (!done && !_replaying) hold(frame.bytes);
            return done;
        }
        case fb::Body::Admin: _host.admin(*this, *frame.as<fb::Admin>()); return true;
        case fb::Body::Ping:
            send_or_close(_encoder.pong(frame.as<fb::Ping>()->nonce()));
            return true;
        case fb::Body::Pong: return true;
        case fb::Body::Subscribe: _host.subscribe(*this, *frame.as<fb::Subscribe>()); return true;
        case fb::Body::Ack: _host.ack(*this, *frame.as<fb::Ack>()); return true;
        case fb::Body::Unsubscribe:
            _host.unsubscribe(*this, frame.as<fb::Unsubscribe>()->subscription_id());
            return true;
        default:
            fail(errc::bad_request, "this frame type is sent by servers only", false);
            return true;
    }
}

bool session::handle_hello(const fb::Hello& hello) noexcept {
    if (_hello_done) {
        fail(errc::bad_request, "Hello was already sent", false);
        return true;
    }
    if (hello.protocol_version() != protocol::protocol_version) {
        fail(errc::unsupported_version, "this server speaks protocol version 1", true);
        return false;
    }
    const auto& tokens = _host.config().tokens;
    if (!tokens.empty()) {
        const auto given = protocol::view(hello.auth_token());
        for (const auto& t : tokens) {
            if (t.token == given) _token = &t;
        }
        if (_token == nullptr) {
            fail(errc::not_authorized, "unknown token", true);
            return false;
        }
    }
    _hello_done = true;
    send_or_close(_host.hello_ok(_encoder));
    return true;
}

bool session::may_publish(std::string_view subject) const noexcept {
    if (_token == nullptr) return true;
    for (const auto& pattern : _token->publish) {
        if (protocol::subject_matches(pattern, subject)) return true;
    }
    return false;
}

bool session::handle_publish(const fb::Publish& publish) noexcept {
    const auto* messages = publish.messages();
    const auto count = messages == nullptr ? 0u : messages->size();
    if (count > protocol::messages_per_publish_max) {
        fail(errc::bad_request, "more than 4096 messages in one Publish", false);
        return true;
    }
    if (!_resume_base) {
        const auto base = _tracker.begin(publish.request_id(), count, _host.streams());
        if (!base) {  // too much pending: the frame is held, begin() is retried
            _host.stalled(*this);
            update_reading();
            return false;
        }
        _resume_base = *base;
        _resume_index = 0;
    }
    if (!publish_from(publish, _resume_index)) {
        _host.stalled(*this);
        update_reading();
        return false;
    }
    _resume_base.reset();
    send_ready_acks();
    update_reading();
    return true;
}

bool session::publish_from(const fb::Publish& publish, std::uint32_t index) noexcept {
    const auto* messages = publish.messages();
    const auto count = messages == nullptr ? 0u : messages->size();
    const std::uint32_t base = *_resume_base;
    for (; index < count; ++index) {
        const auto& m = *messages->Get(index);
        const std::uint32_t ticket_index = base | index;
        auto reject = [&](errc code) {
            _tracker.resolve(ticket_index, fb::PubAckEntry(0, 0, 0, static_cast<fb::ErrorCode>(code), false));
        };
        if (const auto e = protocol::validate_message(m, _limits.max_payload_bytes); e != errc::none) {
            reject(e);
            continue;
        }
        const auto subject = protocol::view(m.subject());
        if (!may_publish(subject)) {
            reject(errc::not_authorized);
            continue;
        }
        _headers.clear();
        if (const auto* headers = m.headers()) {
            for (const auto* h : *headers) _headers.push_back({protocol::view(h->key()), protocol::view(h->value())});
        }
        const protocol::message_ref ref{protocol::view(m.project()), subject,
                                        protocol::view(m.msg_id()), _headers,
                                        protocol::view(m.payload())};
        const auto& stream = _host.streams()->route(subject);
        const publish_ticket ticket{_slot, _generation, ticket_index, 0};
        if (_host.publish(stream, ref, ticket) == partition::accepted::busy) {
            _resume_index = index;
            return false;
        }
    }
    return true;
}

void session::resolve(std::uint32_t ticket_index, const fb::PubAckEntry& entry) noexcept {
    if (_tracker.resolve(ticket_index, entry)) send_ready_acks();
}

void session::send_ready_acks() noexcept {
    bool sent = false;
    while (_tracker.front_ready() && _connection.is_open()) {
        const auto frame = _tracker.encode_front(_encoder);
        if (!_connection.send(frame)) break;  // on_send_space will call again
        _tracker.pop_front();
        sent = true;
    }
    if (sent) update_reading();
}

void session::on_send_space() noexcept {
    send_ready_acks();
    send_held_frames();
}

session_subscription* session::find_subscription(std::uint64_t id) noexcept {
    for (auto& sub : _subscriptions) {
        if (sub.id == id) return &sub;
    }
    return nullptr;
}

void session::deliver(deliver_frame* frame) noexcept {
    const auto* sub = find_subscription(frame->to.subscription_id);
    const bool wanted = _connection.is_open() && !_closing && frame->to.generation == _generation &&
                        sub != nullptr && frame->owner < sub->handles.size() &&
                        sub->handles[frame->owner] == frame->consumer_handle;
    if (!wanted) {
        frame->taken = false;
        _host.return_frame(frame);
        return;
    }
    _held_frames.push_back(frame);
    send_held_frames();
}

void session::send_held_frames() noexcept {
    std::size_t sent = 0;
    const auto watermark = _limits.send_queue_bytes / 2;
    for (; sent < _held_frames.size(); ++sent) {
        auto* frame = _held_frames[sent];
        if (_connection.send_queued_bytes() >= watermark) {
            _connection.want_send_space(_connection.send_capacity_bytes() - watermark);
            break;
        }
        if (!_connection.send(frame->bytes)) break;  // on_send_space follows the refusal
        frame->taken = true;
        _host.return_frame(frame);
    }
    _held_frames.erase(_held_frames.begin(), _held_frames.begin() + static_cast<std::ptrdiff_t>(sent));
}

void session::fail_request(std::uint64_t request_id, errc code, std::string_view message) noexcept {
    if (!_connection.is_open() || _closing) return;
    send_or_close(_encoder.error(request_id, code, message));
}

void session::hold(std::span<const std::byte> frame) noexcept {
    _held.insert(_held.end(), frame.begin(), frame.end());
}

bool session::retry() noexcept {
    _replaying = true;
    struct replay_end {
        bool& flag;
        ~replay_end() { flag = false; }
    } end{_replaying};
    while (_held_consumed < _held.size() && !_closing) {
        std::uint32_t length = 0;
        std::memcpy(&length, _held.data() + _held_consumed, sizeof length);
        const auto whole = protocol::frame_prefix_bytes + length;
        const auto frame = _decoder.verify(std::span(_held).subspan(_held_consumed, whole));
        NG_ASSERT(frame.has_value(), "a held frame was verified before");
        if (!handle_frame(*frame)) return false;
        _held_consumed += whole;
    }
    _held.clear();
    _held_consumed = 0;
    update_reading();
    return true;
}

void session::update_reading() noexcept {
    if (!_connection.is_open()) return;
    const bool want = !_closing && _held.empty() &&
                      _tracker.pending_messages() < _limits.max_pending_publish;
    if (want && _connection.reading_paused()) _connection.resume_reading();
    if (!want && !_connection.reading_paused()) _connection.pause_reading();
}

void session::fail(errc code, std::string_view message, bool close_after) noexcept {
    if (_connection.is_open()) {
        const auto frame = _encoder.error(0, code, message);
        if (!_connection.send(frame)) close_after = true;
    }
    if (close_after) {
        _closing = true;
        _connection.close_after_send();
    }
}

void session::send_or_close(std::span<const std::byte> frame) noexcept {
    if (!_connection.is_open()) return;
    if (!_connection.send(frame)) {
        _closing = true;
        _connection.close();
    }
}

void session::tick(std::uint64_t now_ns) noexcept {
    if (!_connection.is_open() || now_ns - _last_heard_ns < _limits.ping_interval_ns) return;
    if (_pings_unanswered >= 2) {
        _closing = true;
        _connection.close();
        return;
    }
    ++_pings_unanswered;
    _last_heard_ns = now_ns;
    send_or_close(_encoder.ping(now_ns));
}

void session::on_closed(int /*error*/) noexcept {
    for (auto* frame : _held_frames) {
        frame->taken = false;
        _host.return_frame(frame);
    }
    _held_frames.clear();
    ++_generation;
    _tracker.reset();
    _held.clear();
    _held_consumed = 0;
    _resume_base.reset();
    _host.closed(*this);
}

}  // namespace nagare::broker
