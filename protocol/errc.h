// The closed set of protocol error codes. The numbers are the wire's
// (`nagare.fbs` ErrorCode); a static_assert in errc.cc keeps them in step.
// Every library maps its own failures to one of these at the wire boundary.
#pragma once

#include <cstdint>
#include <string_view>

namespace nagare::protocol {

enum class errc : std::uint16_t {
    none = 0,
    bad_frame = 1,
    frame_too_large = 2,
    unsupported_version = 3,
    bad_subject = 4,
    bad_pattern = 5,
    bad_project = 6,
    bad_msg_id = 7,
    bad_headers = 8,
    payload_too_large = 9,
    bad_request = 10,
    not_authorized = 11,
    no_such_stream = 12,
    no_such_consumer = 13,
    no_such_subscription = 14,
    unknown_position = 15,
    stream_exists = 16,
    consumer_exists = 17,
    storage_full = 18,
    storage_error = 19,
    overloaded = 20,
    shutting_down = 21,
    internal = 22,
};

inline constexpr std::uint16_t errc_count = 23;

// The wire name, e.g. "BAD_SUBJECT"; "UNKNOWN" for a number outside the set.
[[nodiscard]] std::string_view to_string(errc code) noexcept;

// A code received from the wire; numbers outside the set become errc::internal.
[[nodiscard]] errc errc_from_wire(std::uint16_t code) noexcept;

}  // namespace nagare::protocol
