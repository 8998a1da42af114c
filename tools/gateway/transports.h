// The two browser transports over a Beast TCP stream: WebSocket
// (ws_session) and Server-Sent Events (sse_session). docs/gateway.md has
// what each sends; stream_session has what they share.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <deque>
#include <optional>
#include <string>

#include "tools/gateway/stream_session.h"

namespace nagare::gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using http_request = http::request<http::string_body>;

// One queued text: a shared event rendering (kept alive by `e`) or owned text.
struct out_item {
    event_ptr e;
    const std::string* shared = nullptr;
    std::string owned;
    std::optional<std::uint64_t> offset;  // the (last) event it carries
    [[nodiscard]] std::string_view view() const noexcept {
        return shared != nullptr ? std::string_view(*shared) : std::string_view(owned);
    }
};

[[nodiscard]] inline out_item text_item(std::string text) {
    return out_item{nullptr, nullptr, std::move(text), std::nullopt};
}

// An HTTP response with a JSON error body: {"error":code,"message":...}.
[[nodiscard]] http::response<http::string_body> error_response(unsigned status, std::string_view code,
                                                               std::string_view message,
                                                               unsigned version, bool keep_alive);

class ws_session final : public stream_session {
public:
    ws_session(gateway_parts parts, loop_context& loop, stream_request request,
               beast::tcp_stream stream, http_request upgrade);
    void shutdown() override;

private:
    void reject(unsigned status, std::string_view code, std::string_view message) override;
    void start_transport() override;
    void send_event(const event_ptr& e) override;
    void send_batch(std::span<const event_ptr> events) override;
    void send_text(std::string json, std::string_view sse_event) override;
    void send_resend(const event& e, std::uint32_t n) override;
    void close_slow() override;
    void close_error(std::string_view reason) override;
    [[nodiscard]] std::size_t queued_bytes() const override { return _queued_bytes; }

    void enqueue(out_item item);
    void write_next();
    void read_next();
    void on_message();
    void close_with(beast::websocket::close_reason reason);
    void end();
    void drain_input();

    beast::websocket::stream<beast::tcp_stream> _ws;
    std::optional<boost::asio::steady_timer> _linger_timer;
    std::array<char, 1024> _linger_buffer{};
    http_request _upgrade;
    beast::flat_buffer _read_buffer;
    std::deque<out_item> _queue;
    std::size_t _queued_bytes = 0;
    std::uint64_t _written_total = 0;
    bool _accepted = false;
    bool _writing = false;
    bool _closing = false;
    bool _ended = false;
};

class sse_session final : public stream_session {
public:
    sse_session(gateway_parts parts, loop_context& loop, stream_request request,
                beast::tcp_stream stream, unsigned http_version);
    void shutdown() override;
    void on_second(std::chrono::steady_clock::time_point now) override;

private:
    void reject(unsigned status, std::string_view code, std::string_view message) override;
    void start_transport() override;
    void send_event(const event_ptr& e) override;
    void send_batch(std::span<const event_ptr> events) override;
    void send_text(std::string json, std::string_view sse_event) override;
    void send_resend(const event&, std::uint32_t) override {}
    void close_slow() override;
    void close_error(std::string_view reason) override;
    [[nodiscard]] std::size_t queued_bytes() const override { return _queued_bytes; }

    void enqueue(out_item item);
    void write_next();
    void watch_peer();
    // Drops what is queued (but the write in progress), sends `last`, closes.
    void finish_with(std::string last);
    void end();

    beast::tcp_stream _stream;
    unsigned _http_version;
    std::deque<out_item> _queue;
    std::size_t _queued_bytes = 0;
    std::size_t _front_written = 0;  // bytes of the first item already written
    bool _writing = false;
    std::optional<boost::asio::steady_timer> _finish_timer;
    // The buffer sequence of the write in progress: async_write keeps only the
    // span, so the array must live as long as the write (not on the stack).
    std::array<boost::asio::const_buffer, 16> _write_buffers{};
    std::uint64_t _written_total = 0;
    std::chrono::steady_clock::time_point _last_write = std::chrono::steady_clock::now();
    std::array<char, 512> _peer_buffer{};
    bool _started = false;
    bool _finishing = false;
    bool _ended = false;
};

}  // namespace nagare::gateway
