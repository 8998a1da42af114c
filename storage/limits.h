// Every limit and default of the partition log, in one place. Options may
// lower or raise the *_default values within [*_min, *_max]; the static
// asserts below say how they relate to each other and to the on-disk format
// (storage/record_batch.h, storage/segment.h, docs/storage.md).
#pragma once

#include <cstddef>
#include <cstdint>

#include "protocol/limits.h"

namespace nagare::storage {

inline constexpr std::uint64_t kib = 1024;
inline constexpr std::uint64_t mib = 1024 * kib;
inline constexpr std::uint64_t ns_per_ms = 1'000'000;
inline constexpr std::uint64_t ns_per_s = 1'000 * ns_per_ms;

// Record batch (storage/record_batch.h).
inline constexpr std::size_t batch_header_bytes = 48;
inline constexpr std::size_t batch_bytes_max = 16 * mib;  // a reader rejects anything larger
// An open batch is sealed once it holds this much.
inline constexpr std::size_t batch_bytes_target_default = 64 * kib;
inline constexpr std::size_t varint_bytes_max = 10;  // LEB128 of a u64
inline constexpr std::uint32_t batch_records_max = 1u << 20;

// The largest record a broker with default limits produces: every field at
// its protocol maximum, each behind a length varint (at most 3 bytes below 2 MiB).
// record length, offset delta, timestamp delta, header count
inline constexpr std::size_t record_fixed_bytes_max = 4 * varint_bytes_max;
inline constexpr std::size_t record_bytes_max_default =
    record_fixed_bytes_max + 3 + protocol::project_bytes_max + 3 + protocol::subject_bytes_max + 3 +
    protocol::msg_id_bytes_max +
    protocol::headers_max *
        (3 + protocol::header_key_bytes_max + 3 + protocol::header_value_bytes_max) +
    varint_bytes_max + protocol::payload_bytes_max_default;

// Segments (storage/segment.h). File positions in the .idx are u32.
inline constexpr std::uint64_t segment_bytes_default = 64 * mib;
inline constexpr std::uint64_t segment_bytes_min = 512;
inline constexpr std::uint64_t segment_bytes_max = 1024 * mib;
inline constexpr std::uint64_t segment_age_ns_default = 3600 * ns_per_s;
inline constexpr std::uint32_t index_interval_bytes_default = 4 * kib;
inline constexpr std::uint32_t index_interval_bytes_min = 64;
inline constexpr std::size_t idx_entry_bytes = 8;   // u32 relative offset, u32 position
inline constexpr std::size_t tix_entry_bytes = 12;  // u64 timestamp_ns, u32 relative offset
inline constexpr std::uint64_t preallocate_step_bytes_default = 8 * mib;
inline constexpr std::size_t index_pending_entries_max = 64;  // written to .idx/.tix past this
inline constexpr std::size_t sealed_fds_open_max = 8;         // per partition, for reads
inline constexpr std::size_t scan_chunk_bytes = 256 * kib;    // recovery / verify reads

// Partition log (storage/partition_log.h).
inline constexpr std::size_t write_buffer_bytes_default = 2 * mib;  // two per partition
inline constexpr std::size_t write_buffer_bytes_min = 4 * kib;
inline constexpr std::size_t write_buffer_bytes_max = batch_bytes_max;
inline constexpr std::uint64_t fsync_interval_ns_default = 50 * ns_per_ms;
inline constexpr std::uint64_t max_age_ns_default = 7 * 24 * 3600 * ns_per_s;
inline constexpr std::uint64_t max_bytes_unlimited = UINT64_MAX;

// Tail cache (storage/tail_cache.h): per partition, the newest durable batches.
inline constexpr std::size_t tail_cache_bytes_default = 4 * mib;  // 0 disables it
inline constexpr std::size_t tail_cache_bytes_min = 4 * kib;
inline constexpr std::size_t tail_cache_bytes_max = 1024 * mib;
// Its index has an entry per this many bytes of capacity: smaller batches
// (a quiet partition flushes one small batch per loop turn) are evicted by
// count before the bytes run out. 4 MiB -> 8,192 entries of 32 bytes.
inline constexpr std::size_t tail_cache_batch_bytes_min = 512;

// sync_file_io (storage/sync_file_io.h).
inline constexpr std::size_t sync_file_io_queue_max_default = 1024;

static_assert(batch_header_bytes % 8 == 0, "u64 header fields stay aligned");
static_assert(batch_bytes_target_default < batch_bytes_max);
static_assert(batch_bytes_max < (std::size_t{1} << 32), "batch_bytes is a u32");
static_assert(write_buffer_bytes_default >= batch_header_bytes + record_bytes_max_default,
              "a record at the default protocol limits fits in an empty write buffer");
static_assert(write_buffer_bytes_min > 2 * batch_header_bytes, "room for a header and records");
static_assert(write_buffer_bytes_max <= batch_bytes_max,
              "one buffer never holds a batch too large to read");
static_assert(segment_bytes_max + write_buffer_bytes_max + preallocate_step_bytes_default <
                  (std::uint64_t{1} << 32),
              "a segment overshoots segment_bytes by at most one flush; positions are u32");
static_assert(index_interval_bytes_default >= index_interval_bytes_min);
static_assert(segment_bytes_default <= segment_bytes_max &&
              segment_bytes_min < segment_bytes_default);
static_assert(index_interval_bytes_default < segment_bytes_default);
static_assert(preallocate_step_bytes_default <= segment_bytes_default);
static_assert(scan_chunk_bytes >= batch_header_bytes);
static_assert(tail_cache_bytes_min <= tail_cache_bytes_default &&
              tail_cache_bytes_default <= tail_cache_bytes_max);
static_assert(tail_cache_bytes_default >= write_buffer_bytes_default,
              "by default a whole flush stays in the cache");
static_assert(tail_cache_batch_bytes_min > batch_header_bytes);

}  // namespace nagare::storage
