// A broker message as browsers receive it: the JSON object of
// docs/gateway.md ("WebSocket messages") and its SSE forms, rendered once per
// message and shared (immutable) by every connection it goes to.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "nagare/subscription.h"

namespace nagare::gateway {

// `<epoch>:<offset>`: the stream's epoch and the offset in the project's partition.
struct event_id {
    std::uint64_t epoch = 0;
    std::uint64_t offset = 0;

    friend bool operator==(const event_id&, const event_id&) = default;
};

[[nodiscard]] std::optional<event_id> parse_event_id(std::string_view text) noexcept;
[[nodiscard]] std::string format_event_id(event_id id);

struct event {
    std::uint64_t offset = 0;
    std::uint64_t timestamp_ns = 0;
    std::string subject;
    std::string msg_id;
    std::string id;          // format_event_id
    std::string json;        // {"event":...,"payload":...}
    std::string sse_named;   // id:, event:, data: lines and the blank line
    std::string sse_plain;   // the same without the event: line (named=0)
    bool is_private = false; // subject matches the gateway's private patterns
};

using event_ptr = std::shared_ptr<const event>;

// What render_event needs of a message (views, valid during the call).
struct message_fields {
    std::uint64_t offset = 0;
    std::uint64_t timestamp_ns = 0;
    std::string_view project;
    std::string_view subject;
    std::string_view msg_id;
    std::span<const client::received_header> headers;
    std::span<const std::byte> payload;
};

// Renders a message of stream epoch `epoch`.
[[nodiscard]] event_ptr render_event(const message_fields& msg, std::uint64_t epoch, bool is_private);
[[nodiscard]] event_ptr render_event(const client::Message& msg, std::uint64_t epoch, bool is_private);

// The event's JSON with `"redelivered":n` added (a resend).
[[nodiscard]] std::string with_redelivered(const event& e, std::uint32_t n);

// A JSON array of the events' objects (a batch).
[[nodiscard]] std::string json_array(std::span<const event_ptr> events);

// SSE text for an already rendered JSON body: `id:` (optional), `event:`
// (optional), `data:` and the blank line.
[[nodiscard]] std::string sse_message(std::string_view id, std::string_view event_name,
                                      std::string_view data);

// JSON text helpers.
void append_json_string(std::string& out, std::string_view text);
[[nodiscard]] bool valid_utf8(std::string_view text) noexcept;
[[nodiscard]] bool valid_json(std::string_view text) noexcept;
void append_base64(std::string& out, std::span<const std::byte> bytes);
// ISO 8601 UTC with milliseconds: 2026-11-25T13:00:00.123Z.
void append_iso8601_ms(std::string& out, std::uint64_t unix_ns);

}  // namespace nagare::gateway
