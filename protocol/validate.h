// Validation of the names a client chooses: project, msg_id, stream name,
// headers (DESIGN.md section 2). Pure functions, callable from any thread.
//
// - project: 1..128 bytes of [A-Za-z0-9_.:-]
// - msg_id: 1..128 bytes of printable ASCII without space (0x21..0x7e)
// - stream: 1..64 bytes of [A-Za-z0-9_-], or `$dlq.` + such names joined by '.'
// - headers: at most 64; key 1..64 bytes of [A-Za-z0-9_-]; value at most 1024 bytes
#pragma once

#include <span>
#include <string_view>

#include "protocol/errc.h"
#include "protocol/frame.h"

namespace nagare::protocol {

[[nodiscard]] errc validate_project(std::string_view project) noexcept;
[[nodiscard]] errc validate_msg_id(std::string_view msg_id) noexcept;
// errc::bad_request for a bad stream name.
[[nodiscard]] errc validate_stream_name(std::string_view stream) noexcept;
[[nodiscard]] errc validate_header(std::string_view key, std::string_view value) noexcept;

// Validates every field of one Publish message against the limits; the
// first fault found, or errc::none.
[[nodiscard]] errc validate_message(const fb::PublishMessage& message,
                                    std::size_t payload_bytes_max) noexcept;

}  // namespace nagare::protocol
