#include "tools/gateway/transports.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace nagare::gateway {

namespace websocket = beast::websocket;
using error_code = boost::system::error_code;

http::response<http::string_body> error_response(unsigned status, std::string_view code,
                                                 std::string_view message, unsigned version,
                                                 bool keep_alive) {
    http::response<http::string_body> res{static_cast<http::status>(status), version};
    res.set(http::field::server, "nagare-gateway");
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-cache");
    std::string body = "{\"error\":";
    append_json_string(body, code);
    body += ",\"message\":";
    append_json_string(body, message);
    if (status == 503) {
        res.set(http::field::retry_after, "1");
        body += ",\"retry_ms\":1000";
    }
    body += "}";
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    return res;
}

// ---------------------------------------------------------------------------
// WebSocket

ws_session::ws_session(gateway_parts parts, loop_context& loop, stream_request request,
                       beast::tcp_stream stream, http_request upgrade)
    : stream_session(parts, loop, std::move(request), true),
      _ws(std::move(stream)),
      _upgrade(std::move(upgrade)) {}

void ws_session::reject(unsigned status, std::string_view code, std::string_view message) {
    auto res = std::make_shared<http::response<http::string_body>>(
        error_response(status, code, message, _upgrade.version(), false));
    auto self = shared_from_this();
    http::async_write(_ws.next_layer(), *res, [self, res](const error_code&, std::size_t) {
        auto& s = static_cast<ws_session&>(*self);
        error_code ignored;
        s._ws.next_layer().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
        s.end();
    });
}

void ws_session::start_transport() {
    opened();
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = _parts.config.heartbeat * 2;
    t.keep_alive_pings = true;
    _ws.set_option(t);
    _ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
        res.set(http::field::server, "nagare-gateway");
    }));
    // The message size limit is checked here (read_next), not by Beast: Beast
    // 1.74 fails an oversized message with a teardown that can reset the
    // connection before the browser reads the 1009.
    _ws.read_message_max(0);
    beast::get_lowest_layer(_ws).expires_never();
    auto self = shared_from_this();
    _ws.async_accept(_upgrade, [self](const error_code& ec) {
        auto& s = static_cast<ws_session&>(*self);
        if (ec) {
            s.end();
            return;
        }
        s._accepted = true;
        s._upgrade = {};
        s.read_next();
        s.write_next();
    });
}

void ws_session::enqueue(out_item item) {
    if (_closing || _ended) return;
    _queued_bytes += item.view().size();
    _queue.push_back(std::move(item));
    write_next();
}

void ws_session::send_event(const event_ptr& e) { enqueue(out_item{e, &e->json, {}, e->offset}); }

void ws_session::send_batch(std::span<const event_ptr> events) {
    auto item = text_item(json_array(events));
    item.offset = events.back()->offset;
    enqueue(std::move(item));
}

void ws_session::send_text(std::string json, std::string_view) {
    enqueue(text_item(std::move(json)));
}

void ws_session::send_resend(const event& e, std::uint32_t n) {
    enqueue(text_item(with_redelivered(e, n)));
}

void ws_session::write_next() {
    if (_writing || !_accepted || _queue.empty() || _closing || _ended) return;
    _writing = true;
    _ws.text(true);
    const auto text = _queue.front().view();
    auto self = shared_from_this();
    _ws.async_write(boost::asio::buffer(text.data(), text.size()),
                    [self](const error_code& ec, std::size_t) {
                        auto& s = static_cast<ws_session&>(*self);
                        s._writing = false;
                        if (ec || s._queue.empty()) {
                            s.end();
                            return;
                        }
                        const auto size = s._queue.front().view().size();
                        if (const auto o = s._queue.front().offset) s.written_event(*o);
                        s._queued_bytes -= size;
                        s._written_total += size;
                        s._queue.pop_front();
                        s.on_write_done();
                        s.write_next();
                    });
}

void ws_session::read_next() {
    auto self = shared_from_this();
    _ws.async_read_some(_read_buffer, 16 * 1024, [self](const error_code& ec, std::size_t) {
        auto& s = static_cast<ws_session&>(*self);
        if (ec) {
            // Beast has answered protocol errors (1002, 1007) itself.
            s.end();
            return;
        }
        if (s._read_buffer.size() > s._parts.config.ws_message_max) {
            s._read_buffer.clear();
            s.close_with({beast::websocket::close_code::too_big, "message over the limit"});
            s.read_next();  // the close handshake completes through the read
            return;
        }
        if (s._ws.is_message_done()) s.on_message();
        if (!s._ended) s.read_next();
    });
}

void ws_session::on_message() {
    const auto data = _read_buffer.cdata();
    const std::string_view text(static_cast<const char*>(data.data()), data.size());
    const bool is_text = _ws.got_text();
    auto parsed = is_text ? nlohmann::json::parse(text, nullptr, false) : nlohmann::json();
    _read_buffer.consume(_read_buffer.size());
    bool ok = is_text && parsed.is_object() && parsed.size() == 1 && parsed.contains("ack");
    if (ok) {
        const auto& ack = parsed["ack"];
        if (ack.is_string()) {
            on_ack(ack.get_ref<const std::string&>());
        } else if (ack.is_array()) {
            for (const auto& a : ack) {
                if (!a.is_string()) {
                    ok = false;
                    break;
                }
                on_ack(a.get_ref<const std::string&>());
            }
        } else {
            ok = false;
        }
    }
    if (!ok) {
        _parts.stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
        close_with({websocket::close_code::policy_error, "expected {\"ack\": msgId}"});
    }
}

void ws_session::close_with(websocket::close_reason reason) {
    if (_closing || _ended) return;
    _closing = true;
    // What is not being written is dropped.
    while (_queue.size() > (_writing ? 1u : 0u)) {
        _queued_bytes -= _queue.back().view().size();
        _queue.pop_back();
    }
    if (!_accepted) {
        end();
        return;
    }
    auto self = shared_from_this();
    _ws.async_close(reason, [self](const error_code&) { static_cast<ws_session&>(*self).end(); });
}

void ws_session::close_slow() {
    beast::websocket::close_reason reason(beast::websocket::close_code::none);
    reason.code = 4008;
    reason.reason = "slow; resume=" + resume_id();
    close_with(reason);
}

void ws_session::close_error(std::string_view reason) {
    close_with({websocket::close_code::internal_error, std::string(reason)});
}

void ws_session::shutdown() { close_with({websocket::close_code::going_away, "gateway stopping"}); }

void ws_session::end() {
    if (_ended) return;
    _ended = true;
    closed();
    // A lingering close: closing with unread input would reset the
    // connection and could destroy the close frame just sent (a 1009 while
    // the browser is still sending). Read until its FIN, 2 s at most.
    auto& socket = beast::get_lowest_layer(_ws).socket();
    error_code ignored;
    socket.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
    if (!socket.is_open()) return;
    _linger_timer.emplace(socket.get_executor());
    _linger_timer->expires_after(std::chrono::seconds(2));
    auto self = shared_from_this();
    _linger_timer->async_wait([self](const error_code&) {
        error_code ignored_too;
        beast::get_lowest_layer(static_cast<ws_session&>(*self)._ws).socket().close(ignored_too);
    });
    drain_input();
}

void ws_session::drain_input() {
    auto self = shared_from_this();
    beast::get_lowest_layer(_ws).socket().async_read_some(
        boost::asio::buffer(_linger_buffer), [self](const error_code& ec, std::size_t) {
            auto& s = static_cast<ws_session&>(*self);
            if (ec) {
                s._linger_timer->cancel();
                return;
            }
            s.drain_input();
        });
}

// ---------------------------------------------------------------------------
// SSE

sse_session::sse_session(gateway_parts parts, loop_context& loop, stream_request request,
                         beast::tcp_stream stream, unsigned http_version)
    : stream_session(parts, loop, std::move(request), false),
      _stream(std::move(stream)),
      _http_version(http_version) {}

void sse_session::reject(unsigned status, std::string_view code, std::string_view message) {
    auto res = std::make_shared<http::response<http::string_body>>(
        error_response(status, code, message, _http_version, false));
    auto self = shared_from_this();
    http::async_write(_stream, *res, [self, res](const error_code&, std::size_t) {
        auto& s = static_cast<sse_session&>(*self);
        error_code ignored;
        s._stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
        s.end();
    });
}

void sse_session::start_transport() {
    opened();
    _stream.expires_never();
    _started = true;
    std::string head = _http_version == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n";
    head +=
        "Server: nagare-gateway\r\n"
        "Content-Type: text/event-stream\r\n"
        "Cache-Control: no-cache\r\n"
        "X-Accel-Buffering: no\r\n"
        "Connection: keep-alive\r\n"
        "\r\n";
    head += fmt::format("retry: {}\n\n", _parts.config.retry.count());
    enqueue(text_item(std::move(head)));
    watch_peer();
}

void sse_session::enqueue(out_item item) {
    if (_finishing || _ended) return;
    _queued_bytes += item.view().size();
    _queue.push_back(std::move(item));
    write_next();
}

void sse_session::send_event(const event_ptr& e) {
    enqueue(out_item{e, _request.named ? &e->sse_named : &e->sse_plain, {}, e->offset});
}

void sse_session::send_batch(std::span<const event_ptr> events) {
    enqueue(out_item{nullptr, nullptr,
                     sse_message(events.back()->id, _request.named ? "batch" : "", json_array(events)),
                     events.back()->offset});
}

void sse_session::send_text(std::string json, std::string_view sse_event) {
    enqueue(text_item(sse_message({}, _request.named ? sse_event : "", json)));
}

void sse_session::write_next() {
    if (_writing || _queue.empty() || _ended) return;
    // write_some, not async_write: a browser that stops reading leaves a
    // write half done, and the resume id must name what it could read.
    std::size_t n = 0;
    for (; n < _queue.size() && n < _write_buffers.size(); ++n) {
        auto v = _queue[n].view();
        if (n == 0) v.remove_prefix(_front_written);
        _write_buffers[n] = boost::asio::buffer(v.data(), v.size());
    }
    _writing = true;
    auto self = shared_from_this();
    _stream.socket().async_write_some(
        std::span(_write_buffers.data(), n), [self](const error_code& ec, std::size_t bytes) {
            auto& s = static_cast<sse_session&>(*self);
            s._writing = false;
            if (ec) {
                s.end();
                return;
            }
            s._queued_bytes -= bytes;
            s._last_write = std::chrono::steady_clock::now();
            std::size_t left = bytes + s._front_written;
            while (!s._queue.empty() && left >= s._queue.front().view().size()) {
                left -= s._queue.front().view().size();
                if (const auto o = s._queue.front().offset) s.written_event(*o);
                s._queue.pop_front();
            }
            s._front_written = left;
            s.on_write_done();
            if (s._queue.empty() && s._finishing) {
                error_code ignored;
                s._stream.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
                s.end();
                return;
            }
            s.write_next();
        });
}

void sse_session::watch_peer() {
    auto self = shared_from_this();
    _stream.socket().async_read_some(boost::asio::buffer(_peer_buffer),
                                     [self](const error_code& ec, std::size_t) {
                                         auto& s = static_cast<sse_session&>(*self);
                                         if (ec) {
                                             s.end();
                                             return;
                                         }
                                         s.watch_peer();  // a browser sends nothing more: ignored
                                     });
}

void sse_session::on_second(std::chrono::steady_clock::time_point now) {
    if (!_started || _finishing || _ended || !_queue.empty()) return;  // a write is due anyway
    if (now - _last_write >= _parts.config.heartbeat - heartbeat_tick(_parts.config.heartbeat)) {
        _last_write = now;
        enqueue(text_item(": hb\n\n"));
    }
}

void sse_session::finish_with(std::string last) {
    if (_finishing || _ended) return;
    // Keep only the item being written (if begun), then `last`.
    const std::size_t keep = _front_written > 0 || _writing ? 1 : 0;
    while (_queue.size() > keep) {
        _queued_bytes -= _queue.back().view().size();
        _queue.pop_back();
    }
    enqueue(text_item(std::move(last)));
    _finishing = true;
    // A browser that does not read gets no more time than this.
    _finish_timer.emplace(_stream.socket().get_executor());
    _finish_timer->expires_after(std::chrono::seconds(5));
    _finish_timer->async_wait([weak = weak_from_this()](const error_code& ec) {
        if (ec) return;
        if (auto s = weak.lock()) static_cast<sse_session&>(*s).end();
    });
}

void sse_session::close_slow() {
    finish_with(sse_message({}, "slow", fmt::format(R"({{"resume":"{}"}})", resume_id())));
}

void sse_session::close_error(std::string_view reason) {
    std::string data = "{\"error\":";
    append_json_string(data, reason);
    data += "}";
    finish_with(sse_message({}, "error", data));
}

void sse_session::shutdown() { finish_with(": gateway stopping\n\n"); }

void sse_session::end() {
    if (_ended) return;
    _ended = true;
    if (_finish_timer) _finish_timer->cancel();
    closed();
    error_code ignored;
    _stream.socket().close(ignored);
}

}  // namespace nagare::gateway
