// A browser stream (WebSocket or SSE), transport-independent part: joining
// the hub, resume (backlog from the ring, or a catch-up subscription, or a
// reset), the batching window, and (WebSocket) the in-flight table with
// resends after ack_wait. The transports (ws_session.cc, sse_session.cc)
// implement the hooks. Everything runs on the stream's event loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tools/gateway/auth.h"
#include "tools/gateway/config.h"
#include "tools/gateway/event.h"
#include "tools/gateway/hub.h"
#include "tools/gateway/stats.h"

namespace nagare::gateway {

class stream_session;

// What every stream shares.
struct gateway_parts {
    const gateway_config& config;
    gateway_stats& stats;
    broker_link& link;
    const private_subjects& priv;
};

// One event loop (thread): its streams and its members of each hub.
struct loop_context {
    explicit loop_context(unsigned loop_index) : index(loop_index) {}
    const unsigned index;
    boost::asio::io_context io{1};
    std::unordered_map<const hub*, std::vector<stream_session*>> members;
    std::unordered_set<stream_session*> streams;
    // While a hub's list is being walked, a member that closes leaves a
    // nullptr behind (compacted after the walk) instead of shifting it.
    const hub* walking = nullptr;
    bool walked_list_has_holes = false;
};

// Loop `ctx` hands `e` to its members of `h` (the hub fan-out).
void deliver_to_members(loop_context& ctx, gateway_stats& stats, const hub& h, const event_ptr& e);

// A stream's request once checked (auth, names).
struct stream_request {
    std::string stream;
    std::string project;
    std::vector<std::string> patterns;
    std::optional<event_id> last_id;
    bool admin = false;
    bool named = true;  // SSE: `event: <subject>` lines
    std::chrono::milliseconds batch{0};
};

class stream_session : public std::enable_shared_from_this<stream_session> {
public:
    stream_session(gateway_parts parts, loop_context& loop, stream_request request, bool websocket);
    virtual ~stream_session();
    stream_session(const stream_session&) = delete;
    stream_session& operator=(const stream_session&) = delete;

    // Acquires the hub; the transport starts once it is subscribed.
    void begin();
    // The hub fan-out: an event of this stream's hub. True when it went out
    // (or into the batch window).
    bool deliver(const event_ptr& e);
    void on_hub_outcome();
    void on_catchup_event(const event_ptr& e, const client::ack_handle& handle);
    void on_catchup_started(std::expected<client::Subscription, client::error> sub, std::uint64_t start);
    // The gateway stops: close (WebSocket 1001).
    virtual void shutdown() = 0;
    // Per-loop second tick (SSE heartbeats).
    virtual void on_second(std::chrono::steady_clock::time_point) {}

    [[nodiscard]] bool websocket() const noexcept { return _websocket; }
    // Where the browser resumes: WebSocket, the highest id below which
    // everything sent is acked; SSE, the last event written to the socket
    // (what is still queued is dropped when a stream ends).
    [[nodiscard]] std::string resume_id() const;

protected:
    // Transport hooks.
    // Before the transport started: refuse with an HTTP status.
    virtual void reject(unsigned status, std::string_view code, std::string_view message) = 0;
    // Accept the WebSocket / write the SSE head; then write what is queued.
    virtual void start_transport() = 0;
    virtual void send_event(const event_ptr& e) = 0;
    virtual void send_batch(std::span<const event_ptr> events) = 0;
    virtual void send_text(std::string json, std::string_view sse_event) = 0;  // control messages
    virtual void send_resend(const event& e, std::uint32_t n) = 0;
    virtual void close_slow() = 0;
    virtual void close_error(std::string_view reason) = 0;
    [[nodiscard]] virtual std::size_t queued_bytes() const = 0;

    // Transport: the stream is open / closed (counted, registered).
    void opened();
    void closed();
    // Transport: a write completed and its items left the queue: replayed
    // events waiting for room go next.
    void on_write_done();
    // Transport: the event at `offset` (or a batch ending there) is written.
    void written_event(std::uint64_t offset);
    // Transport (WebSocket): a browser ack.
    void on_ack(std::string_view msg_id);

    gateway_parts _parts;
    loop_context& _loop;
    stream_request _request;
    std::string _connection_id;

private:
    enum class mode : std::uint8_t { acquiring, catchup, live, ended };

    void join_hub();
    void go_live(const hub::join_result& r);
    void send_welcome(bool recovered);
    void reset(std::string_view reason);
    // Sends (or batches) `e` unless seen or private; true when it went out.
    bool push(const event_ptr& e);
    // Replayed events (ring backlog, catch-up; and live ones behind them)
    // wait in _backlog and go out as the send queue has room (drain), so a
    // resume never floods the queue. `handle`: the catch-up ack, sent once
    // the event is written.
    void append_replay(const event_ptr& e, std::optional<client::ack_handle> handle);
    void drain();
    // The browser cannot keep up: counted once, closed with the resume id.
    void end_slow();
    void flush_batch();
    void track(const event_ptr& e);
    void arm_resend_timer();
    void on_resend_timer();
    void release_catchup();

    const bool _websocket;
    mode _mode = mode::acquiring;
    bool _closed = false;
    bool _slow = false;
    bool _in_member_list = false;
    std::shared_ptr<hub> _hub;
    std::uint64_t _next = 0;  // the first offset not yet sent
    std::optional<std::uint64_t> _last_sent;
    std::optional<std::uint64_t> _last_written;  // handed to the socket
    std::optional<client::Subscription> _catchup;
    std::uint64_t _received_next = 0;  // the first offset not yet received (sent or in _backlog)
    struct replay {
        event_ptr e;
        std::optional<client::ack_handle> handle;
    };
    std::deque<replay> _backlog;
    std::size_t _backlog_bytes = 0;
    std::deque<std::pair<std::uint64_t, client::ack_handle>> _catchup_acks;  // (offset, handle)
    std::vector<std::pair<event_ptr, client::ack_handle>> _catchup_early;

    std::vector<event_ptr> _batch;
    std::optional<boost::asio::steady_timer> _batch_timer;

    struct inflight {
        event_ptr e;
        std::chrono::steady_clock::time_point deadline;
        std::uint32_t resends = 0;
    };
    std::map<std::uint64_t, inflight> _inflight;  // by offset
    std::unordered_map<std::string, std::uint64_t> _inflight_by_msg_id;
    std::optional<boost::asio::steady_timer> _resend_timer;
    bool _resend_armed = false;
};

}  // namespace nagare::gateway
