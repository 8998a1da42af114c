// target: what a benchmark scenario talks to — one broker product (nagare
// now; NATS JetStream and Redis Streams later, issue 7) behind the same
// small interface, so every scenario runs unchanged against each of them.
//
// A target prepares the stream a scenario writes to (created if missing,
// with the requested durability) and opens connections. A connection is
// used by one producer thread: publish() blocks while the connection's
// in-flight window is full; each accepted publish resolves exactly once
// through the publish_sink given at connect, on a thread of the target's
// choosing (nagare: the client's I/O thread), in any order across projects.
//
// The consuming side: subscribe() opens one subscriber (its own connection)
// on a consumer of the stream, durable (named, shared by every subscriber
// that names it: each message goes to one of them) or ephemeral (its own
// cursor). Messages reach the delivery_sink one at a time per subscription,
// on the target's thread; with ack_mode::explicit_each the target
// acknowledges each message once on_delivered has returned, batching as its
// broker allows. The model fits a push subscription (nagare: Deliver frames,
// Ack frames per loop turn), a pull consumer (NATS JetStream: fetch a batch,
// ack each) and a consumer group (Redis Streams: XREADGROUP ... COUNT n,
// then one XACK for the batch).
//
// Threads: target: one thread at a time. connection: publish() and flush()
// from the one producer thread, close() from any thread (a publish() or
// flush() blocked meanwhile returns: an error / false); the sink is called
// from the target's thread.
// subscription: drain(), close() and add_counters() from the thread that
// subscribed; its sink is called from the target's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nagare::bench {

// How the broker makes a message durable before it acknowledges it
// (DESIGN.md section 3). Each target maps it to its nearest setting and
// names that setting in its description.
enum class durability : std::uint8_t { fsync, interval, none };

[[nodiscard]] std::string_view to_string(durability mode) noexcept;
// "fsync", "interval" or "none".
[[nodiscard]] std::expected<durability, std::string> parse_durability(std::string_view text);

// What a prepared stream gives the scenario.
struct stream_handle {
    std::string stream;          // bench_<durability>
    std::string subject_prefix;  // bench.<durability>.: the stream takes every subject below it

    // The subject `<prefix><token>`; the publish scenario uses token "event".
    [[nodiscard]] std::string subject(std::string_view token) const {
        return subject_prefix + std::string(token);
    }
};

enum class publish_outcome : std::uint8_t { stored, duplicate, failed };

// Receives each publish's resolution. `token` is the value given to
// publish(); `error_text` is empty unless the outcome is failed.
// Must be short and must not throw: it runs on the target's I/O thread.
class publish_sink {
public:
    virtual void on_published(std::uint64_t token, publish_outcome outcome,
                              std::string_view error_text) noexcept = 0;

protected:
    ~publish_sink() = default;
};

struct publish_request {
    std::string_view project;
    std::string_view subject;
    std::string_view msg_id;  // empty: the target makes one (if it supports ids)
    std::span<const std::byte> payload;
};

// Per-connection settings every target honours.
struct connection_options {
    std::size_t inflight_messages = 4096;  // accepted and unresolved, at most
    std::size_t batch_messages = 256;      // messages per request on the wire, at most
};

// A named figure a target reports beyond the common ones (e.g. requests sent).
using target_counters = std::vector<std::pair<std::string, double>>;

// Adds `value` to the counter `name`, appending it when missing (targets sum
// their connections' counters with it).
void add_counter(target_counters& into, std::string_view name, double value);

// Where a new consumer starts (a durable one that exists already resumes).
enum class start_position : std::uint8_t {
    first,     // the first stored message (nagare DeliverPolicy ALL, JetStream DeliverAll, Redis 0)
    new_only,  // messages stored after subscribe (NEW, DeliverNew, $)
};

enum class ack_mode : std::uint8_t {
    explicit_each,  // the target acknowledges every message after on_delivered
    none,           // settled when sent (nagare AckPolicy NONE, JetStream AckNone, Redis NOACK)
};

[[nodiscard]] std::string_view to_string(ack_mode mode) noexcept;
// "explicit" or "none".
[[nodiscard]] std::expected<ack_mode, std::string> parse_ack_mode(std::string_view text);

struct subscribe_request {
    std::string stream;    // from prepare_stream
    std::string subject;   // only this subject (exact; a target without filters drops the rest)
    std::string consumer;  // durable consumer shared by its subscribers; empty: ephemeral
    start_position start = start_position::first;
    ack_mode ack = ack_mode::explicit_each;
    // Delivered and not yet acknowledged, at most (nagare: per partition;
    // JetStream: MaxAckPending; Redis: the COUNT of each XREADGROUP).
    std::size_t inflight_messages = 1024;
};

// One received message: views, valid while on_delivered runs.
struct delivery {
    std::string_view project;
    std::string_view subject;
    std::string_view msg_id;
    std::span<const std::byte> payload;
    std::uint32_t delivery_count = 1;  // 1 the first time, more on redelivery
};

// Receives a subscription's messages. Must be short and must not throw: it
// runs on the target's I/O thread, one call at a time per subscription.
class delivery_sink {
public:
    virtual void on_delivered(const delivery& message) noexcept = 0;
    // The broker or the target reports a fault about the subscription after
    // it started (a refused ack, a consumer that went away).
    virtual void on_subscription_error(std::string_view error_text) noexcept = 0;

protected:
    ~delivery_sink() = default;
};

class subscription {
public:
    virtual ~subscription() = default;

    // Waits until every acknowledgement made so far has been written to the
    // broker. False when wait_max passed first.
    [[nodiscard]] virtual bool drain(std::chrono::milliseconds wait_max) = 0;
    // Unsubscribes (a durable consumer stays) and closes the connection; the
    // sink is not called once it returns. Idempotent.
    virtual void close() noexcept = 0;
    // Adds this subscription's counters (summed over subscriptions by the caller).
    virtual void add_counters(target_counters& into) const = 0;
};

// A connection that carries many subscriptions (fanout: hundreds of
// subscribers over a few connections). Its subscriptions' close() only
// unsubscribes; close() here closes the connection, after theirs.
// Threads: subscribe() and close() from the thread that connected; the
// sinks of its subscriptions are called from one thread of the target's
// (nagare: the Client's I/O thread), one call at a time in all.
class subscriber_connection {
public:
    virtual ~subscriber_connection() = default;

    // Opens one more subscription on this connection; returns once the
    // broker has accepted it (messages may reach the sink before).
    [[nodiscard]] virtual std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) = 0;
    // Closes the connection; its subscriptions deliver nothing more. Idempotent.
    virtual void close() noexcept = 0;
};

class connection {
public:
    virtual ~connection() = default;

    // Queues one message; blocks while the window is full. An error means
    // the message was not accepted and the sink will not hear of it.
    [[nodiscard]] virtual std::expected<void, std::string> publish(const publish_request& request,
                                                                   std::uint64_t token) = 0;
    // Waits until every accepted publish has resolved (sink called). False
    // when wait_max passed first.
    [[nodiscard]] virtual bool flush(std::chrono::milliseconds wait_max) = 0;
    virtual void close() noexcept = 0;
    // Adds this connection's counters (summed over connections by the caller).
    virtual void add_counters(target_counters& into) const = 0;
};

class target {
public:
    virtual ~target() = default;

    [[nodiscard]] virtual std::string_view name() const noexcept = 0;
    // Creates (if missing) the stream `bench_<mode>` with subjects
    // `bench.<mode>.>` and that durability; fails if it exists with another.
    [[nodiscard]] virtual std::expected<stream_handle, std::string> prepare_stream(
        durability mode) = 0;
    [[nodiscard]] virtual std::expected<std::unique_ptr<connection>, std::string> connect(
        const connection_options& options, publish_sink& sink) = 0;
    // Opens a subscriber on its own connection; returns once the broker has
    // accepted it (messages may reach the sink before it returns).
    [[nodiscard]] virtual std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) = 0;
    // Opens a connection for subscriber_connection::subscribe.
    [[nodiscard]] virtual std::expected<std::unique_ptr<subscriber_connection>, std::string>
    connect_subscriber() = 0;
    // Deletes a durable consumer (a scenario's own, after its run).
    [[nodiscard]] virtual std::expected<void, std::string> remove_consumer(
        std::string_view stream, std::string_view consumer) = 0;
};

}  // namespace nagare::bench
