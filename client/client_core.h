// client_core: the machinery behind nagare::client::Client.
//
// Producers (any thread) validate a message, take a slot of the fixed
// in-flight window, copy the message into it and queue the slot's index on
// the session of the message's port, all under _mutex. The I/O thread takes
// queued indices (under _mutex), encodes them into Publish frames (outside
// it: a queued slot is not touched by producers again until it is freed),
// writes, reads PubAcks, and resolves slots (moves their completion out,
// frees them under _mutex, then runs completions without any lock).
//
// Invariants:
// - A slot is in exactly one place: the free list, one session's `pending`
//   ring, the I/O thread's `sending` scratch, or one request of one session.
// - _unresolved == slots in use == window size - free slots.
// - A session's requests are in send order; on a lost connection their
//   slots go back to the front of `pending`, in order.
//
// Locking: _mutex guards everything marked "guarded"; the I/O thread alone
// touches the fields marked "I/O thread". No lock is held while a
// completion runs or while the I/O thread blocks in poll.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "client/index_ring.h"
#include "client/net.h"
#include "client/routing_table.h"
#include "client/subscriber.h"
#include "client/subscription_state.h"
#include "client/url.h"
#include "nagare/client.h"
#include "protocol/frame.h"
#include "protocol/ulid.h"

namespace nagare::client::detail {

using clock = std::chrono::steady_clock;

// The shared end of a publish_batch: one per batch, referenced by its slots.
struct batch_state {
    explicit batch_state(std::size_t count) : results(count), remaining(count) {}

    // Records message `index`'s result; the last one fires on_done / the promise.
    void complete(std::size_t index, publish_result&& result);

    batch_each_callback on_each;
    batch_done_callback on_done;
    std::optional<std::promise<std::vector<publish_result>>> promise;
    std::vector<publish_result> results;  // unused with on_each
    std::atomic<std::size_t> remaining;
};

struct batch_ref {
    std::shared_ptr<batch_state> state;
    std::size_t index = 0;
};

// What to do with a message's result.
using completion =
    std::variant<std::monostate, publish_callback, std::promise<publish_result>, batch_ref>;

void run_completion(completion& done, publish_result&& result);

// One message of the window, owned by the client from publish to resolution.
struct slot {
    // project, subject, msg_id, payload, then each header's key and value.
    // Capacity is kept between uses: no allocation once warm.
    std::string bytes;
    std::uint32_t project_bytes = 0;
    std::uint32_t subject_bytes = 0;
    std::uint32_t msg_id_bytes = 0;
    std::uint32_t payload_bytes = 0;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> header_bytes;  // key, value
    std::size_t wire_bytes = 0;                                         // message_wire_bytes()
    std::uint64_t seq = 0;  // acceptance order, for flush()
    bool in_use = false;
    completion done;
};

enum class session_state : std::uint8_t {
    idle,        // created, never connected: connect at once
    backoff,     // waiting until `deadline` to connect again
    connecting,  // TCP connect in progress (until `deadline`)
    hello_wait,  // Hello sent, waiting for HelloOk (until `deadline`)
    ready,       // publishing
    parked,      // the first connect failed: connect() reports it, nothing more
};

struct publish_request {
    std::uint64_t request_id = 0;
    std::vector<std::uint32_t> slots;  // in message order
};

// One connection to one port of the node.
struct session {
    session(std::uint16_t session_port, std::size_t window) : port(session_port), pending(window) {}

    const std::uint16_t port;
    index_ring pending;  // guarded: accepted, to be sent (again), in order

    // I/O thread:
    session_state state = session_state::idle;
    unique_fd fd;
    clock::time_point deadline{};
    std::optional<clock::time_point> down_since;  // not ready since
    std::size_t failures = 0;                     // consecutive failed attempts
    bool connected_once = false;
    error last_error;
    std::optional<error> lost;  // set while reading: drop after the read
    protocol::frame_decoder decoder;
    std::vector<std::byte> out;  // encoded, not yet written
    std::size_t out_sent = 0;
    std::deque<publish_request> requests;  // sent, unanswered, in send order
    std::vector<std::vector<std::uint32_t>> spare_slot_lists;
    std::size_t inflight_messages = 0;
    std::uint64_t next_request_id = 1;
    std::vector<std::uint32_t> sending;  // taken from pending this turn
    std::size_t frame_bytes_max = protocol::frame_bytes_max_default;
    std::size_t pending_publish_max = 0;  // 0: no server limit
};

class client_core {
public:
    client_core(endpoint where, socket_address address, options opts);
    ~client_core();
    client_core(const client_core&) = delete;
    client_core& operator=(const client_core&) = delete;

    // Starts the I/O thread and waits for the url port's HelloOk.
    [[nodiscard]] std::expected<void, error> start();

    // Pure checks against the protocol's rules and the server's limits.
    [[nodiscard]] std::expected<void, error> validate(const message& m) const;

    // REQUIRES: validate(m) succeeded.
    [[nodiscard]] std::expected<void, error> submit(const message& m, completion&& done,
                                                    bool may_block);
    // REQUIRES: every message validated; state sized messages.size().
    [[nodiscard]] std::expected<void, error> submit_batch(std::span<const message> messages,
                                                          const std::shared_ptr<batch_state>& state,
                                                          bool may_block);

    [[nodiscard]] bool flush(std::chrono::milliseconds wait_max);
    void close() noexcept;

    // Registers a subscription and waits for the broker's answer.
    // REQUIRES: validate_subscription() accepted the arguments.
    [[nodiscard]] std::expected<Subscription, error> subscribe(std::string_view stream,
                                                               subscription_filter filter,
                                                               subscribe_options options,
                                                               message_handler handler);
    // A subscription has work for the I/O thread (verbs queued, closing).
    // Any thread; called with that subscription's mutex held.
    void notify_subscriptions() noexcept;
    [[nodiscard]] bool on_io_thread() const noexcept;
    [[nodiscard]] client_stats stats() const;
    [[nodiscard]] const server_info& server() const noexcept { return _server; }
    [[nodiscard]] std::size_t window() const noexcept { return _slots.size(); }

private:
    enum class connect_phase : std::uint8_t { pending, ready, failed };

    // Producer side, REQUIRES _mutex held.
    [[nodiscard]] std::expected<void, error> wait_for_slots(std::unique_lock<std::mutex>& lock,
                                                            std::size_t count, bool may_block);
    void enqueue_locked(const message& m, completion&& done);
    [[nodiscard]] std::size_t session_for_locked(std::uint16_t port);
    void wake_io_locked() noexcept;

    // I/O thread (io_thread.cc).
    void run() noexcept;
    void gather_locked(std::size_t session_count);
    [[nodiscard]] bool has_sendable_locked(std::size_t session_count) const noexcept;
    [[nodiscard]] std::size_t send_room(const session& s) const noexcept;
    void advance(session& s, clock::time_point now);
    void start_connect(session& s, clock::time_point now);
    void on_connected(session& s, clock::time_point now);
    void encode(session& s);
    void write_out(session& s);
    void read_in(session& s);
    void dispatch(session& s, const protocol::frame_view& frame);
    void on_hello_ok(session& s, const protocol::fb::HelloOk& hello);
    void on_pub_ack(session& s, const protocol::fb::PubAck& ack);
    void on_error_frame(session& s, const protocol::fb::Error& frame);
    void service_subscriptions(session& s, clock::time_point now);
    void finish_request(session& s, std::deque<publish_request>::iterator request);
    void resolve(std::uint32_t index, publish_result&& result);
    void drop(session& s, error why, clock::time_point now);
    void give_up_if_due(session& s, clock::time_point now);
    void finish_completions();
    [[nodiscard]] int poll_wait_ms(std::size_t session_count, clock::time_point now) const;
    [[nodiscard]] clock::duration backoff_delay(std::size_t failures);
    void shutdown() noexcept;

    // Immutable after construction.
    const endpoint _where;
    const socket_address _address;
    const options _options;
    unique_fd _wake_fd;  // eventfd: producers wake the I/O thread
    std::thread::id _io_id;

    // Immutable once start() returned: the first HelloOk of the url's port.
    server_info _server;
    std::size_t _payload_bytes_max = protocol::payload_bytes_max_default;
    std::size_t _frame_bytes_max = protocol::frame_bytes_max_default;

    // Guarded by _mutex.
    mutable std::mutex _mutex;
    std::condition_variable _slot_cv;      // a slot was freed, or closing
    std::condition_variable _resolved_cv;  // messages resolved (flush), or I/O done
    std::condition_variable _connect_cv;   // _connect_phase changed
    std::vector<slot> _slots;
    std::vector<std::uint32_t> _free_slots;
    std::vector<std::unique_ptr<session>> _sessions;  // fixed size sessions_max
    std::size_t _session_count = 0;
    routing_table _routes;
    protocol::ulid_generator _ulids;
    std::uint64_t _next_seq = 0;
    std::size_t _unresolved = 0;
    std::size_t _slot_waiters = 0;
    std::size_t _flush_waiters = 0;
    bool _completing = false;  // slots freed, their completions not yet run
    bool _io_waiting = false;  // the I/O thread sleeps in poll: write _wake_fd
    bool _closing = false;
    bool _io_done = false;
    connect_phase _connect_phase = connect_phase::pending;
    error _connect_error;
    // Subscriptions registered, not yet taken by the I/O thread.
    std::vector<std::shared_ptr<subscription_state>> _new_subscriptions;
    bool _subscription_work = false;  // notify_subscriptions() since the I/O thread last looked
    std::uint64_t _next_subscription = 0;

    std::mutex _close_mutex;  // one joiner
    std::thread _io;

    // I/O thread.
    protocol::frame_encoder _encoder;
    std::vector<protocol::message_ref> _refs;
    std::vector<protocol::header_ref> _header_refs;
    std::vector<std::pair<completion, publish_result>> _completions;
    std::vector<std::uint32_t> _freed;
    std::vector<std::byte> _read_buffer;
    std::minstd_rand _jitter_rng;
    subscriber _subscriber;  // the url port's session carries every subscription
    std::vector<std::shared_ptr<subscription_state>> _adopting;
    bool _subscriptions_due = false;  // service the subscriptions this turn
    std::atomic<std::size_t> _live_subscriptions{0};

    // Counters: written by the I/O thread, read by stats().
    std::atomic<std::uint64_t> _messages_sent{0};
    std::atomic<std::uint64_t> _messages_resent{0};
    std::atomic<std::uint64_t> _frames_sent{0};
    std::atomic<std::uint64_t> _acknowledged{0};
    std::atomic<std::uint64_t> _failed{0};
    std::atomic<std::uint64_t> _reconnects{0};
};

}  // namespace nagare::client::detail
