// nagare::client::Client — the nagare client library: publish and subscribe.
//
// A Client talks to one nagare node: a session (TCP connection) to the url's
// port and, with shard-aware routing, one session per shard port it has
// sent to (opened lazily, on the same host). One I/O thread per Client owns
// every socket; publishing threads only copy the message into a slot of the
// in-flight window and queue it. Messages queued while a frame is being
// written leave together in the next Publish frame (at most
// max_batch_messages per frame), so many small publishes cost few syscalls.
//
// Invariants:
// - At most options.max_inflight_messages messages are accepted and not yet
//   resolved (queued, or sent and not acknowledged). The window's slots are
//   allocated once, at connect.
// - Messages of one project and stream go to one session, in publish order;
//   after a lost connection the unacknowledged ones are sent again, in the
//   same order and with the same msg_id (the broker's dedup makes that
//   safe), before anything newer.
// - Every accepted publish resolves exactly once: with its position, with the
//   error the broker gave for it, with errc_unavailable (give_up_after
//   exceeded) or with errc_closed (close() before it was acknowledged).
//   A publish that is not accepted (invalid, window full for try_publish,
//   client closed) fails at once and never reaches the wire.
//
// Threads:
// - connect(), publish*(), try_publish*(), publish_batch(), flush(),
//   close(), stats() and server(): any thread, concurrently.
// - Callbacks (and futures' values) are set on the I/O thread, one after
//   the other, in acknowledgement order (which is publish order within a
//   project). A callback must be short, must not throw, may publish (it
//   never blocks there: a full window fails with OVERLOADED instead) and
//   must not call flush(), close() or destroy the Client.
// - subscribe(): any thread but the I/O thread (it waits for the broker's
//   answer). Subscriptions go over the url port's session (the node forwards
//   between shards); their rules are in nagare/subscription.h.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nagare/error.h"
#include "nagare/subscription.h"
#include "protocol/types.h"

namespace nagare::client {

// Where the broker stored a message.
struct position {
    std::string stream;
    partition_id partition;
    nagare::offset offset;
    bool duplicate = false;  // true: the msg_id was stored before; offset is that first one
};

using publish_result = std::expected<position, error>;
using publish_callback = std::function<void(const publish_result&)>;
// One call per message of a batch: its index in the batch and its result.
using batch_each_callback = std::function<void(std::size_t, const publish_result&)>;
// One call when every message of a batch is resolved, results in batch order.
using batch_done_callback = std::function<void(std::span<const publish_result>)>;

struct header {
    std::string_view key;
    std::string_view value;
};

// Views: publish copies what it needs before it returns.
struct publish_options {
    std::string_view msg_id;          // empty: the client generates a ULID
    std::span<const header> headers;  // at most 64
};

struct message {
    std::string_view project;
    std::string_view subject;
    std::span<const std::byte> payload;
    publish_options options;
};

// A payload from text.
[[nodiscard]] inline std::span<const std::byte> as_payload(std::string_view text) noexcept {
    return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

struct options {
    std::string token;
    std::string client_name = "nagare-cpp";
    // Send each partition's traffic to its owner shard's port (HelloOk.shard_ports).
    bool shard_aware = true;
    // Accepted and not yet resolved messages, at most (1..1,048,576).
    std::size_t max_inflight_messages = 4096;
    // Messages per Publish frame, at most (1..4096).
    std::size_t max_batch_messages = 256;
    // TCP connect plus Hello/HelloOk, per attempt.
    std::chrono::milliseconds connect_timeout{5000};
    // Delay before reconnect attempt i (after a loss: attempt 0); the last repeats.
    std::vector<std::chrono::milliseconds> reconnect_backoff{
        std::chrono::seconds{1}, std::chrono::seconds{2}, std::chrono::seconds{5},
        std::chrono::seconds{10}};
    // Each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter] (0..1).
    double reconnect_jitter = 0.2;
    // When set: the messages of a session that has been unable to (re)connect
    // for this long fail with errc_unavailable (it keeps trying for newer ones).
    std::optional<std::chrono::milliseconds> give_up_after;
};

// What the first HelloOk of the url's port said.
struct server_info {
    std::string server_id;
    std::uint32_t shard_count = 0;
    std::vector<std::uint16_t> shard_ports;
    std::size_t frame_bytes_max = 0;
    std::size_t payload_bytes_max = 0;
    std::size_t pending_publish_max = 0;  // 0: the server set no limit
};

struct client_stats {
    std::uint64_t messages_sent = 0;    // counting re-sends
    std::uint64_t messages_resent = 0;  // queued again after a lost connection
    std::uint64_t frames_sent = 0;      // Publish frames
    std::uint64_t acknowledged = 0;     // resolved with a position
    std::uint64_t failed = 0;           // resolved with an error after being accepted
    std::uint64_t reconnects = 0;       // successful Hello after a lost connection
    std::size_t unresolved = 0;         // accepted, not yet resolved
    std::size_t sessions = 0;           // connections opened so far (main + shards)
};

namespace detail {
class client_core;
}  // namespace detail

class Client {
public:
    // Connects to `nagare://host[:port]` (default port 4150; host a name, an
    // IPv4 address or a bracketed IPv6 address), sends Hello and waits for
    // HelloOk. Errors: BAD_REQUEST (bad url or options), NOT_AUTHORIZED,
    // UNSUPPORTED_VERSION (from the server), errc_unavailable (cannot
    // resolve or connect within connect_timeout).
    [[nodiscard]] static std::expected<std::unique_ptr<Client>, error> connect(std::string_view url,
                                                                               options opts = {});

    // Closes (see close()).
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Publishes one message; blocks while the window is full. The future
    // holds the position once acknowledged. A message that fails local
    // validation (the broker's codes: BAD_PROJECT, BAD_SUBJECT, BAD_MSG_ID,
    // BAD_HEADERS, PAYLOAD_TOO_LARGE) or a closed client gives a ready
    // future holding the error.
    [[nodiscard]] std::future<publish_result> publish(std::string_view project,
                                                      std::string_view subject,
                                                      std::span<const std::byte> payload,
                                                      const publish_options& opts = {});
    // Same, with a callback run on the I/O thread (no shared state: cheaper).
    // Returns the error, and never calls on_done, when the message is not accepted.
    [[nodiscard]] std::expected<void, error> publish(std::string_view project,
                                                     std::string_view subject,
                                                     std::span<const std::byte> payload,
                                                     const publish_options& opts,
                                                     publish_callback on_done);

    // As publish, but fails with OVERLOADED instead of blocking when the window is full.
    [[nodiscard]] std::future<publish_result> try_publish(std::string_view project,
                                                          std::string_view subject,
                                                          std::span<const std::byte> payload,
                                                          const publish_options& opts = {});
    [[nodiscard]] std::expected<void, error> try_publish(std::string_view project,
                                                         std::string_view subject,
                                                         std::span<const std::byte> payload,
                                                         const publish_options& opts,
                                                         publish_callback on_done);

    // Publishes messages as one unit of acceptance: all are validated first,
    // then all enter the window together (blocking until there is room for
    // all), so they stay adjacent and usually share a frame. A batch larger
    // than max_inflight_messages, or one invalid message, is refused whole
    // (BAD_REQUEST / that message's code, with its index in the text).
    // The future's results are in batch order; on refusal every entry holds
    // the error. The callback forms refuse an empty batch (BAD_REQUEST).
    [[nodiscard]] std::future<std::vector<publish_result>> publish_batch(
        std::span<const message> messages);
    [[nodiscard]] std::expected<void, error> publish_batch(std::span<const message> messages,
                                                           batch_each_callback on_each);
    [[nodiscard]] std::expected<void, error> publish_batch(std::span<const message> messages,
                                                           batch_done_callback on_done);

    // Waits until every publish accepted before the call is resolved
    // (acknowledged or failed) and its callback has run. False when wait_max
    // passed first. Publishes accepted during the wait are not waited for.
    // REQUIRES: not on the I/O thread (not from a callback).
    // (Not [[nodiscard]]: without wait_max it can only return true.)
    bool flush(std::chrono::milliseconds wait_max = std::chrono::milliseconds::max());

    // Stops the I/O thread and closes every connection. Publishes not yet
    // acknowledged resolve with errc_closed (on the I/O thread, before it
    // ends); later publishes fail with errc_closed. Idempotent. Call flush()
    // first for a graceful end.
    // REQUIRES: not on the I/O thread (not from a callback).
    void close() noexcept;

    // Subscribes to `stream` and waits for the broker's SubOk (at most
    // options.subscribe_timeout). `handler` then runs on the I/O thread for
    // every delivered message, possibly before subscribe() returns.
    // Errors: BAD_REQUEST (bad stream or consumer name, options, no handler,
    // called from the I/O thread), BAD_PROJECT, BAD_PATTERN (checked before
    // anything is sent), the broker's refusal (NO_SUCH_STREAM,
    // CONSUMER_EXISTS, NOT_AUTHORIZED, ...), errc_unavailable (no answer in
    // time), errc_closed.
    [[nodiscard]] std::expected<Subscription, error> subscribe(std::string_view stream,
                                                               subscription_filter filter,
                                                               subscribe_options options,
                                                               message_handler handler);

    [[nodiscard]] client_stats stats() const;
    [[nodiscard]] const server_info& server() const noexcept;

private:
    explicit Client(std::unique_ptr<detail::client_core> core) noexcept;

    std::unique_ptr<detail::client_core> _core;
};

}  // namespace nagare::client
