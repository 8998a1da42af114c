// Consumer state: what a durable consumer has acknowledged, per partition,
// and the file that keeps it across restarts (DESIGN.md sections 2, 3.4, 5).
//
// partition_ack_state is one consumer's view of one partition:
//  - the ack floor: every offset below it is settled (acked, terminated,
//    dead-lettered, filtered out or skipped) and is never delivered again;
//  - the acked offsets above the floor, in a bitmap ring of `window_offsets`
//    bits covering [floor, floor + window_offsets). An ack beyond the window
//    is an error value (out_of_range): the broker must not deliver an offset
//    at or past window_end();
//  - delivery counts of delivered, unsettled offsets in a fixed-capacity
//    open-addressing table (at most `delivery_entries_max` entries; the
//    broker keeps max_inflight <= delivery_entries_max).
// Both tables are sized at construction; no operation allocates after it.
// Memory: window_offsets / 8 + 12 * bit_ceil(2 * delivery_entries_max)
// bytes; 32 KiB per consumer per partition with the defaults.
// Invariants (checked by check_invariants()):
//   the offset at the floor is not acked (the floor slides past acked ones);
//   acked_above_floor_count() == number of set bits in the window;
//   every delivery entry lies in [floor, window_end()), is not acked, count >= 1.
//
// consumer_state is a consumer's name, stream, stream epoch (a re-created
// stream has another epoch, so the state is recognised as stale), one
// partition_ack_state per partition (index = partition id) and counters.
//
// consumer_state_store keeps one file per consumer in `<dir>/consumers/`
// (in the broker `dir` is the partition's directory, DESIGN.md section 5),
// written atomically:
//   1. encode into the store's buffer, write `<name>.state.tmp` (created or
//      truncated), fdatasync it, close it;
//   2. if `<name>.state` is known to verify (header + checksum), rename it
//      over `<name>.state.prev` (so .prev is always a copy that verified;
//      a corrupt newest file is never rotated over the last good one);
//   3. rename `<name>.state.tmp` over `<name>.state`; fsync the directory.
// A crash leaves the directory as after some prefix of these steps: an old
// `.state`, or only `.state.prev` (crash between the two renames), or the new
// `.state`; a stray `.state.tmp` is ignored by load and overwritten by the
// next save. Load uses `.state` when it verifies, else `.state.prev`, and
// says which copy it used and whether the newest one was corrupt.
//
// "Known to verify" (step 2): save() reads `.state` back and verifies it
// each time. save_async() never reads: it rotates only a `.state` that this
// store installed itself in step 3 (from bytes it encoded and fdatasynced)
// or that check_newest() read back and verified; a `.state` it knows nothing
// of (another name, or no check_newest) is replaced without being rotated,
// which keeps `.prev` as it was. A store that failed at step 3 after step 2
// knows there is no `.state`. So a file that might be torn (the process died
// mid-save: the next process starts with a new store) or that another writer
// changed is never rotated unless it was checked after that.
//
// save_async() is the same steps without blocking: each one is an operation
// on a file_io (storage/file_io.h) and the next starts from the completion of
// the one before, so the broker's shard never waits on the disk. At most one
// save is in flight per store (errc::busy otherwise); the store owns the
// buffer and the file names the operations use, so it must stay alive (and
// not move) until the save finished: save_in_flight() false, the outcome in
// take_save_result(). save(), load(), check_newest() and remove() block;
// save(), check_newest() and remove() require no save in flight.
//
// Every object here is owned by one thread (in the broker: the shard that
// owns the consumer); nothing is thread-safe. Blocking calls belong off the
// per-message path (start-up, admin requests, tools); the broker saves with
// save_async at most every state_save_interval_ms_max.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/types.h"
#include "storage/errc.h"
#include "storage/file_io.h"

namespace nagare::storage {

// ---- Limits ----------------------------------------------------------------

// The acked-above-floor bitmap: offsets tracked past the floor (8 KiB by default).
inline constexpr std::uint32_t ack_window_offsets_default = 65536;
inline constexpr std::uint32_t ack_window_offsets_min = 64;          // one bitmap word
inline constexpr std::uint32_t ack_window_offsets_limit = 1u << 20;  // 128 KiB of bitmap
// Delivery counts of unsettled delivered offsets: the consumer's max_inflight
// (DESIGN.md section 2, default 1024 per partition) must not exceed this.
inline constexpr std::uint32_t delivery_entries_max_default = 1024;
inline constexpr std::uint32_t delivery_entries_max_limit = 16384;
// Offsets at or above this are never tracked (the floor must stay representable).
inline constexpr std::uint64_t ack_offset_end = std::numeric_limits<std::uint64_t>::max();

// Consumer names: 1..64 bytes of [A-Za-z0-9_-] (they appear in file names and
// in the dead-letter stream `$dlq.<stream>.<consumer>`).
inline constexpr std::size_t consumer_name_bytes_max = 64;
// Stream names as stored: protocol::validate_stream_name, `$dlq.` names included.
inline constexpr std::size_t state_stream_bytes_max = 256;
inline constexpr std::uint32_t consumer_partitions_max = 1024;
// Memory a consumer_state may take; load refuses a file that would need more
// (sizes read from disk are never trusted).
inline constexpr std::size_t consumer_state_memory_bytes_max = 64u << 20;
// Issue 5: state is saved at most this long after a change.
inline constexpr std::uint32_t state_save_interval_ms_max = 100;

static_assert(std::has_single_bit(ack_window_offsets_default));
static_assert(std::has_single_bit(ack_window_offsets_limit));
static_assert(ack_window_offsets_min % 64 == 0);
static_assert(ack_window_offsets_min <= ack_window_offsets_default &&
              ack_window_offsets_default <= ack_window_offsets_limit);
static_assert(delivery_entries_max_default <= delivery_entries_max_limit);
static_assert(delivery_entries_max_limit <= ack_window_offsets_default,
              "every in-flight offset must fit in the default window");

// ---- State file layout (little-endian, version 1) ---------------------------
//
// Header, state_header_bytes = 24:
//   [0, 4)    magic          bytes "NGCS" (u32 0x5343474e)
//   [4, 6)    version        u16 = 1
//   [6, 8)    flags          u16 = 0 (a reader rejects any set bit)
//   [8, 16)   checksum       u64 XXH3-64 (seed 0) of bytes [16, end of file)
//   [16, 20)  body_bytes     u32; the file is exactly 24 + body_bytes long
//   [20, 24)  reserved       u32 = 0
// Body, fixed part, state_body_fixed_bytes = 40:
//   [0, 8)    stream_epoch   u64
//   [8, 16)   redelivered    u64
//   [16, 24)  dead_lettered  u64
//   [24, 32)  terminated     u64
//   [32, 36)  partitions     u32, <= consumer_partitions_max
//   [36, 38)  name_bytes     u16, 1..consumer_name_bytes_max
//   [38, 40)  stream_bytes   u16, 1..state_stream_bytes_max
//   then name_bytes of name, stream_bytes of stream (no terminator, no padding),
//   then `partitions` partition records, in partition order, then nothing.
// Partition record, fixed part, state_partition_fixed_bytes = 24:
//   [0, 8)    floor                 u64, floor <= ack_offset_end
//   [8, 12)   window_offsets        u32, power of two in [min, limit]
//   [12, 16)  delivery_entries_max  u32, 1..delivery_entries_max_limit
//   [16, 20)  acked_words           u32, <= window_offsets / 64
//   [20, 24)  delivery_entries      u32, <= delivery_entries_max
//   then acked_words u64 words: bit t of word j set <=> offset floor + 64j + t
//     is acked; bit 0 of word 0 is clear (else the floor would have moved)
//     and the last word is non-zero (trailing zero words are not written);
//   then delivery_entries entries of state_delivery_entry_bytes = 8:
//     [0, 4) relative offset u32 (offset - floor, < window_offsets, not acked,
//     distinct), [4, 8) delivery count u32 >= 1; in no particular order.
inline constexpr std::uint32_t state_magic = 0x5343474e;  // "NGCS" little-endian
inline constexpr std::uint16_t state_version = 1;
inline constexpr std::size_t state_magic_pos = 0;
inline constexpr std::size_t state_version_pos = 4;
inline constexpr std::size_t state_flags_pos = 6;
inline constexpr std::size_t state_checksum_pos = 8;
inline constexpr std::size_t state_body_bytes_pos = 16;
inline constexpr std::size_t state_reserved_pos = 20;
inline constexpr std::size_t state_header_bytes = 24;
inline constexpr std::size_t state_checksummed_from = state_checksum_pos + 8;
inline constexpr std::size_t state_body_fixed_bytes = 40;
inline constexpr std::size_t state_partition_fixed_bytes = 24;
inline constexpr std::size_t state_delivery_entry_bytes = 8;
// Largest body a file may declare (a save that would exceed it fails).
inline constexpr std::size_t state_body_bytes_max = 64u << 20;

static_assert(state_version_pos == state_magic_pos + 4);
static_assert(state_flags_pos == state_version_pos + 2);
static_assert(state_checksum_pos == state_flags_pos + 2);
static_assert(state_body_bytes_pos == state_checksum_pos + 8);
static_assert(state_reserved_pos == state_body_bytes_pos + 4);
static_assert(state_header_bytes == state_reserved_pos + 4);
static_assert(state_body_fixed_bytes == 4 * 8 + 4 + 2 + 2);
static_assert(state_partition_fixed_bytes == 8 + 4 * 4);
static_assert(state_delivery_entry_bytes == 4 + 4);
static_assert(ack_window_offsets_limit <= std::numeric_limits<std::uint32_t>::max(),
              "relative offsets are stored as u32");
static_assert(state_body_bytes_max <= std::numeric_limits<std::uint32_t>::max());
static_assert(consumer_name_bytes_max <= std::numeric_limits<std::uint16_t>::max() &&
              state_stream_bytes_max <= std::numeric_limits<std::uint16_t>::max());

// ---- partition_ack_state ----------------------------------------------------

struct ack_state_limits {
    std::uint32_t window_offsets = ack_window_offsets_default;
    std::uint32_t delivery_entries_max = delivery_entries_max_default;

    // A power-of-two window in [min, limit] and 1..limit entries.
    [[nodiscard]] bool valid() const noexcept;
    // Bytes the two tables take.
    [[nodiscard]] std::size_t memory_bytes() const noexcept;

    bool operator==(const ack_state_limits&) const = default;
};

class partition_ack_state {
public:
    // REQUIRES: limits.valid(); initial_floor.value <= ack_offset_end.
    explicit partition_ack_state(ack_state_limits limits = {}, offset initial_floor = offset{0});

    // Settles `o`. Returns true if it was not settled before, false if it
    // was (an ack below the floor or a repeat). Removes its delivery count.
    // When `o` is the floor, the floor slides past every contiguous acked offset.
    // errc::out_of_range when o >= window_end() (or o >= ack_offset_end).
    // Terminated and dead-lettered messages are settled with ack too.
    [[nodiscard]] std::expected<bool, errc> ack(offset o) noexcept;

    // Settles every offset below `to` (filtered out, skipped by a deliver
    // policy, removed by retention) and drops their delivery counts.
    // No-op when to <= floor().
    // REQUIRES: to.value <= ack_offset_end.
    void advance_floor(offset to) noexcept;

    [[nodiscard]] bool is_acked(offset o) const noexcept;
    [[nodiscard]] offset floor() const noexcept { return offset{_floor}; }
    // One past the last offset that can be acked or delivered now.
    [[nodiscard]] offset window_end() const noexcept;
    [[nodiscard]] std::uint32_t acked_above_floor_count() const noexcept { return _acked_count; }

    // Counts a delivery of `o` and returns the new count (1 for the first,
    // saturating at the u32 maximum).
    // errc::out_of_range when o >= window_end(); errc::invalid_argument when
    // `o` is already settled, or when it is new and delivery_entries_max
    // offsets are already counted (more in flight than the limit).
    [[nodiscard]] std::expected<std::uint32_t, errc> record_delivery(offset o) noexcept;
    // 0 when `o` has no delivery counted (never delivered, or settled).
    [[nodiscard]] std::uint32_t delivery_count(offset o) const noexcept;
    [[nodiscard]] std::uint32_t delivery_entries() const noexcept { return _delivery_entries; }

    // Sets the delivery count of an unsettled offset that has none (used by
    // load). Same errors as record_delivery, plus invalid_argument for
    // count == 0 or an offset already counted.
    [[nodiscard]] std::expected<void, errc> restore_delivery_count(offset o,
                                                                   std::uint32_t count) noexcept;

    // Calls fn(offset) for every acked offset above the floor, ascending.
    template <class Fn>
    void for_each_acked(Fn&& fn) const;
    // Calls fn(offset, count) for every counted delivery, in no particular order.
    template <class Fn>
    void for_each_delivery(Fn&& fn) const;

    // Bits for offsets [floor + 64j, floor + 64j + 64): bit t <=> floor + 64j + t acked.
    // REQUIRES: j < window_offsets / 64.
    [[nodiscard]] std::uint64_t relative_word(std::uint32_t j) const noexcept;

    [[nodiscard]] const ack_state_limits& limits() const noexcept { return _limits; }
    [[nodiscard]] std::size_t memory_bytes() const noexcept { return _limits.memory_bytes(); }

    // Aborts (NG_ASSERT) if an invariant is broken. O(window + slots): for tests.
    void check_invariants() const noexcept;

    // Same limits, floor, acked set and delivery counts (not the same layout).
    friend bool operator==(const partition_ack_state& a, const partition_ack_state& b) noexcept;

private:
    static constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();

    [[nodiscard]] std::uint32_t ring_index(std::uint64_t o) const noexcept {
        return static_cast<std::uint32_t>(o & _ring_mask);
    }
    [[nodiscard]] bool bit(std::uint64_t o) const noexcept;
    void slide_floor() noexcept;
    // Clears the bits of [from, from + count); returns how many were set.
    std::uint32_t clear_range(std::uint64_t from, std::uint64_t count) noexcept;

    [[nodiscard]] std::uint32_t home_slot(std::uint64_t o) const noexcept;
    [[nodiscard]] std::uint32_t find_slot(std::uint64_t o) const noexcept;
    // Inserts `o` with `count`; no_slot when the table is full.
    std::uint32_t insert_slot(std::uint64_t o, std::uint32_t count) noexcept;
    void erase_slot(std::uint32_t slot) noexcept;
    void erase_deliveries_below_floor() noexcept;

    ack_state_limits _limits;
    std::uint64_t _floor;
    std::uint64_t _ring_mask;
    std::uint32_t _acked_count = 0;
    std::vector<std::uint64_t> _words;  // window_offsets / 64, ring-indexed by offset

    // Open addressing, linear probing, backward-shift deletion; count 0 = empty.
    std::uint32_t _slot_mask;
    int _slot_shift;
    std::uint32_t _delivery_entries = 0;
    std::vector<std::uint64_t> _slot_offsets;
    std::vector<std::uint32_t> _slot_counts;
};

template <class Fn>
void partition_ack_state::for_each_acked(Fn&& fn) const {
    const auto words = static_cast<std::uint32_t>(_words.size());
    for (std::uint32_t j = 0; j < words && _acked_count > 0; ++j) {
        std::uint64_t word = relative_word(j);
        while (word != 0) {
            const auto t = static_cast<std::uint64_t>(std::countr_zero(word));
            fn(offset{_floor + std::uint64_t{64} * j + t});
            word &= word - 1;
        }
    }
}

template <class Fn>
void partition_ack_state::for_each_delivery(Fn&& fn) const {
    for (std::size_t i = 0; i < _slot_counts.size(); ++i) {
        if (_slot_counts[i] != 0) fn(offset{_slot_offsets[i]}, _slot_counts[i]);
    }
}

// ---- consumer_state ---------------------------------------------------------

struct consumer_counters {
    std::uint64_t redelivered = 0;    // deliveries with delivery_count > 1
    std::uint64_t dead_lettered = 0;  // copied to $dlq.<stream>.<consumer> after max_deliver
    std::uint64_t terminated = 0;     // settled by a `term` ack

    bool operator==(const consumer_counters&) const = default;
};

struct consumer_state {
    std::string name;
    std::string stream;
    std::uint64_t stream_epoch = 0;
    std::vector<partition_ack_state> partitions;  // index = partition id
    consumer_counters counters;

    consumer_state() = default;
    // REQUIRES: partition_count <= consumer_partitions_max; limits.valid().
    consumer_state(std::string consumer_name, std::string stream_name, std::uint64_t epoch,
                   std::uint32_t partition_count, ack_state_limits limits = {});

    // REQUIRES: p.value < partitions.size().
    [[nodiscard]] partition_ack_state& partition(partition_id p) noexcept;
    [[nodiscard]] const partition_ack_state& partition(partition_id p) const noexcept;

    bool operator==(const consumer_state&) const = default;
};

// 1..consumer_name_bytes_max bytes of [A-Za-z0-9_-].
[[nodiscard]] bool is_valid_consumer_name(std::string_view name) noexcept;

// Serializes `state` into `out` (cleared first; its capacity is reused).
// errc::invalid_argument for a bad name or stream, too many partitions, or
// a body above state_body_bytes_max.
[[nodiscard]] std::expected<void, errc> encode_consumer_state(const consumer_state& state,
                                                              std::vector<std::byte>& out);
// Checks the header and the checksum only (magic, version, flags, length).
[[nodiscard]] std::expected<void, errc> verify_consumer_state(
    std::span<const std::byte> file) noexcept;
// Verifies and parses a whole state file; errc::corrupt on any fault.
[[nodiscard]] std::expected<consumer_state, errc> decode_consumer_state(
    std::span<const std::byte> file);

// ---- consumer_state_store ---------------------------------------------------

enum class state_copy : std::uint8_t {
    newest,    // <name>.state
    previous,  // <name>.state.prev
};

struct loaded_consumer_state {
    consumer_state state;
    state_copy copy_used = state_copy::newest;
    bool newest_corrupt = false;  // <name>.state exists but failed verification
};

class consumer_state_store final : private io_completion {
public:
    // Opens `<dir>/consumers/`, creating it (and fsyncing `dir`) if needed.
    // errc::not_found when `dir` does not exist.
    [[nodiscard]] static std::expected<consumer_state_store, errc> open(
        const std::filesystem::path& dir);

    // REQUIRES (both): no save in flight in `other`.
    consumer_state_store(consumer_state_store&& other) noexcept;
    consumer_state_store& operator=(consumer_state_store&& other) noexcept;
    consumer_state_store(const consumer_state_store&) = delete;
    consumer_state_store& operator=(const consumer_state_store&) = delete;
    // REQUIRES: no save in flight, or its file_io never completes it (a
    // simulated crash in tests).
    ~consumer_state_store();

    // Writes `state` atomically as `<state.name>.state` (see the top of this
    // file), blocking. On failure the previous files are unchanged except for
    // a stray .tmp (or, failing at step 3, only .state.prev is left).
    // REQUIRES: no save in flight.
    [[nodiscard]] std::expected<void, errc> save(const consumer_state& state);

    // Starts the same save through `io` and returns at once: encodes `state`
    // (which the caller may change right after), then queues step 1's open.
    // errc::busy when a save is in flight, errc::invalid_argument as encode.
    [[nodiscard]] std::expected<void, errc> save_async(const consumer_state& state,
                                                       file_io& io) noexcept;
    [[nodiscard]] bool save_in_flight() const noexcept { return _step != save_step::idle; }
    // The outcome of the last save_async, once it finished; nullopt while it
    // is in flight or after the outcome was taken.
    [[nodiscard]] std::optional<std::expected<void, errc>> take_save_result() noexcept;

    // Reads `<name>.state` back and verifies it (blocking), so that the next
    // save_async of `name` knows whether it may rotate it. True if it verifies.
    // REQUIRES: is_valid_consumer_name(name); no save in flight.
    bool check_newest(std::string_view name);

    // The newest copy that verifies. errc::not_found when neither file
    // exists, errc::corrupt when none that exists verifies, errc::io_error
    // (see last_errno) when a file cannot be read.
    [[nodiscard]] std::expected<loaded_consumer_state, errc> load(std::string_view name);

    // Names of the consumers with a `.state` or `.state.prev`, sorted.
    [[nodiscard]] std::expected<std::vector<std::string>, errc> list() const;

    // Deletes every file of `name`. errc::not_found when there was none.
    // REQUIRES: no save in flight (its renames would bring files back).
    [[nodiscard]] std::expected<void, errc> remove(std::string_view name);

    // The errno of the last failed system call, for the log line.
    [[nodiscard]] int last_errno() const noexcept { return _last_errno; }
    [[nodiscard]] const std::filesystem::path& directory() const noexcept { return _path; }

private:
    // `name` + the longest suffix + NUL.
    using file_name = std::array<char, consumer_name_bytes_max + 12>;
    static file_name make_file_name(std::string_view name, std::string_view suffix) noexcept;

    // What the store knows of `_known_newest` (a `<name>.state`).
    enum class newest_file : std::uint8_t {
        unknown,       // never looked at: replaced without being rotated
        verified,      // installed by this store, or read back and verified
        not_verified,  // absent, unreadable or corrupt, or moved to .prev
    };
    // The step whose operation is in flight (steps 1-3 at the top of this file).
    enum class save_step : std::uint8_t {
        idle,
        open_temporary,
        write_temporary,  // write + fdatasync
        close_temporary,
        rotate,   // .state -> .state.prev
        install,  // .state.tmp -> .state
        sync_directory,
    };

    consumer_state_store(std::filesystem::path path, int dir_fd) noexcept;

    // io_completion: the save's state machine, one step per completion.
    void io_done(int result) noexcept override;
    void install_temporary() noexcept;
    void finish_save(int result) noexcept;

    // Reads a whole file into `out`; not_found, io_error or corrupt (too large).
    [[nodiscard]] std::expected<void, errc> read_file(const char* file,
                                                      std::vector<std::byte>& out);
    [[nodiscard]] std::expected<void, errc> sync_directory() noexcept;
    std::unexpected<errc> fail_errno(int error_number) noexcept;

    std::filesystem::path _path;  // <dir>/consumers
    int _dir_fd = -1;
    int _last_errno = 0;
    std::vector<std::byte> _write_buffer;
    std::vector<std::byte> _read_buffer;

    file_name _known_newest{};  // the .state that _newest describes
    newest_file _newest = newest_file::unknown;

    // The save in flight (save_async).
    save_step _step = save_step::idle;
    file_io* _io = nullptr;
    int _temporary_fd = -1;
    int _save_error = 0;  // -errno of a failed write, kept while the file closes
    file_name _temporary{};
    file_name _previous{};
    std::optional<std::expected<void, errc>> _save_result;
};

}  // namespace nagare::storage
