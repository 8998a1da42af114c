// partition_log: the log of one partition, a directory of segments
// (storage/segment.h; layout and recovery rules in docs/storage.md).
//
// Write path, driven by the owner's loop (in the broker: the shard that owns
// the partition):
//   append(records, now_ns)  assigns dense offsets from next_offset() and
//                            timestamps max(now_ns, last), and encodes the
//                            records into the open write buffer. No I/O, no
//                            allocation. errc::busy when the buffer is full
//                            (flush, poll, retry: backpressure).
//   flush()                  starts one write (+ fdatasync in fsync mode) of
//                            everything appended since the last flush: all
//                            appends of a loop turn share it (group commit).
//                            One write in flight at most; a flush meanwhile
//                            is remembered and starts when it completes.
//                            Appends go on into the second buffer. Segments
//                            roll here, before a write.
//   file_io::poll()          delivers the completion, which calls the
//                            listener: on_durable(end) or on_write_failed.
//   tick(now_ns)             interval mode: an fdatasync every
//                            fsync_interval when written data is unsynced;
//                            also writes pending index entries, and retries
//                            index writes that failed (a full disk) at a
//                            roll or at open.
//
// Durability (what on_durable means): fsync — written and fdatasync'd;
// interval and none — written to the page cache (interval syncs in tick).
// A failed write stores nothing that was not durable: next_offset() falls
// back to durable_end(), on_write_failed(from = durable_end, error) reports
// that every offset >= from appended so far is gone, the file is cut back,
// and later appends work again (e.g. once a full disk has space).
//
// Reads see durable data only ([first_offset(), durable_end())); every batch
// read from disk is checksum-verified; a corrupt one is an error, never
// skipped.
//
// Tail cache (storage/tail_cache.h, tail_cache_bytes): every batch goes into
// it as it becomes durable (at the write completion, before on_durable, in
// every durability mode), so the newest durable batches are read from memory
// (read(), cached_batch()) without touching the file. It never holds
// anything at or past durable_end(); truncate() and close() clear it,
// retention drops what it removed from it.
//
// Invariants: first_offset() <= durable_end() <= next_offset(); offsets are
// dense; timestamps never decrease; at most one write and one sync in flight;
// the tail cache holds offsets within [first_offset(), durable_end()).
//
// Owned by one thread; every call and every completion happens on it; not
// thread-safe. The listener is called from completions (inside
// file_io::poll) and may call append() and flush().
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "protocol/types.h"
#include "storage/errc.h"
#include "storage/file_io.h"
#include "storage/limits.h"
#include "storage/record_batch.h"
#include "storage/segment.h"
#include "storage/tail_cache.h"

namespace nagare::storage {

enum class durability : std::uint8_t { fsync, interval, none };

struct partition_options {
    std::uint64_t segment_bytes = segment_bytes_default;
    std::uint64_t segment_age_ns = segment_age_ns_default;
    std::uint32_t index_interval_bytes = index_interval_bytes_default;
    durability durability_mode = durability::fsync;
    std::uint64_t fsync_interval_ns = fsync_interval_ns_default;
    std::uint64_t max_age_ns = max_age_ns_default;  // UINT64_MAX: keep forever
    std::uint64_t max_bytes = max_bytes_unlimited;
    std::size_t write_buffer_bytes = write_buffer_bytes_default;  // each of two
    std::size_t batch_bytes_target = batch_bytes_target_default;
    std::uint64_t preallocate_step_bytes = preallocate_step_bytes_default;
    // Memory for the newest durable batches (0: no tail cache).
    std::size_t tail_cache_bytes = tail_cache_bytes_default;
};

// Metrics of a partition log's reads.
struct partition_counters {
    std::uint64_t read_cache_hits = 0;    // read()s served from the tail cache
    std::uint64_t read_cache_misses = 0;  // read()s that went to the segment files
};

// Told when appended data becomes durable, or is lost to a failed write.
class log_listener {
public:
    // Every offset below `end` is stored (see "Durability" above).
    virtual void on_durable(offset end) noexcept = 0;
    // Every offset >= `from` appended so far is dropped; next_offset() == from.
    virtual void on_write_failed(offset from, errc error) noexcept = 0;
    // An interval-mode fdatasync failed: acknowledged data may not survive a
    // power loss. Log it; nothing is rolled back.
    virtual void on_sync_failed(errc /*error*/) noexcept {}

protected:
    ~log_listener() = default;
};

class partition_log {
public:
    // Opens (creating if needed) the partition in `dir` and recovers it.
    // errc::invalid_argument for options outside their limits; errc::corrupt
    // when segments overlap (an empty leftover of a failed roll is not an
    // overlap: docs/storage.md). Index files that cannot be written (a full
    // disk) do not fail it. `io` must outlive the log.
    [[nodiscard]] static std::expected<std::unique_ptr<partition_log>, errc> open(
        const std::filesystem::path& dir, const partition_options& options, file_io& io);

    // REQUIRES: no I/O in flight (!io_in_flight()).
    ~partition_log();
    partition_log(const partition_log&) = delete;
    partition_log& operator=(const partition_log&) = delete;

    // nullptr: nobody is told.
    void set_listener(log_listener* listener) noexcept { _listener = listener; }

    // Returns the offset of the first record. errc::busy: the write buffer is
    // full; errc::invalid_argument: empty `records`, a field over its protocol
    // limit, or more than an empty buffer holds; errc::closed.
    [[nodiscard]] std::expected<offset, errc> append(std::span<const record_ref> records,
                                                     std::uint64_t now_ns) noexcept;
    void flush() noexcept;
    void tick(std::uint64_t now_ns) noexcept;

    // The batches from the one holding `from` on, as many whole ones of one
    // segment as fit in `buffer`, all verified. Empty at durable_end().
    // When `from` is in the tail cache they are copied from it (no pread; they
    // were checksummed when this log built them).
    // errc::out_of_range below first_offset() or past durable_end();
    // errc::corrupt for a batch that fails verification; errc::invalid_argument
    // when the first batch does not fit (a buffer of batch_bytes_max always does).
    [[nodiscard]] std::expected<read_result, errc> read(offset from,
                                                        std::span<std::byte> buffer) noexcept;

    // The batch holding `o`, straight from the tail cache (no copy); empty when
    // it is not cached, and at durable_end(). Valid until the next completion
    // (file_io::poll), truncate(), enforce_retention() or close().
    // errc::out_of_range below first_offset() or past durable_end(); errc::closed.
    [[nodiscard]] std::expected<std::span<const std::byte>, errc> cached_batch(
        offset o) const noexcept;

    // The first offset whose timestamp is >= timestamp_ns (durable_end() if none).
    [[nodiscard]] std::expected<offset, errc> seek_time(std::uint64_t timestamp_ns);

    // Calls fn(const record_view&) for each durable record from `from` on until
    // it returns false; returns the offset after the last record handed out.
    // Allocates its read buffer: not for the hot path (dedup rebuild, tools).
    template <class Fn>
    [[nodiscard]] std::expected<offset, errc> for_each_record(offset from, Fn&& fn);

    // Deletes whole sealed segments, oldest first, whose newest record is older
    // than max_age, or while bytes() > max_bytes. Returns how many.
    [[nodiscard]] std::expected<std::size_t, errc> enforce_retention(std::uint64_t now_ns);

    // Removes records >= end, appended-but-unflushed ones included.
    // REQUIRES: first_offset() <= end <= durable_end() (else errc::out_of_range).
    // errc::busy while I/O is in flight.
    [[nodiscard]] std::expected<void, errc> truncate(offset end);

    // Trims preallocation, writes the index (also sealed segments' indexes
    // that failed to write before, best effort), syncs the active segment
    // (not in durability none). Closes even when a step fails and returns the
    // first failure; a failed index write loses nothing (recovery rebuilds it).
    // errc::busy while I/O is in flight or appended data is not flushed.
    [[nodiscard]] std::expected<void, errc> close();

    [[nodiscard]] offset first_offset() const noexcept { return _segments.front()->base_offset(); }
    [[nodiscard]] offset next_offset() const noexcept { return _next_offset; }
    [[nodiscard]] offset durable_end() const noexcept { return _durable_end; }
    [[nodiscard]] std::uint64_t bytes() const noexcept;  // log bytes stored, all segments
    [[nodiscard]] std::size_t segment_count() const noexcept { return _segments.size(); }
    [[nodiscard]] std::span<const std::unique_ptr<segment>> segments() const noexcept {
        return _segments;
    }
    [[nodiscard]] std::size_t unflushed_bytes() const noexcept { return _builder.used_bytes(); }
    [[nodiscard]] bool io_in_flight() const noexcept { return _write_in_flight || _sync_in_flight; }
    [[nodiscard]] const recovery_stats& recovery() const noexcept { return _recovery; }
    [[nodiscard]] const partition_options& options() const noexcept { return _options; }
    [[nodiscard]] const tail_cache& cache() const noexcept { return _cache; }
    [[nodiscard]] const partition_counters& counters() const noexcept { return _counters; }

private:
    struct write_done final : io_completion {
        partition_log* log = nullptr;
        void io_done(int result) noexcept override { log->on_write_done(result); }
    };
    struct sync_done final : io_completion {
        partition_log* log = nullptr;
        void io_done(int result) noexcept override { log->on_sync_done(result); }
    };

    partition_log(std::filesystem::path dir, const partition_options& options, file_io& io);

    [[nodiscard]] std::expected<void, errc> recover();
    [[nodiscard]] std::expected<void, errc> recover_segments(std::span<const offset> bases);
    [[nodiscard]] std::expected<bool, errc> is_leftover(offset base, bool last) const;
    [[nodiscard]] std::expected<void, errc> check_continuity();
    [[nodiscard]] segment_options segment_opts() const noexcept;
    [[nodiscard]] bool roll_due(const segment& active) const noexcept;
    void maybe_roll() noexcept;
    void start_write() noexcept;
    void on_write_done(int result) noexcept;
    void on_sync_done(int result) noexcept;
    void fail_writes(errc error) noexcept;
    void cache_batches(std::span<const std::byte> batches) noexcept;
    void persist_sealed_indexes() noexcept;
    [[nodiscard]] segment& segment_for(offset target) noexcept;
    [[nodiscard]] std::expected<void, errc> open_for_read(segment& seg) noexcept;
    [[nodiscard]] std::span<std::byte> open_buffer() noexcept { return _buffers[_open_buffer]; }

    std::filesystem::path _dir;
    partition_options _options;
    file_io& _io;
    log_listener* _listener = nullptr;
    std::vector<std::unique_ptr<segment>> _segments;  // by base offset; back() is active

    std::vector<std::byte> _buffers[2];
    std::size_t _open_buffer = 0;  // appends go here; the other may be in flight
    batch_builder _builder;
    std::span<const std::byte> _write_bytes;  // in flight
    offset _write_end{};
    bool _write_datasync = false;
    bool _write_in_flight = false;
    bool _flush_requested = false;
    bool _sync_in_flight = false;
    bool _closed = false;
    bool _sealed_index_dirty = false;  // a sealed segment's index write failed: tick retries
    write_done _write_done;
    sync_done _sync_done;

    offset _next_offset{};
    offset _durable_end{};
    std::uint64_t _last_timestamp_ns = 0;
    std::uint64_t _now_ns = 0;
    std::uint64_t _last_sync_ns = 0;
    std::uint64_t _synced_bytes = 0;       // of the active segment
    std::uint64_t _sync_target_bytes = 0;  // what the sync in flight covers
    std::uint64_t _read_tick = 0;
    recovery_stats _recovery;
    tail_cache _cache;
    partition_counters _counters;
};

template <class Fn>
std::expected<offset, errc> partition_log::for_each_record(offset from, Fn&& fn) {
    std::vector<std::byte> buffer(std::min<std::size_t>(batch_bytes_max, 64 * kib));
    while (true) {
        const auto result = read(from, buffer);
        if (!result && result.error() == errc::invalid_argument &&
            buffer.size() < batch_bytes_max) {
            buffer.resize(std::min(batch_bytes_max, 2 * buffer.size()));
            continue;
        }
        if (!result) return std::unexpected(result.error());
        if (result->batches.empty()) return from;
        auto rest = result->batches;
        bool stopped = false;
        while (!rest.empty() && !stopped) {
            const auto batch = batch_view::parse(rest);
            if (!batch) return std::unexpected(batch.error());
            const auto status = batch->for_each([&](const record_view& record) {
                if (record.record_offset < from) return true;
                from = offset{record.record_offset.value + 1};
                stopped = !fn(record);
                return !stopped;
            });
            if (!status) return std::unexpected(status.error());
            rest = rest.subspan(batch->bytes().size());
        }
        if (stopped) return from;
        from = result->next_offset;
    }
}

}  // namespace nagare::storage
