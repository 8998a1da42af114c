// subscription_state: what a Subscription, its Messages' ack handles (any
// thread) and the client's I/O thread share about one subscription: its
// definition, the queue of ack verbs, its lifecycle and its counters.
// The I/O thread's own per-subscription data (wire state, msg_id LRU, resume
// positions) lives in subscriber.h.
//
// Lifecycle (guarded by _mutex):
//   subscribing --first SubOk--> active --unsubscribe / refused / close--> ended
//   subscribing --refused / timed out / close--> ended
// `_closing` asks the I/O thread to send the queued acks and Unsubscribe;
// it sets `_finished` once it has let go of the subscription. No handler
// call starts after _closing is set; unsubscribe() (off the I/O thread)
// waits for a running one to return.
//
// Locking: _mutex, then the core's mutex (notify_io) — never the other way.
// _mutex is never held while a handler runs.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "client/msg_id_lru.h"
#include "nagare/subscription.h"
#include "protocol/nagare_generated.h"

namespace nagare::client::detail {

class client_core;

// One ack verb, queued by any thread, sent by the I/O thread.
struct queued_ack {
    protocol::fb::AckKind kind = protocol::fb::AckKind::ACK;
    std::uint32_t nak_delay_ms = 0;
    partition_id partition;
    nagare::offset offset;
    msg_key key;           // of the msg_id, when known: ACK and TERM enter the LRU
    bool has_key = false;  // the C API's acks by position may not know it
};

class subscription_state {
public:
    subscription_state(std::uint64_t id, std::string stream, subscription_filter filter,
                       subscribe_options options, message_handler handler, client_core& core);

    // Immutable.
    const std::uint64_t id;
    const std::string stream;
    const subscription_filter filter;
    const subscribe_options options;
    const message_handler handler;

    // Any thread.
    // Queues a verb for a delivered position; errc_closed once ended,
    // BAD_REQUEST with ack_policy::none.
    std::expected<void, error> queue(protocol::fb::AckKind kind, std::chrono::milliseconds delay,
                                     partition_id partition, nagare::offset offset,
                                     const msg_key* key);
    void unsubscribe() noexcept;
    [[nodiscard]] std::vector<std::pair<partition_id, nagare::offset>> start_positions() const;
    [[nodiscard]] subscription_stats stats() const;

    // The subscribing thread: waits for the first SubOk, a refusal, or the timeout.
    [[nodiscard]] std::expected<void, error> wait_subscribed();

    // I/O thread.
    // Moves the queued verbs into `into` (appending); returns whether closing was asked.
    bool take_acks(std::vector<queued_ack>& into);
    // The first SubOk (later ones only update the epoch).
    void on_subscribed(std::uint64_t stream_epoch,
                       std::vector<std::pair<partition_id, nagare::offset>> starts);
    // The broker refused the Subscribe (first or again after a reconnect).
    void on_refused(const error& why);
    // False when closing: deliver nothing. Pair with end_delivery().
    [[nodiscard]] bool begin_delivery();
    void end_delivery();
    [[nodiscard]] bool stopping() const noexcept {
        return _stopping.load(std::memory_order_acquire);
    }
    // The I/O thread lets go of it (for good: _core becomes null).
    void finish();

    // Counters: written by the I/O thread (acks_queued by any), read by stats().
    struct counters {
        std::atomic<std::uint64_t> delivered{0};
        std::atomic<std::uint64_t> redelivered{0};
        std::atomic<std::uint64_t> duplicates_dropped{0};
        std::atomic<std::uint64_t> acks_queued{0};
        std::atomic<std::uint64_t> acks_sent{0};
        std::atomic<std::uint64_t> ack_frames_sent{0};
        std::atomic<std::uint64_t> acks_dropped{0};
        std::atomic<std::uint64_t> resubscribes{0};
        std::atomic<std::uint64_t> server_errors{0};
        std::atomic<std::uint64_t> dedup_evicted_early{0};
        std::atomic<std::uint64_t> stream_epoch{0};
    };
    counters count;

private:
    enum class phase : std::uint8_t { subscribing, active, ended };

    mutable std::mutex _mutex;
    std::condition_variable _changed;   // phase, _finished or _in_handler changed
    client_core* _core;                 // guarded; null once the client's I/O thread ended
    std::vector<queued_ack> _acks;      // guarded
    phase _phase = phase::subscribing;  // guarded
    error _error;                       // guarded: why it ended before SubOk
    bool _closing = false;              // guarded
    bool _finished = false;             // guarded
    bool _in_handler = false;           // guarded
    std::vector<std::pair<partition_id, nagare::offset>> _start_positions;  // guarded
    std::atomic<bool> _stopping{false};  // _closing, readable without the lock
};

// Reaches the private parts of the public types for the library's own code.
struct subscription_access {
    static Subscription make(std::shared_ptr<subscription_state> state) noexcept {
        return Subscription(std::move(state));
    }
    static const std::shared_ptr<subscription_state>& state(const Subscription& s) noexcept {
        return s._state;
    }
    static void bind(Message& m, std::shared_ptr<subscription_state> state) noexcept {
        m._handle._state = std::move(state);
    }
    static void fill(Message& m, const protocol::fb::DeliverMessage& d, const msg_key& key,
                     std::span<const received_header> headers) noexcept;
    static const std::shared_ptr<subscription_state>& state(const ack_handle& h) noexcept {
        return h._state;
    }
    static msg_key key(const ack_handle& h) noexcept { return {h._msg_key[0], h._msg_key[1]}; }
};

}  // namespace nagare::client::detail
