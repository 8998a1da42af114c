// An upper bound of the bytes one message takes inside a Publish frame, so
// the I/O thread can cut batches below the server's max_frame_bytes without
// encoding twice. Pure; tests/client/wire_size_test.cc checks it against
// real encodings.
#pragma once

#include <cstddef>

#include "client/limits.h"

namespace nagare::client {

// REQUIRES: header_count and the byte counts are those of one message.
[[nodiscard]] constexpr std::size_t message_wire_bytes(std::size_t field_bytes,
                                                       std::size_t header_count) noexcept {
    return field_bytes + message_overhead_bytes + header_count * header_overhead_bytes;
}

}  // namespace nagare::client
