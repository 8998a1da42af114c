// nagare::client subscriptions: Client::subscribe's filter and options, the
// Message a handler receives, and the Subscription handle.
// Protocol semantics: docs/protocol.md, "Subscriptions".
//
// Threads:
// - The handler runs on the client's I/O thread, one message at a time, in
//   the order of the Deliver frames (offset order per partition for first
//   deliveries). No lock of the library is held while it runs. It must be
//   short and must not throw; it may ack (the Message's verbs), publish, and
//   call unsubscribe() on any Subscription; it must not call subscribe(),
//   flush(), close() or destroy the Client.
// - A Message's views (project, subject, msg_id, headers, payload) point into
//   the received frame: valid only until the handler returns. Copy what you
//   keep. Its verbs (ack, nak, in_progress, term) stay valid afterwards, on
//   the Message or any copy of it, from any thread: they queue the position
//   and the I/O thread sends the queued positions as one Ack frame per
//   subscription and kind each loop turn (no syscall per message).
// - Subscription: any thread. Its destructor unsubscribes.
//
// Delivery rules (also in client/README.md):
// - Each subscription keeps a msg_id LRU (options.dedup_window, 30 s, at most
//   options.dedup_ids_max ids): a redelivery of a message the handler acked
//   (or termed) is not handed to the handler again; the client repeats the
//   ack instead, so the broker settles it.
// - After a lost connection the client reconnects (Client options' backoff)
//   and subscribes again with the same id: a durable consumer with the same
//   Subscribe (the broker resumes after its acknowledged messages); an
//   ephemeral one FROM_OFFSET with start_positions = per partition the last
//   delivered offset + 1 (or SubOk's start when nothing came). Acks queued
//   while the connection is down are not sent; their msg_ids stay in the LRU,
//   so a redelivery is dropped and acked again.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nagare/error.h"
#include "protocol/types.h"

namespace nagare::client {

namespace detail {
class subscription_state;
struct subscription_access;
}  // namespace detail

// Where a subscription starts (a durable consumer that exists already
// ignores it: it resumes after its acknowledged messages).
enum class deliver_policy : std::uint8_t {
    all,               // from the first stored offset
    new_only,          // from the end at subscribe time
    from_offset,       // subscribe_options::start_offset in every partition
    from_time,         // the first message with timestamp_ns >= start_time_ns
    last_per_subject,  // the newest message of each subject of filter.project, then live
};

enum class ack_policy : std::uint8_t {
    explicit_ack,  // every message is acked (or nak'ed, termed); redelivered after ack_wait
    none,          // settled when sent; the Message verbs do nothing
};

struct subscription_filter {
    std::string project;                // empty: every project
    std::vector<std::string> subjects;  // patterns with * and >; empty: every subject (at most 32)
};

struct subscribe_options {
    std::string consumer;  // durable consumer name (1..64 of [A-Za-z0-9_-]); empty: ephemeral
    deliver_policy deliver = deliver_policy::all;
    nagare::offset start_offset{};    // from_offset
    std::uint64_t start_time_ns = 0;  // from_time: Unix time in nanoseconds
    ack_policy ack = ack_policy::explicit_ack;
    // Zero in these means the broker's default (30 s, 5, 1024 per partition).
    std::chrono::milliseconds ack_wait{0};
    std::uint32_t max_deliver = 0;
    std::vector<std::chrono::milliseconds> backoff;  // delay of redelivery i; the last repeats
    std::uint32_t max_inflight = 0;
    bool ordered = false;  // at most one unacknowledged message per project
    // How long subscribe() waits for the broker's SubOk (or Error).
    std::chrono::milliseconds subscribe_timeout{5000};
    // The msg_id LRU: how long an acked id is remembered, and how many at most
    // (a full LRU forgets its oldest id early; counted in the stats).
    std::chrono::milliseconds dedup_window{30'000};
    std::size_t dedup_ids_max = std::size_t{1} << 18;
    // Called on the I/O thread when the broker reports an error about this
    // subscription after it started (an ack for an unknown position, or a
    // re-subscribe after a reconnect that the broker refused, which ends the
    // subscription). Same rules as the handler.
    std::function<void(const error&)> on_error;
};

// One header of a received message: views, valid while the handler runs.
struct received_header {
    std::string_view key;
    std::string_view value;
};

// What an ack names: a message of a subscription. Small and copyable; its
// verbs may be called from any thread, at any time. A verb on a closed
// subscription fails with errc_closed; with ack_policy::none with
// BAD_REQUEST. (The results are not [[nodiscard]]: an ack that cannot be
// queued has no remedy but the broker's redelivery.)
class ack_handle {
public:
    ack_handle() = default;

    std::expected<void, error> ack() const;
    // Redeliver after `delay` (0: at once).
    std::expected<void, error> nak(std::chrono::milliseconds delay = {}) const;
    // Restart the ack timer (still working on it).
    std::expected<void, error> in_progress() const;
    // Never redeliver; counted as terminated by the broker.
    std::expected<void, error> term() const;

    [[nodiscard]] partition_id partition() const noexcept { return _partition; }
    [[nodiscard]] nagare::offset offset() const noexcept { return _offset; }

private:
    friend struct detail::subscription_access;

    std::shared_ptr<detail::subscription_state> _state;
    partition_id _partition;
    nagare::offset _offset;
    std::array<std::uint64_t, 2> _msg_key{};  // 128-bit hash of the msg_id, for the LRU
};

// A delivered message, as the handler sees it.
class Message {
public:
    [[nodiscard]] partition_id partition() const noexcept { return _handle.partition(); }
    [[nodiscard]] nagare::offset offset() const noexcept { return _handle.offset(); }
    [[nodiscard]] std::string_view project() const noexcept { return _project; }
    [[nodiscard]] std::string_view subject() const noexcept { return _subject; }
    [[nodiscard]] std::string_view msg_id() const noexcept { return _msg_id; }
    [[nodiscard]] std::uint64_t timestamp_ns() const noexcept { return _timestamp_ns; }
    [[nodiscard]] std::uint32_t delivery_count() const noexcept { return _delivery_count; }
    [[nodiscard]] std::span<const received_header> headers() const noexcept { return _headers; }
    [[nodiscard]] std::span<const std::byte> payload() const noexcept { return _payload; }

    std::expected<void, error> ack() const { return _handle.ack(); }
    std::expected<void, error> nak(std::chrono::milliseconds delay = {}) const {
        return _handle.nak(delay);
    }
    std::expected<void, error> in_progress() const { return _handle.in_progress(); }
    std::expected<void, error> term() const { return _handle.term(); }

    // What to keep to ack later without the views.
    [[nodiscard]] const ack_handle& handle() const noexcept { return _handle; }

private:
    friend struct detail::subscription_access;

    ack_handle _handle;
    std::string_view _project;
    std::string_view _subject;
    std::string_view _msg_id;
    std::uint64_t _timestamp_ns = 0;
    std::uint32_t _delivery_count = 0;
    std::span<const received_header> _headers;
    std::span<const std::byte> _payload;
};

using message_handler = std::function<void(const Message&)>;

// The checks Client::subscribe makes before anything is sent: stream and
// consumer names (BAD_REQUEST), project (BAD_PROJECT), patterns (BAD_PATTERN),
// option ranges and combinations (BAD_REQUEST). For tools that want to
// refuse bad input before connecting.
[[nodiscard]] std::expected<void, error> validate_subscription(std::string_view stream,
                                                               const subscription_filter& filter,
                                                               const subscribe_options& options);

struct subscription_stats {
    std::uint64_t delivered = 0;           // messages handed to the handler
    std::uint64_t redelivered = 0;         // ... of which with delivery_count > 1
    std::uint64_t duplicates_dropped = 0;  // redeliveries of acked ids (LRU hits), acked again
    std::uint64_t acks_queued = 0;         // verbs called (all kinds)
    std::uint64_t acks_sent = 0;           // positions sent in Ack frames (all kinds)
    std::uint64_t ack_frames_sent = 0;
    std::uint64_t acks_dropped = 0;         // not sent: connection down, or unsubscribed
    std::uint64_t resubscribes = 0;         // Subscribe sent again after a reconnect
    std::uint64_t server_errors = 0;        // Error frames about it after SubOk
    std::uint64_t dedup_evicted_early = 0;  // ids the full LRU forgot before dedup_window
    std::uint64_t stream_epoch = 0;         // from the last SubOk
    bool active = false;                    // not unsubscribed, not ended by the broker or close()
};

// The handle of a live subscription. Move-only; destroying it unsubscribes.
class Subscription {
public:
    Subscription() noexcept = default;
    ~Subscription();
    Subscription(Subscription&&) noexcept = default;
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    // Ends the subscription: acks queued before the call are sent, then
    // Unsubscribe. Called outside the handler, it returns once the handler is
    // not running and will not run again for this subscription (and the
    // frames were handed to the socket, or the connection is down). From the
    // handler it returns at once; no further message of it is delivered.
    // Idempotent.
    void unsubscribe() noexcept;

    // The id on the wire (Subscribe.subscription_id); 0 for an empty handle.
    [[nodiscard]] std::uint64_t id() const noexcept;
    // Per partition, the first offset the broker considered (the first SubOk).
    [[nodiscard]] std::vector<std::pair<partition_id, nagare::offset>> start_positions() const;
    [[nodiscard]] subscription_stats stats() const;

private:
    friend struct detail::subscription_access;
    explicit Subscription(std::shared_ptr<detail::subscription_state> state) noexcept
        : _state(std::move(state)) {}

    std::shared_ptr<detail::subscription_state> _state;
};

}  // namespace nagare::client
