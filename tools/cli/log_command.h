// `nagare log verify|dump <partition dir>`: offline checks and listings of a
// partition directory (layout in docs/storage.md). Read-only: unlike
// storage::partition_log::open, which recovers (and so may cut a torn tail),
// these never change a file, so they are safe on a log a broker has open.
//
// Plain functions; one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>

#include "tools/cli/exit_codes.h"

namespace nagare::cli {

// Checks every batch of every segment (checksum, records, offset sequence),
// the segments' continuity and every .idx/.tix entry. Prints one line per
// fault, "<file>: position <byte>: <what>", then a summary line.
int verify_log(const std::filesystem::path& dir, std::ostream& out);

struct dump_options {
    std::uint64_t from_offset = 0;
    std::uint64_t limit = UINT64_MAX;  // records
};

// Prints one line per record from `from_offset` on, tab-separated:
// offset, time (UTC, ns), project, subject, msg_id, payload bytes.
// A fault stops the listing with a line on `err` naming file and position.
int dump_log(const std::filesystem::path& dir, const dump_options& options, std::ostream& out,
             std::ostream& err);

}  // namespace nagare::cli
