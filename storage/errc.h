// Expected failures of the storage library. A system call's errno becomes
// one of these at the boundary (from_errno); callers that log keep the errno.
#pragma once

#include <cstdint>
#include <string_view>

#include "protocol/errc.h"

namespace nagare::storage {

enum class errc : std::uint8_t {
    io_error = 1,      // a read, write or sync failed (EIO and the like)
    storage_full,      // ENOSPC / EDQUOT: nothing was stored, retry after space is freed
    corrupt,           // a checksum or structure check failed on data read from disk
    not_found,         // a file, partition or consumer that does not exist
    out_of_range,      // an offset or time outside what the log holds
    invalid_argument,  // a caller broke a documented precondition that is checked
    closed,            // the log or store was closed
    busy,              // must wait: write buffer full or I/O in flight; retry after completions
};

[[nodiscard]] std::string_view to_string(errc code) noexcept;

// ENOSPC and EDQUOT map to storage_full, ENOENT to not_found, the rest to io_error.
[[nodiscard]] errc from_errno(int error_number) noexcept;

// The wire code a client sees for this failure.
[[nodiscard]] protocol::errc to_protocol(errc code) noexcept;

}  // namespace nagare::storage
