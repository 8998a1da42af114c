// `nagare sub`: subscribe through the client library and print one line per
// message, acking each. The argument parsing is split into pure functions so
// it can be tested without a broker. The command returns the process exit
// code (0 ok, 1 the broker refused or --timeout passed before --count
// messages, 2 unusable input or no broker) and prints one clear line on
// failure.
#pragma once

#include <cstdint>
#include <expected>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "nagare/client.h"
#include "tools/cli/client_commands.h"

namespace nagare::cli {

struct sub_options {
    std::string stream;
    std::string project;
    std::vector<std::string> subjects;  // patterns
    std::string consumer;               // empty: ephemeral
    std::string from = "all";           // all | new | last | OFFSET | TIME
    std::string ack = "explicit";       // explicit | none
    std::uint64_t count = 0;            // exit after this many messages; 0: no limit
    std::string timeout;                // e.g. 10s; empty: no limit
};

// Where --from starts: all, new, last (last_per_subject), an offset (digits),
// or a time: RFC 3339 (2025-05-25T05:00:00Z, fractions and offsets allowed)
// or Unix nanoseconds written with the unit (1748149200000000000ns).
struct start_point {
    client::deliver_policy policy = client::deliver_policy::all;
    std::uint64_t offset = 0;
    std::uint64_t time_ns = 0;
};
[[nodiscard]] std::expected<start_point, std::string> parse_from(std::string_view text);

// Unix nanoseconds of an RFC 3339 time (at or after 1970-01-01T00:00:00Z).
[[nodiscard]] std::expected<std::uint64_t, std::string> parse_rfc3339_ns(std::string_view text);

// Everything `nagare sub` hands to Client::subscribe, checked.
struct subscription_request {
    client::subscription_filter filter;
    client::subscribe_options options;
    std::uint64_t count = 0;
    std::optional<std::uint64_t> timeout_ms;
};
[[nodiscard]] std::expected<subscription_request, std::string> make_subscription(
    const sub_options& options);

// The line printed for a message (no newline): partition, offset, subject,
// project, msg_id, delivery count, then payload_field().
[[nodiscard]] std::string message_line(const client::Message& m);
// `payload=<text>` when the payload is printable UTF-8 (no control
// characters), else `payload_bytes=N payload_hex=<the first 64 bytes>[...]`.
[[nodiscard]] std::string payload_field(std::span<const std::byte> payload);

int subscribe_command(const connection_options& connection, const sub_options& options,
                      std::ostream& out, std::ostream& err);

}  // namespace nagare::cli
