// The on-disk record batch: a fixed 48-byte little-endian header, then the
// records. docs/storage.md shows the layout byte by byte.
//
//   offset size field
//        0    4 magic               batch_magic ("NGB1")
//        4    4 batch_bytes         header + records
//        8    8 checksum            XXH3-64 of bytes [16, batch_bytes)
//       16    1 version             batch_version
//       17    1 flags               0 (reserved: compression)
//       18    2 reserved            0
//       20    4 record_count        >= 1
//       24    8 base_offset         offset of the first record
//       32    8 first_timestamp_ns  timestamp of the first record
//       40    8 last_timestamp_ns   timestamp of the last record
//       48      records
//
// A record is a LEB128 varint `record_bytes` (the bytes that follow it),
// then: varint offset_delta (== its index in the batch), varint
// timestamp_delta (from first_timestamp_ns), varint-length project, subject
// and msg_id, varint header count then varint-length key and value per
// header, varint-length payload.
//
// magic and batch_bytes sit before the checksum so a reader can bound the
// batch first; a damaged one makes the checksum fail.
//
// batch_builder encodes into a caller-owned buffer (no allocation);
// batch_view checks sizes and the checksum before it trusts a single field,
// and its record_reader bounds-checks every varint and length, so damaged
// input yields errc::corrupt, never a wrong record.
//
// Plain values; owned by whoever holds them (one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>

#include "protocol/frame.h"
#include "protocol/types.h"
#include "storage/errc.h"
#include "storage/limits.h"

namespace nagare::storage {

// One message as the caller holds it; the log assigns offset and time.
using record_ref = protocol::message_ref;
using header_ref = protocol::header_ref;

inline constexpr std::uint32_t batch_magic = 0x3142474e;  // "NGB1" little-endian
inline constexpr std::uint8_t batch_version = 1;

namespace batch_layout {
inline constexpr std::size_t magic = 0;
inline constexpr std::size_t batch_bytes = 4;
inline constexpr std::size_t checksum = 8;
inline constexpr std::size_t checksummed = 16;  // the checksum covers [checksummed, batch_bytes)
inline constexpr std::size_t version = 16;
inline constexpr std::size_t flags = 17;
inline constexpr std::size_t reserved = 18;
inline constexpr std::size_t record_count = 20;
inline constexpr std::size_t base_offset = 24;
inline constexpr std::size_t first_timestamp_ns = 32;
inline constexpr std::size_t last_timestamp_ns = 40;
inline constexpr std::size_t records = 48;
}  // namespace batch_layout

static_assert(batch_layout::records == batch_header_bytes);
static_assert(batch_layout::checksum + 8 == batch_layout::checksummed);
static_assert(batch_layout::base_offset % 8 == 0 && batch_layout::first_timestamp_ns % 8 == 0 &&
              batch_layout::last_timestamp_ns % 8 == 0 && batch_layout::checksum % 8 == 0);
static_assert(batch_layout::last_timestamp_ns + 8 == batch_layout::records);

// The header fields, decoded.
struct batch_header {
    std::uint32_t batch_bytes = 0;
    std::uint64_t checksum = 0;
    std::uint32_t record_count = 0;
    offset base_offset{};
    std::uint64_t first_timestamp_ns = 0;
    std::uint64_t last_timestamp_ns = 0;

    // One past the last record's offset.
    [[nodiscard]] offset end_offset() const noexcept {
        return offset{base_offset.value + record_count};
    }
};

// True when every field is within the protocol limits the reader enforces
// (project, subject, msg_id, header count and sizes).
[[nodiscard]] bool within_record_limits(const record_ref& record) noexcept;

// Bytes the record takes in a batch, its length varint included.
[[nodiscard]] std::size_t encoded_record_bytes(const record_ref& record,
                                               std::uint64_t timestamp_delta_ns,
                                               std::uint32_t offset_delta) noexcept;

// Writes batches one after another into a buffer the caller owns.
// Invariant: bytes [0, bytes_used()) hold sealed batches, then the open one.
class batch_builder {
public:
    // A point to rewind to: everything added after it is dropped.
    struct mark {
        std::size_t used_bytes = 0;
        std::size_t open_start = 0;
        std::uint32_t open_records = 0;
        std::uint64_t first_timestamp_ns = 0;
        std::uint64_t last_timestamp_ns = 0;
        offset base_offset{};
        bool open = false;
    };

    batch_builder() = default;
    explicit batch_builder(std::span<std::byte> buffer) noexcept { reset(buffer); }

    // Starts over at the beginning of `buffer`.
    void reset(std::span<std::byte> buffer) noexcept;

    // Opens a batch whose first record gets `base_offset`. False when not even
    // the header fits. REQUIRES: no batch is open.
    [[nodiscard]] bool open(offset base_offset) noexcept;

    // Adds one record to the open batch; false (and nothing written) when it
    // does not fit in the buffer or would make the batch exceed batch_bytes_max.
    // REQUIRES: a batch is open; timestamp_ns >= the previous record's.
    [[nodiscard]] bool add(const record_ref& record, std::uint64_t timestamp_ns) noexcept;

    // Writes the header and checksum of the open batch and returns it.
    // REQUIRES: a batch is open and holds at least one record.
    std::span<const std::byte> seal() noexcept;

    [[nodiscard]] mark save() const noexcept;
    void rewind(const mark& to) noexcept;

    [[nodiscard]] bool is_open() const noexcept { return _open; }
    [[nodiscard]] std::uint32_t open_records() const noexcept { return _open_records; }
    [[nodiscard]] std::size_t open_bytes() const noexcept { return _used - _open_start; }
    [[nodiscard]] std::size_t used_bytes() const noexcept { return _used; }
    [[nodiscard]] std::size_t capacity_bytes() const noexcept { return _buffer.size(); }
    // Everything written so far; only sealed batches are valid on disk.
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        return std::span<const std::byte>(_buffer).first(_used);
    }

private:
    std::span<std::byte> _buffer;
    std::size_t _used = 0;
    std::size_t _open_start = 0;
    std::uint32_t _open_records = 0;
    std::uint64_t _first_timestamp_ns = 0;
    std::uint64_t _last_timestamp_ns = 0;
    offset _base_offset{};
    bool _open = false;
};

// The headers of a verified record: iterating them needs no checks.
class headers_view {
public:
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = header_ref;
        using difference_type = std::ptrdiff_t;
        using pointer = const header_ref*;
        using reference = const header_ref&;

        iterator() = default;
        iterator(std::span<const std::byte> rest, std::uint32_t left) noexcept
            : _rest(rest), _left(left) {
            load();
        }
        [[nodiscard]] const header_ref& operator*() const noexcept { return _current; }
        [[nodiscard]] const header_ref* operator->() const noexcept { return &_current; }
        iterator& operator++() noexcept;
        iterator operator++(int) noexcept {
            auto before = *this;
            ++*this;
            return before;
        }
        [[nodiscard]] bool operator==(const iterator& other) const noexcept {
            return _left == other._left;
        }

    private:
        void load() noexcept;
        std::span<const std::byte> _rest;
        std::uint32_t _left = 0;
        header_ref _current{};
    };

    headers_view() = default;
    headers_view(std::span<const std::byte> bytes, std::uint32_t count) noexcept
        : _bytes(bytes), _count(count) {}

    [[nodiscard]] std::uint32_t size() const noexcept { return _count; }
    [[nodiscard]] bool empty() const noexcept { return _count == 0; }
    [[nodiscard]] iterator begin() const noexcept { return {_bytes, _count}; }
    [[nodiscard]] iterator end() const noexcept { return {{}, 0}; }

private:
    std::span<const std::byte> _bytes;
    std::uint32_t _count = 0;
};

// One stored record; views into the batch's bytes.
struct record_view {
    offset record_offset{};
    std::uint64_t timestamp_ns = 0;
    std::string_view project;
    std::string_view subject;
    std::string_view msg_id;
    headers_view headers;
    std::span<const std::byte> payload;
};

// Reads a batch header without trusting it: bounds only.
// errc::corrupt when fewer than batch_header_bytes are given.
[[nodiscard]] std::expected<batch_header, errc> peek_header(
    std::span<const std::byte> bytes) noexcept;

// A batch whose header and checksum have been verified.
class batch_view {
public:
    // Verifies the batch at the start of `bytes` (which may hold more after
    // it): magic, sizes, version, flags, counts, timestamps, then the
    // checksum. errc::corrupt on any fault, also when `bytes` ends inside it.
    [[nodiscard]] static std::expected<batch_view, errc> parse(
        std::span<const std::byte> bytes) noexcept;

    [[nodiscard]] const batch_header& header() const noexcept { return _header; }
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return _bytes; }

    // Walks every record and checks it; errc::corrupt if any is malformed.
    [[nodiscard]] std::expected<void, errc> validate_records() const noexcept;

    // Calls fn(const record_view&) for every record in order; stops early
    // when fn returns false. errc::corrupt at the first malformed record
    // (the records before it have been handed out).
    template <class Fn>
    std::expected<void, errc> for_each(Fn&& fn) const noexcept;

private:
    batch_view(batch_header header, std::span<const std::byte> bytes) noexcept
        : _header(header), _bytes(bytes) {}

    batch_header _header;
    std::span<const std::byte> _bytes;

    friend class record_reader;
};

// Iterates the records of a verified batch, checking each.
class record_reader {
public:
    explicit record_reader(const batch_view& batch) noexcept;

    // The next record, std::nullopt after the last, errc::corrupt on a fault
    // (after which next() keeps failing).
    [[nodiscard]] std::expected<std::optional<record_view>, errc> next() noexcept;

private:
    [[nodiscard]] std::expected<record_view, errc> decode(
        std::span<const std::byte> record) noexcept;
    std::expected<std::optional<record_view>, errc> fail() noexcept;

    batch_header _header;
    std::span<const std::byte> _rest;
    std::uint32_t _index = 0;
    std::uint64_t _previous_timestamp_ns = 0;
    bool _failed = false;
};

template <class Fn>
std::expected<void, errc> batch_view::for_each(Fn&& fn) const noexcept {
    record_reader reader(*this);
    while (true) {
        auto record = reader.next();
        if (!record) return std::unexpected(record.error());
        if (!*record) return {};
        if (!fn(**record)) return {};
    }
}

}  // namespace nagare::storage
