// One segment of a partition log: three files named by the base offset
// (20 digits, zero-padded), layout in docs/storage.md:
//
//   <base>.log  record batches back to back (storage/record_batch.h); the
//               file may run past the data into preallocated zeros.
//   <base>.idx  sparse offset index: (u32 relative offset, u32 position),
//               one entry for the first batch at or past every
//               index_interval bytes of log; entry 0 is (0, 0).
//   <base>.tix  time index: (u64 first timestamp_ns of that batch,
//               u32 relative offset), one per .idx entry.
//
// The index lives in memory; the files are appended with plain writes when
// index_pending_entries_max entries are pending, and at seal and close. A
// crash may lose index entries, never log data: recovery re-scans the log
// from the last index entry that verifies against it. The files are a cache:
// a failed write of them (a full disk, no inode for a missing file) fails
// nothing else; the entries stay in memory (index_dirty()) and the next
// persist_index() or seal() writes them.
//
// Invariants: index entries describe committed batches only (positions <
// log_bytes(), strictly increasing); committed batches are checksummed and
// their offsets dense from base_offset() to end_offset(); log_bytes() <=
// the preallocated file size.
//
// Owned by the partition_log that holds it (one thread); not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/types.h"
#include "storage/errc.h"
#include "storage/posix_file.h"
#include "storage/record_batch.h"

namespace nagare::storage {

struct index_entry {
    std::uint32_t relative_offset = 0;
    std::uint32_t position = 0;
    std::uint64_t timestamp_ns = 0;  // first timestamp of the batch at `position`

    auto operator<=>(const index_entry&) const = default;
};

struct segment_options {
    std::uint32_t index_interval_bytes = index_interval_bytes_default;
    std::uint64_t preallocate_step_bytes = preallocate_step_bytes_default;
    std::uint64_t segment_bytes = segment_bytes_default;  // sizes the in-memory index
};

// What recovery found and did; the broker logs it.
struct recovery_stats {
    // Invalid tail cut from the active segment, up to its last non-zero byte:
    // the zeros after a torn batch (preallocation) are not counted.
    std::uint64_t truncated_bytes = 0;
    std::uint32_t indexes_rebuilt = 0;   // .idx/.tix missing, damaged or not matching the log
    std::uint32_t damaged_segments = 0;  // sealed segments whose tail does not verify
};

// "<20-digit base>.<extension>"
[[nodiscard]] std::string segment_file_name(offset base_offset, std::string_view extension);
// The base offset in a "<20 digits>.log" name, or nothing for any other name.
[[nodiscard]] std::optional<offset> parse_segment_file_name(std::string_view name) noexcept;
// Removes <base>.log, then <base>.idx and <base>.tix (missing ones are fine):
// the .log first, so that a failure part-way leaves orphan index files, which
// the next open deletes, rather than a segment without them.
[[nodiscard]] std::expected<void, errc> remove_segment_files(const std::filesystem::path& dir,
                                                             offset base_offset);

// Where a scan of batches stopped, and why.
enum class scan_stop : std::uint8_t {
    end,         // at the end of the scanned range
    zeros,       // at a header of zeros: preallocated space or a torn write
    incomplete,  // a batch runs past the end of the range
    corrupt,     // a batch fails verification, or its offset breaks the sequence
};

// Reads the batches of a .log from a position, verifying each (checksum,
// records, offset continuity). For recovery, index rebuilds and tools.
class batch_scanner {
public:
    batch_scanner(const posix_file& file, std::uint64_t position, std::uint64_t end_position,
                  offset expected_base);

    // The next verified batch, or nothing once stopped (see stop()).
    [[nodiscard]] std::optional<batch_view> next();
    // Where the batch last returned by next() starts.
    [[nodiscard]] std::uint64_t batch_position() const noexcept { return _batch_position; }
    // The position after the last verified batch.
    [[nodiscard]] std::uint64_t position() const noexcept { return _position; }
    [[nodiscard]] offset expected_base() const noexcept { return _expected; }
    [[nodiscard]] scan_stop stop() const noexcept { return _stop; }
    [[nodiscard]] std::optional<errc> read_error() const noexcept { return _read_error; }

private:
    // Makes [_position, _position + bytes) available in the window.
    [[nodiscard]] bool fill(std::size_t bytes);

    const posix_file& _file;
    std::uint64_t _position;
    std::uint64_t _end_position;
    std::uint64_t _batch_position = 0;
    offset _expected;
    std::vector<std::byte> _window;
    std::uint64_t _window_position = 0;
    std::size_t _window_bytes = 0;
    scan_stop _stop = scan_stop::end;
    std::optional<errc> _read_error;
    bool _stopped = false;
};

struct read_result {
    std::span<const std::byte> batches;  // whole verified batches, the first holds `from`
    offset next_offset{};                // one past the last record returned
};

class segment {
public:
    // Creates empty files for a new segment (an existing empty file of that
    // name, a leftover that holds nothing, is reused; one that holds data is
    // errc::invalid_argument). A failure removes the files this call created,
    // so a failed roll leaves no <base>.log behind.
    [[nodiscard]] static std::expected<std::unique_ptr<segment>, errc> create(
        const std::filesystem::path& dir, offset base_offset, const segment_options& options);

    // Opens an existing segment (see docs/storage.md, recovery). `active`: cut
    // the log after its last valid batch. A sealed segment is never cut but
    // for a tail of zeros; a tail that does not verify is counted as damage.
    // Index files that cannot be opened or written do not fail it: the index
    // is rebuilt in memory and left dirty.
    [[nodiscard]] static std::expected<std::unique_ptr<segment>, errc> recover(
        const std::filesystem::path& dir, offset base_offset, const segment_options& options,
        bool active, recovery_stats& stats);

    segment(const segment&) = delete;
    segment& operator=(const segment&) = delete;
    ~segment() = default;

    [[nodiscard]] offset base_offset() const noexcept { return _base; }
    [[nodiscard]] offset end_offset() const noexcept { return _end; }
    [[nodiscard]] bool empty() const noexcept { return _end == _base; }
    // A sealed segment whose tail did not verify at recovery.
    [[nodiscard]] bool damaged() const noexcept { return _damaged_end_position != 0; }
    [[nodiscard]] std::uint64_t log_bytes() const noexcept { return _log_bytes; }
    [[nodiscard]] std::uint64_t first_timestamp_ns() const noexcept { return _first_timestamp_ns; }
    [[nodiscard]] std::uint64_t last_timestamp_ns() const noexcept { return _last_timestamp_ns; }
    [[nodiscard]] std::span<const index_entry> index() const noexcept { return _index; }
    [[nodiscard]] std::filesystem::path log_path() const {
        return _dir / segment_file_name(_base, "log");
    }
    [[nodiscard]] std::filesystem::path idx_path() const {
        return _dir / segment_file_name(_base, "idx");
    }
    [[nodiscard]] std::filesystem::path tix_path() const {
        return _dir / segment_file_name(_base, "tix");
    }

    // The .log descriptor. REQUIRES: is_open().
    [[nodiscard]] const posix_file& log() const noexcept { return _log; }
    [[nodiscard]] bool is_open() const noexcept { return _log.is_open(); }
    [[nodiscard]] std::expected<void, errc> reopen();
    // Closes the .log and the index files (reopened when needed).
    void close_file() noexcept {
        _log.close();
        _idx.close();
        _tix.close();
    }

    // Write path. Preallocates so that [0, end_position) needs no size change
    // (best effort: a file system that cannot, or a full disk, is ignored here
    // and the write itself reports it).
    void reserve(std::uint64_t end_position) noexcept;
    // Takes in sealed batches just written at log_bytes(): advances the end,
    // adds index entries. REQUIRES: they continue end_offset().
    void commit(std::span<const std::byte> batches) noexcept;
    // After a failed write: cuts the file back to log_bytes().
    void discard_uncommitted() noexcept;
    [[nodiscard]] std::size_t index_pending_entries() const noexcept {
        return _index.size() - _index_persisted;
    }
    // The index files do not match the index in memory yet (entries pending,
    // or a tail of stale entries to cut): persist_index() has work to do.
    [[nodiscard]] bool index_dirty() const noexcept {
        return index_pending_entries() > 0 || _index_files_stale;
    }
    // Brings .idx and .tix up to the index in memory (cuts stale entries,
    // appends pending ones). On failure what was not written stays pending;
    // calling it again retries.
    [[nodiscard]] std::expected<void, errc> persist_index() noexcept;
    // Trims the preallocated tail first (the space given back is what the next
    // segment's first write needs on a full disk), then persists the index;
    // the index files are closed either way. Returns the first failure. May be
    // called again on a sealed segment to retry a failed index write.
    [[nodiscard]] std::expected<void, errc> seal() noexcept;

    // Read path. REQUIRES: base_offset() <= from < end_bound, is_open().
    // `end_bound` is end_offset() but for a damaged sealed segment, where it is
    // the next segment's base. errc::corrupt for a batch that fails
    // verification or data missing; errc::invalid_argument when the buffer
    // cannot hold the first batch.
    [[nodiscard]] std::expected<read_result, errc> read(offset from, std::span<std::byte> buffer);
    // The index entry to start a search for `target` (offset or time) from.
    [[nodiscard]] index_entry locate(offset target) const noexcept;
    [[nodiscard]] index_entry locate_time(std::uint64_t timestamp_ns) const noexcept;

    // Removes records >= `end` (base_offset() <= end <= end_offset()); a batch
    // holding `end` is re-encoded with the records before it. Leaves the data
    // synced. A failed index write does not fail it (index_dirty()).
    [[nodiscard]] std::expected<void, errc> truncate(offset end);
    [[nodiscard]] std::expected<void, errc> remove_files();
    // Rebuilds the index from the log (scan of the whole segment) and rewrites
    // .idx/.tix; a failed write is returned, the index in memory is rebuilt.
    [[nodiscard]] std::expected<void, errc> rebuild_index();

    // For the partition's LRU of open sealed files.
    std::uint64_t last_read_tick = 0;

private:
    segment(std::filesystem::path dir, offset base, const segment_options& options);

    [[nodiscard]] std::expected<void, errc> create_files(std::array<bool, 3>& created);
    void remove_created_files(const std::array<bool, 3>& created) noexcept;
    [[nodiscard]] std::expected<void, errc> open_index_files() noexcept;
    [[nodiscard]] bool load_index();
    [[nodiscard]] bool verify_last_entry();
    [[nodiscard]] std::expected<scan_stop, errc> scan_tail(std::uint64_t file_bytes);
    [[nodiscard]] std::expected<void, errc> settle_tail(std::uint64_t file_bytes, bool active,
                                                        recovery_stats& stats);
    [[nodiscard]] std::expected<void, errc> rewrite_index_files() noexcept;
    [[nodiscard]] std::expected<void, errc> cut_stale_index_entries() noexcept;
    [[nodiscard]] std::expected<void, errc> append_pending_index_entries() noexcept;
    [[nodiscard]] std::expected<void, errc> trim_preallocation() noexcept;
    [[nodiscard]] std::expected<void, errc> scan_index();
    [[nodiscard]] std::expected<std::uint64_t, errc> nonzero_end(std::uint64_t from,
                                                                 std::uint64_t to) const;
    [[nodiscard]] std::expected<read_result, errc> read_once(offset from,
                                                             std::span<std::byte> buffer,
                                                             bool& index_mismatch);
    [[nodiscard]] std::expected<std::uint64_t, errc> rewrite_batch_before(std::uint64_t position,
                                                                          std::uint32_t batch_bytes,
                                                                          offset end);
    void add_batch(const batch_header& header, std::uint64_t position) noexcept;

    std::filesystem::path _dir;
    offset _base;
    segment_options _options;
    posix_file _log;
    posix_file _idx;
    posix_file _tix;
    std::vector<index_entry> _index;
    std::size_t _index_persisted = 0;  // entries in the files
    bool _index_files_stale = false;   // the files may hold entries past _index_persisted: cut them
    bool _index_rebuilt = false;       // a read-time mismatch rebuilds at most once
    offset _end;
    std::uint64_t _log_bytes = 0;
    std::uint64_t _allocated_bytes = 0;       // file size as last set by us
    std::uint64_t _damaged_end_position = 0;  // a damaged sealed segment is read to its file end
    bool _preallocate_unsupported = false;
    std::uint64_t _first_timestamp_ns = 0;
    std::uint64_t _last_timestamp_ns = 0;
};

}  // namespace nagare::storage
