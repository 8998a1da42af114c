// sse_client: browser-equivalent Server-Sent Events clients for the fanout
// scenario through nagare-gateway (docs/gateway.md, "SSE stream").
//
// - sse_parser reads one HTTP/1.1 response carrying an event stream: the
//   status line and headers, then the body (chunked or not) as SSE lines
//   (LF, CRLF or CR), dispatching an event's `event:` type and its `data:`
//   (several data lines joined by '\n') at each blank line; comments (`: hb`)
//   are counted. Buffers are reserved once: feeding allocates nothing.
// - sse_fanout opens N clients of one URL, spread over T threads (one epoll
//   loop each), sends each `GET <target>` and hands every event that carries
//   a JSON stamp (open_loop.h) to that client's delivery_sink as a delivery
//   whose payload is the event's data. The first event of each client must
//   be the gateway's welcome; a stream that ends, fails to parse, or sends
//   anything else (a `slow` or `reset` event) is an error on the client's sink.
//
// Threads: an sse_parser is used by one thread. sse_fanout: start() and
// stop() from one thread; each client's sink is called from its thread,
// one call at a time for all clients of that thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/limits.h"
#include "bench/target.h"

namespace nagare::bench {

class sse_listener {
public:
    // `type` is "message" when the event had no `event:` line.
    virtual void on_sse_event(std::string_view type, std::string_view data) noexcept = 0;

protected:
    ~sse_listener() = default;
};

class sse_parser {
public:
    sse_parser();

    // Feeds received bytes. False once the response failed (error() says
    // why: a status other than 200, not an event stream, a line over
    // sse_line_bytes_max, bad chunk framing) or ended (the last chunk).
    bool feed(std::string_view bytes, sse_listener& listener) noexcept;

    [[nodiscard]] bool head_done() const noexcept { return _stage != stage::head; }
    [[nodiscard]] int status() const noexcept { return _status; }
    [[nodiscard]] bool chunked() const noexcept { return _chunked; }
    [[nodiscard]] bool ended() const noexcept { return _stage == stage::ended; }
    [[nodiscard]] bool failed() const noexcept { return _stage == stage::failed; }
    [[nodiscard]] const std::string& error() const noexcept { return _error; }
    [[nodiscard]] std::uint64_t events() const noexcept { return _events; }
    [[nodiscard]] std::uint64_t comments() const noexcept { return _comments; }

private:
    enum class stage : std::uint8_t { head, body, ended, failed };
    enum class chunk_stage : std::uint8_t { size_line, data, data_end };

    void fail(std::string_view why) noexcept;
    void head_bytes(std::string_view& bytes) noexcept;
    void parse_head() noexcept;
    void body_bytes(std::string_view bytes, sse_listener& listener) noexcept;
    void chunked_bytes(std::string_view bytes, sse_listener& listener) noexcept;
    void sse_bytes(std::string_view bytes, sse_listener& listener) noexcept;
    void sse_line(sse_listener& listener) noexcept;

    stage _stage = stage::head;
    int _status = 0;
    bool _chunked = false;
    std::string _head;
    std::string _error;
    // Chunked framing.
    chunk_stage _chunk_stage = chunk_stage::size_line;
    std::string _size_line;
    std::uint64_t _chunk_left = 0;
    // SSE.
    bool _skip_lf = false;  // the last line ended with CR: a following LF belongs to it
    std::string _line;
    std::string _data;
    std::string _event;
    bool _has_data = false;
    std::uint64_t _events = 0;
    std::uint64_t _comments = 0;
};

// host and port of `http://HOST:PORT[/]` (HOST a name, an IPv4 address or
// a bracketed IPv6 address).
struct http_endpoint {
    std::string host;
    std::uint16_t port = 80;
};
[[nodiscard]] std::expected<http_endpoint, std::string> parse_http_url(std::string_view url);

struct sse_fanout_options {
    std::string url;     // the gateway's base URL
    std::string target;  // the request target, e.g. /events?project=p&subjects=a.b&named=0
    std::string token;   // `Authorization: Bearer`; empty: none
    std::size_t threads = 4;
    // start() fails when a client has no welcome event by then.
    std::chrono::milliseconds welcome_wait = sse_connect_wait;
};

class sse_fanout {
public:
    // Connects one client per sink, sends the requests, starts the threads
    // and waits (options.welcome_wait at most) until every client has its
    // welcome. Fails with the first client's fault.
    [[nodiscard]] static std::expected<std::unique_ptr<sse_fanout>, std::string> start(
        const sse_fanout_options& options, std::span<delivery_sink* const> sinks);
    ~sse_fanout();
    sse_fanout(const sse_fanout&) = delete;
    sse_fanout& operator=(const sse_fanout&) = delete;

    // Ends the threads and closes every client; no sink is called after. Idempotent.
    void stop() noexcept;
    // sse_events, sse_heartbeats, sse_bytes, sse_clients_failed. After stop().
    void add_counters(target_counters& into) const;

    struct client;  // one SSE connection (sse_client.cc)

private:
    sse_fanout() = default;
    void note_failure(std::string_view text) noexcept;
    void run(std::size_t thread_index) noexcept;

    struct loop {
        int epoll_fd = -1;
        std::vector<client*> clients;
    };

    std::vector<std::unique_ptr<client>> _clients;
    std::vector<loop> _loops;
    std::vector<std::jthread> _threads;
    std::atomic<bool> _stopping{false};
    std::atomic<std::size_t> _welcomed{0};
    std::atomic<std::size_t> _failed{0};
    std::atomic<std::uint64_t> _bytes{0};
    std::mutex _mutex;
    std::string _first_failure;

    friend struct client;
};

}  // namespace nagare::bench
