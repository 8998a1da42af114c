#include "storage/record_batch.h"

#include <bit>
#include <cstring>

#include <xxhash.h>

#include "protocol/assert.h"
#include "storage/bytes.h"

namespace nagare::storage {

static_assert(std::endian::native == std::endian::little,
              "the batch format is little-endian; a big-endian port must swap fields");

namespace {

constexpr std::size_t varint_bytes(std::uint64_t value) noexcept {
    std::size_t n = 1;
    while (value >= 0x80) {
        value >>= 7;
        ++n;
    }
    return n;
}
static_assert(varint_bytes(UINT64_MAX) == varint_bytes_max);

std::size_t put_varint(std::byte* at, std::uint64_t value) noexcept {
    std::size_t n = 0;
    while (value >= 0x80) {
        at[n++] = static_cast<std::byte>((value & 0x7f) | 0x80);
        value >>= 7;
    }
    at[n++] = static_cast<std::byte>(value);
    return n;
}

// A bounds-checked cursor over bytes that are not trusted.
class cursor {
public:
    explicit cursor(std::span<const std::byte> bytes) noexcept : _bytes(bytes) {}

    [[nodiscard]] std::optional<std::uint64_t> varint() noexcept {
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < varint_bytes_max; ++i) {
            if (_at >= _bytes.size()) return std::nullopt;
            const auto byte = std::to_integer<std::uint64_t>(_bytes[_at++]);
            if (i == varint_bytes_max - 1 && byte > 1) return std::nullopt;  // past 64 bits
            value |= (byte & 0x7f) << (7 * i);
            if ((byte & 0x80) == 0) return value;
        }
        return std::nullopt;
    }

    // A varint length no larger than `bytes_max`, then that many bytes.
    [[nodiscard]] std::optional<std::span<const std::byte>> chunk(std::size_t bytes_max) noexcept {
        const auto length = varint();
        if (!length || *length > bytes_max || *length > left()) return std::nullopt;
        const auto out = _bytes.subspan(_at, static_cast<std::size_t>(*length));
        _at += out.size();
        return out;
    }

    [[nodiscard]] std::size_t left() const noexcept { return _bytes.size() - _at; }
    [[nodiscard]] std::span<const std::byte> rest() const noexcept { return _bytes.subspan(_at); }
    void skip(std::size_t bytes) noexcept { _at += bytes; }

private:
    std::span<const std::byte> _bytes;
    std::size_t _at = 0;
};

std::string_view as_chars(std::span<const std::byte> bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::size_t string_bytes(std::string_view s) noexcept { return varint_bytes(s.size()) + s.size(); }

std::byte* put_string(std::byte* at, std::string_view s) noexcept {
    at += put_varint(at, s.size());
    std::memcpy(at, s.data(), s.size());
    return at + s.size();
}

// Bytes after the record's length varint.
std::size_t record_body_bytes(const record_ref& record, std::uint64_t timestamp_delta_ns,
                              std::uint32_t offset_delta) noexcept {
    std::size_t n = varint_bytes(offset_delta) + varint_bytes(timestamp_delta_ns);
    n += string_bytes(record.project) + string_bytes(record.subject) + string_bytes(record.msg_id);
    n += varint_bytes(record.headers.size());
    for (const auto& h : record.headers) n += string_bytes(h.key) + string_bytes(h.value);
    n += varint_bytes(record.payload.size()) + record.payload.size();
    return n;
}

std::uint64_t checksum_of(std::span<const std::byte> batch) noexcept {
    const auto covered = batch.subspan(batch_layout::checksummed);
    return XXH3_64bits(covered.data(), covered.size());
}

}  // namespace

bool within_record_limits(const record_ref& record) noexcept {
    if (record.project.size() > protocol::project_bytes_max ||
        record.subject.size() > protocol::subject_bytes_max ||
        record.msg_id.size() > protocol::msg_id_bytes_max ||
        record.headers.size() > protocol::headers_max) {
        return false;
    }
    for (const auto& h : record.headers) {
        if (h.key.size() > protocol::header_key_bytes_max ||
            h.value.size() > protocol::header_value_bytes_max) {
            return false;
        }
    }
    return true;
}

std::size_t encoded_record_bytes(const record_ref& record, std::uint64_t timestamp_delta_ns,
                                 std::uint32_t offset_delta) noexcept {
    const auto body = record_body_bytes(record, timestamp_delta_ns, offset_delta);
    return varint_bytes(body) + body;
}

// --- batch_builder ---------------------------------------------------------

void batch_builder::reset(std::span<std::byte> buffer) noexcept {
    _buffer = buffer;
    _used = 0;
    _open_start = 0;
    _open_records = 0;
    _open = false;
}

bool batch_builder::open(offset base_offset) noexcept {
    NG_ASSERT(!_open, "open: a batch is already open");
    if (_buffer.size() - _used < batch_header_bytes) return false;
    _open = true;
    _open_start = _used;
    _open_records = 0;
    _base_offset = base_offset;
    _used += batch_header_bytes;
    return true;
}

bool batch_builder::add(const record_ref& record, std::uint64_t timestamp_ns) noexcept {
    NG_ASSERT(_open, "add: no open batch");
    if (_open_records == 0) _first_timestamp_ns = _last_timestamp_ns = timestamp_ns;
    NG_ASSERT(timestamp_ns >= _last_timestamp_ns, "timestamps never decrease in a batch");
    if (_open_records == batch_records_max) return false;
    const auto delta_ns = timestamp_ns - _first_timestamp_ns;
    const auto body = record_body_bytes(record, delta_ns, _open_records);
    const auto total = varint_bytes(body) + body;
    if (total > _buffer.size() - _used || open_bytes() + total > batch_bytes_max) return false;

    std::byte* at = _buffer.data() + _used;
    at += put_varint(at, body);
    at += put_varint(at, _open_records);
    at += put_varint(at, delta_ns);
    at = put_string(at, record.project);
    at = put_string(at, record.subject);
    at = put_string(at, record.msg_id);
    at += put_varint(at, record.headers.size());
    for (const auto& h : record.headers) {
        at = put_string(at, h.key);
        at = put_string(at, h.value);
    }
    at += put_varint(at, record.payload.size());
    if (!record.payload.empty()) std::memcpy(at, record.payload.data(), record.payload.size());
    at += record.payload.size();
    NG_ASSERT(at == _buffer.data() + _used + total, "record size and encoding agree");

    _used += total;
    _last_timestamp_ns = timestamp_ns;
    ++_open_records;
    return true;
}

std::span<const std::byte> batch_builder::seal() noexcept {
    NG_ASSERT(_open && _open_records > 0, "seal: an open batch with records");
    std::byte* header = _buffer.data() + _open_start;
    const auto bytes = static_cast<std::uint32_t>(_used - _open_start);
    store<std::uint32_t>(header + batch_layout::magic, batch_magic);
    store<std::uint32_t>(header + batch_layout::batch_bytes, bytes);
    store<std::uint8_t>(header + batch_layout::version, batch_version);
    store<std::uint8_t>(header + batch_layout::flags, 0);
    store<std::uint16_t>(header + batch_layout::reserved, 0);
    store<std::uint32_t>(header + batch_layout::record_count, _open_records);
    store<std::uint64_t>(header + batch_layout::base_offset, _base_offset.value);
    store<std::uint64_t>(header + batch_layout::first_timestamp_ns, _first_timestamp_ns);
    store<std::uint64_t>(header + batch_layout::last_timestamp_ns, _last_timestamp_ns);
    const std::span<const std::byte> batch(header, bytes);
    store<std::uint64_t>(header + batch_layout::checksum, checksum_of(batch));
    _open = false;
    return batch;
}

batch_builder::mark batch_builder::save() const noexcept {
    return {_used,        _open_start, _open_records, _first_timestamp_ns, _last_timestamp_ns,
            _base_offset, _open};
}

void batch_builder::rewind(const mark& to) noexcept {
    NG_ASSERT(to.used_bytes <= _used, "rewind only goes back");
    _used = to.used_bytes;
    _open_start = to.open_start;
    _open_records = to.open_records;
    _first_timestamp_ns = to.first_timestamp_ns;
    _last_timestamp_ns = to.last_timestamp_ns;
    _base_offset = to.base_offset;
    _open = to.open;
}

// --- batch_view ------------------------------------------------------------

std::expected<batch_header, errc> peek_header(std::span<const std::byte> bytes) noexcept {
    if (bytes.size() < batch_header_bytes) return std::unexpected(errc::corrupt);
    const std::byte* h = bytes.data();
    batch_header out;
    out.batch_bytes = load<std::uint32_t>(h + batch_layout::batch_bytes);
    out.checksum = load<std::uint64_t>(h + batch_layout::checksum);
    out.record_count = load<std::uint32_t>(h + batch_layout::record_count);
    out.base_offset = offset{load<std::uint64_t>(h + batch_layout::base_offset)};
    out.first_timestamp_ns = load<std::uint64_t>(h + batch_layout::first_timestamp_ns);
    out.last_timestamp_ns = load<std::uint64_t>(h + batch_layout::last_timestamp_ns);
    if (load<std::uint32_t>(h + batch_layout::magic) != batch_magic) {
        return std::unexpected(errc::corrupt);
    }
    return out;
}

std::expected<batch_view, errc> batch_view::parse(std::span<const std::byte> bytes) noexcept {
    const auto header = peek_header(bytes);
    if (!header) return std::unexpected(header.error());
    const std::byte* h = bytes.data();
    const auto n = header->batch_bytes;
    const bool sizes_ok = n > batch_header_bytes && n <= batch_bytes_max && n <= bytes.size();
    const bool fields_ok = load<std::uint8_t>(h + batch_layout::version) == batch_version &&
                           load<std::uint8_t>(h + batch_layout::flags) == 0 &&
                           load<std::uint16_t>(h + batch_layout::reserved) == 0;
    const auto count = header->record_count;
    const bool counts_ok = count >= 1 && count <= batch_records_max &&
                           count <= n - batch_header_bytes &&
                           header->base_offset.value <= UINT64_MAX - count &&
                           header->first_timestamp_ns <= header->last_timestamp_ns;
    if (!sizes_ok || !fields_ok || !counts_ok) return std::unexpected(errc::corrupt);
    const auto batch = bytes.first(n);
    if (checksum_of(batch) != header->checksum) return std::unexpected(errc::corrupt);
    return batch_view(*header, batch);
}

std::expected<void, errc> batch_view::validate_records() const noexcept {
    return for_each([](const record_view&) { return true; });
}

// --- record_reader ---------------------------------------------------------

record_reader::record_reader(const batch_view& batch) noexcept
    : _header(batch._header),
      _rest(batch._bytes.subspan(batch_header_bytes)),
      _previous_timestamp_ns(batch._header.first_timestamp_ns) {}

std::expected<std::optional<record_view>, errc> record_reader::fail() noexcept {
    _failed = true;
    return std::unexpected(errc::corrupt);
}

std::expected<std::optional<record_view>, errc> record_reader::next() noexcept {
    if (_failed) return std::unexpected(errc::corrupt);
    if (_index == _header.record_count) {
        // Every byte belongs to a record, and the last one carries last_timestamp_ns.
        if (!_rest.empty() || _previous_timestamp_ns != _header.last_timestamp_ns) return fail();
        return std::optional<record_view>{};
    }
    cursor c(_rest);
    const auto body = c.varint();
    if (!body || *body == 0 || *body > c.left()) return fail();
    const auto record = c.rest().first(static_cast<std::size_t>(*body));
    c.skip(record.size());
    auto view = decode(record);
    if (!view) return fail();
    _rest = c.rest();
    ++_index;
    _previous_timestamp_ns = view->timestamp_ns;
    return std::optional<record_view>{*view};
}

std::expected<record_view, errc> record_reader::decode(std::span<const std::byte> record) noexcept {
    cursor c(record);
    const auto offset_delta = c.varint();
    const auto timestamp_delta = c.varint();
    if (!offset_delta || *offset_delta != _index || !timestamp_delta) {
        return std::unexpected(errc::corrupt);
    }
    const auto span_ns = _header.last_timestamp_ns - _header.first_timestamp_ns;
    if (*timestamp_delta > span_ns || (_index == 0 && *timestamp_delta != 0)) {
        return std::unexpected(errc::corrupt);
    }
    record_view out;
    out.record_offset = offset{_header.base_offset.value + _index};
    out.timestamp_ns = _header.first_timestamp_ns + *timestamp_delta;
    if (out.timestamp_ns < _previous_timestamp_ns) return std::unexpected(errc::corrupt);
    const auto project = c.chunk(protocol::project_bytes_max);
    const auto subject = c.chunk(protocol::subject_bytes_max);
    const auto msg_id = c.chunk(protocol::msg_id_bytes_max);
    const auto header_count = c.varint();
    if (!project || !subject || !msg_id || !header_count || *header_count > protocol::headers_max) {
        return std::unexpected(errc::corrupt);
    }
    const auto headers_start = record.size() - c.left();
    for (std::uint64_t i = 0; i < *header_count; ++i) {
        if (!c.chunk(protocol::header_key_bytes_max) ||
            !c.chunk(protocol::header_value_bytes_max)) {
            return std::unexpected(errc::corrupt);
        }
    }
    const auto headers_bytes = record.size() - c.left() - headers_start;
    const auto payload = c.chunk(record.size());
    if (!payload || c.left() != 0) return std::unexpected(errc::corrupt);
    out.project = as_chars(*project);
    out.subject = as_chars(*subject);
    out.msg_id = as_chars(*msg_id);
    out.headers = headers_view(record.subspan(headers_start, headers_bytes),
                               static_cast<std::uint32_t>(*header_count));
    out.payload = *payload;
    return out;
}

// --- headers_view ----------------------------------------------------------

void headers_view::iterator::load() noexcept {
    if (_left == 0) return;
    cursor c(_rest);
    const auto key = c.chunk(protocol::header_key_bytes_max);
    const auto value = c.chunk(protocol::header_value_bytes_max);
    NG_ASSERT(key && value, "headers were verified with their record");
    _current = {as_chars(*key), as_chars(*value)};
    _rest = c.rest();
}

headers_view::iterator& headers_view::iterator::operator++() noexcept {
    --_left;
    load();
    return *this;
}

}  // namespace nagare::storage
