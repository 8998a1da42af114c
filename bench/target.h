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
// Threads: target: one thread at a time. connection: publish() and flush()
// from the one producer thread; the sink is called from the target's thread.
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
    std::string stream;   // bench_<durability>
    std::string subject;  // bench.<durability>.event: what to publish to
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
};

}  // namespace nagare::bench
