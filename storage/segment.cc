#include "storage/segment.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "protocol/assert.h"
#include "storage/bytes.h"

namespace nagare::storage {

namespace {

// Adds an entry for the batch at `position` when it is the first one or
// index_interval bytes past the last entry.
void maybe_add_entry(std::vector<index_entry>& index, offset base, const batch_header& header,
                     std::uint64_t position, std::uint32_t interval_bytes) noexcept {
    if (!index.empty() && position < index.back().position + std::uint64_t{interval_bytes}) return;
    NG_ASSERT(position <= UINT32_MAX, "segment positions fit in u32");
    NG_ASSERT(header.base_offset.value - base.value <= UINT32_MAX, "relative offsets fit in u32");
    index.push_back({static_cast<std::uint32_t>(header.base_offset.value - base.value),
                     static_cast<std::uint32_t>(position), header.first_timestamp_ns});
}

std::uint64_t round_up(std::uint64_t value, std::uint64_t step) noexcept {
    return (value + step - 1) / step * step;
}

}  // namespace

std::string segment_file_name(offset base_offset, std::string_view extension) {
    std::array<char, 24> digits{};
    std::snprintf(digits.data(), digits.size(), "%020llu",
                  static_cast<unsigned long long>(base_offset.value));
    return std::string(digits.data()) + "." + std::string(extension);
}

std::optional<offset> parse_segment_file_name(std::string_view name) noexcept {
    constexpr std::size_t digits = 20;
    if (name.size() != digits + 4 || name.substr(digits) != ".log") return std::nullopt;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < digits; ++i) {
        const char c = name[i];
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<std::uint64_t>(c - '0');
        if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return offset{value};
}

std::expected<void, errc> remove_segment_files(const std::filesystem::path& dir,
                                               offset base_offset) {
    std::error_code error;
    for (const auto* extension : {"log", "idx", "tix"}) {
        std::filesystem::remove(dir / segment_file_name(base_offset, extension), error);
        if (error) return std::unexpected(from_errno(error.value()));
    }
    return {};
}

// --- batch_scanner ---------------------------------------------------------

batch_scanner::batch_scanner(const posix_file& file, std::uint64_t position,
                             std::uint64_t end_position, offset expected_base)
    : _file(file),
      _position(position),
      _end_position(end_position),
      _expected(expected_base),
      _window(static_cast<std::size_t>(std::clamp<std::uint64_t>(
          end_position - std::min(position, end_position), batch_header_bytes, scan_chunk_bytes))) {
}

bool batch_scanner::fill(std::size_t bytes) {
    if (_position >= _window_position && _position + bytes <= _window_position + _window_bytes) {
        return true;
    }
    if (_window.size() < bytes) _window.resize(bytes);
    const auto want = static_cast<std::size_t>(
        std::min<std::uint64_t>(_window.size(), _end_position - _position));
    const auto got = _file.read_at(std::span(_window).first(want), _position);
    if (!got) {
        _read_error = got.error();
        _window_bytes = 0;
        return false;
    }
    _window_position = _position;
    _window_bytes = *got;
    return _window_bytes >= bytes;
}

std::optional<batch_view> batch_scanner::next() {
    auto stop = [this](scan_stop why) -> std::optional<batch_view> {
        _stopped = true;
        _stop = why;
        return std::nullopt;
    };
    if (_stopped) return std::nullopt;
    if (_position >= _end_position) return stop(scan_stop::end);
    if (_end_position - _position < batch_header_bytes || !fill(batch_header_bytes)) {
        return stop(_read_error ? scan_stop::corrupt : scan_stop::incomplete);
    }
    const auto* at = _window.data() + (_position - _window_position);
    const auto magic = load<std::uint32_t>(at + batch_layout::magic);
    const auto bytes = load<std::uint32_t>(at + batch_layout::batch_bytes);
    if (magic == 0 && bytes == 0) return stop(scan_stop::zeros);
    if (magic != batch_magic || bytes <= batch_header_bytes || bytes > batch_bytes_max) {
        return stop(scan_stop::corrupt);
    }
    if (_position + bytes > _end_position) return stop(scan_stop::incomplete);
    if (!fill(bytes)) return stop(_read_error ? scan_stop::corrupt : scan_stop::incomplete);
    const auto view = batch_view::parse(
        std::span<const std::byte>(_window).subspan(_position - _window_position, bytes));
    if (!view || view->header().base_offset != _expected || !view->validate_records()) {
        return stop(scan_stop::corrupt);
    }
    _batch_position = _position;
    _position += bytes;
    _expected = view->header().end_offset();
    return *view;
}

// --- segment: open and recover ---------------------------------------------

segment::segment(std::filesystem::path dir, offset base, const segment_options& options)
    : _dir(std::move(dir)), _base(base), _options(options), _end(base) {}

// Opens (creating) .log, .idx and .tix, in that order; `created[i]` tells
// which this call made. Each must be empty: a name that holds data is never
// reused.
std::expected<void, errc> segment::create_files(std::array<bool, 3>& created) {
    const std::array paths{log_path(), idx_path(), tix_path()};
    const std::array files{&_log, &_idx, &_tix};
    for (std::size_t i = 0; i < paths.size(); ++i) {
        auto file = posix_file::open_or_create(paths[i], created[i]);
        if (!file) return std::unexpected(file.error());
        const auto size = file->size_bytes();
        if (!size) return std::unexpected(size.error());
        if (*size != 0) return std::unexpected(errc::invalid_argument);
        *files[i] = std::move(*file);
    }
    return {};
}

// Undoes a create that failed part-way. Best effort: a <base>.log that cannot
// be removed is empty, and recovery deletes or adopts it (docs/storage.md).
void segment::remove_created_files(const std::array<bool, 3>& created) noexcept {
    close_file();
    const std::array paths{log_path(), idx_path(), tix_path()};
    std::error_code ignored;
    for (std::size_t i = 0; i < paths.size(); ++i) {
        if (created[i]) std::filesystem::remove(paths[i], ignored);
    }
}

std::expected<void, errc> segment::open_index_files() noexcept {
    if (!_idx.is_open()) {
        auto idx = posix_file::open(idx_path(), true);
        if (!idx) return std::unexpected(idx.error());
        _idx = std::move(*idx);
    }
    if (!_tix.is_open()) {
        auto tix = posix_file::open(tix_path(), true);
        if (!tix) return std::unexpected(tix.error());
        _tix = std::move(*tix);
    }
    return {};
}

std::expected<void, errc> segment::reopen() {
    if (_log.is_open()) return {};
    auto log = posix_file::open(log_path(), false);
    if (!log) return std::unexpected(log.error());
    _log = std::move(*log);
    return {};
}

std::expected<std::unique_ptr<segment>, errc> segment::create(const std::filesystem::path& dir,
                                                              offset base_offset,
                                                              const segment_options& options) {
    std::unique_ptr<segment> seg(new segment(dir, base_offset, options));
    std::array<bool, 3> created{};
    if (auto made = seg->create_files(created); !made) {
        // E.g. ENOSPC for the .idx inode after the .log got one: an empty
        // <base>.log left behind would sit inside the offsets that the old
        // segment goes on taking.
        seg->remove_created_files(created);
        return std::unexpected(made.error());
    }
    seg->_index.reserve(options.segment_bytes / options.index_interval_bytes + 16);
    return seg;
}

std::expected<std::unique_ptr<segment>, errc> segment::recover(const std::filesystem::path& dir,
                                                               offset base_offset,
                                                               const segment_options& options,
                                                               bool active, recovery_stats& stats) {
    std::unique_ptr<segment> seg(new segment(dir, base_offset, options));
    auto log = posix_file::open(seg->log_path(), false);
    if (!log) return std::unexpected(log.error());
    seg->_log = std::move(*log);
    const auto file_bytes = seg->_log.size_bytes();
    if (!file_bytes) return std::unexpected(file_bytes.error());
    seg->_log_bytes = *file_bytes;  // bounds load_index; scan_tail sets the real end
    // Index files that cannot be opened (no inode to create a missing one)
    // are treated as missing: the index is rebuilt from the log.
    const bool index_ok =
        seg->open_index_files().has_value() && seg->load_index() && seg->verify_last_entry();
    if (!index_ok) {
        ++stats.indexes_rebuilt;
        seg->_index.clear();
        seg->_index_persisted = 0;
    }
    const auto stop = seg->scan_tail(*file_bytes);
    if (!stop) return std::unexpected(stop.error());
    if (auto settled = seg->settle_tail(*file_bytes, active, stats); !settled) {
        return std::unexpected(settled.error());
    }
    // Drop index entries in the files past what survived, then add the new
    // ones. The log is intact whatever happens here (a full disk refuses the
    // index pages): the index stays dirty in memory and is written later.
    (void)seg->rewrite_index_files();
    if (active) {
        seg->_index.reserve(options.segment_bytes / options.index_interval_bytes + 16);
    } else {
        seg->_index.shrink_to_fit();
    }
    return seg;
}

// Loads .idx and .tix; false when they are missing or do not hold together.
bool segment::load_index() {
    const auto idx_bytes = _idx.size_bytes();
    const auto tix_bytes = _tix.size_bytes();
    if (!idx_bytes || !tix_bytes) return false;
    const auto count = std::min(*idx_bytes / idx_entry_bytes, *tix_bytes / tix_entry_bytes);
    std::vector<std::byte> idx(count * idx_entry_bytes);
    std::vector<std::byte> tix(count * tix_entry_bytes);
    if (_idx.read_at(idx, 0) != idx.size() || _tix.read_at(tix, 0) != tix.size()) return false;
    _index.clear();
    _index.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const index_entry e{load<std::uint32_t>(idx.data() + i * idx_entry_bytes),
                            load<std::uint32_t>(idx.data() + i * idx_entry_bytes + 4),
                            load<std::uint64_t>(tix.data() + i * tix_entry_bytes)};
        const auto tix_relative = load<std::uint32_t>(tix.data() + i * tix_entry_bytes + 8);
        if (e.position >= _log_bytes && i > 0) break;  // past a torn log: scanned again
        const bool ok = tix_relative == e.relative_offset && e.position < _log_bytes &&
                        (i == 0 ? e.relative_offset == 0 && e.position == 0
                                : e.relative_offset > _index.back().relative_offset &&
                                      e.position > _index.back().position &&
                                      e.timestamp_ns >= _index.back().timestamp_ns);
        if (!ok) return false;
        _index.push_back(e);
    }
    _index_persisted = _index.size();
    return !_index.empty() || _log_bytes == 0;
}

// Drops entries from the end until one points at a valid batch of the right
// offset and time; false when none does.
bool segment::verify_last_entry() {
    while (!_index.empty()) {
        const auto& e = _index.back();
        batch_scanner scanner(_log, e.position, _log_bytes,
                              offset{_base.value + e.relative_offset});
        const auto batch = scanner.next();
        if (batch && batch->header().first_timestamp_ns == e.timestamp_ns) break;
        _index.pop_back();
    }
    _index_persisted = std::min(_index_persisted, _index.size());
    return !_index.empty() || _log_bytes == 0;
}

// Re-reads the log from the last index entry (or the start) to `file_bytes`,
// adding every verified batch; returns why the scan stopped.
std::expected<scan_stop, errc> segment::scan_tail(std::uint64_t file_bytes) {
    const auto start = _index.empty() ? index_entry{} : _index.back();
    _log_bytes = start.position;
    _end = offset{_base.value + start.relative_offset};
    _first_timestamp_ns = _index.empty() ? 0 : _index.front().timestamp_ns;
    _last_timestamp_ns = start.timestamp_ns;
    batch_scanner scanner(_log, start.position, file_bytes, _end);
    while (const auto batch = scanner.next()) add_batch(batch->header(), scanner.batch_position());
    if (scanner.read_error()) return std::unexpected(*scanner.read_error());
    return scanner.stop();
}

// Cuts the file after the last valid batch: a tail of zeros always, any tail
// of the active segment. A sealed segment is never cut past zeros.
std::expected<void, errc> segment::settle_tail(std::uint64_t file_bytes, bool active,
                                               recovery_stats& stats) {
    _allocated_bytes = file_bytes;
    if (_log_bytes == file_bytes) return {};
    const auto data_end = nonzero_end(_log_bytes, file_bytes);
    if (!data_end) return std::unexpected(data_end.error());
    if (!active && *data_end > _log_bytes) {
        // Never cut a sealed segment: its damage is reported by reads and verify.
        ++stats.damaged_segments;
        _damaged_end_position = file_bytes;
        return {};
    }
    // What was written and is lost (a torn or corrupt batch), not the zeros
    // after it: preallocated space, or pages a crash left unwritten.
    stats.truncated_bytes += *data_end - _log_bytes;
    if (auto cut = _log.truncate(_log_bytes); !cut) return cut;
    _allocated_bytes = _log_bytes;
    return {};
}

// The position after the last non-zero byte in [from, to); `from` when every
// byte there is zero (or the file ends first).
std::expected<std::uint64_t, errc> segment::nonzero_end(std::uint64_t from,
                                                        std::uint64_t to) const {
    std::vector<std::byte> chunk(
        static_cast<std::size_t>(std::min<std::uint64_t>(scan_chunk_bytes, to - from)));
    std::uint64_t end = from;
    while (from < to) {
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), to - from));
        const auto got = _log.read_at(std::span(chunk).first(want), from);
        if (!got) return std::unexpected(got.error());
        if (*got == 0) break;
        const auto bytes = std::span(chunk).first(*got);
        const auto last = std::find_if(bytes.rbegin(), bytes.rend(),
                                       [](std::byte b) { return b != std::byte{0}; });
        if (last != bytes.rend()) end = from + static_cast<std::uint64_t>(bytes.rend() - last);
        from += *got;
    }
    return end;
}

void segment::add_batch(const batch_header& header, std::uint64_t position) noexcept {
    NG_ASSERT(header.base_offset == _end && position == _log_bytes, "batches continue the segment");
    maybe_add_entry(_index, _base, header, position, _options.index_interval_bytes);
    if (_end == _base) _first_timestamp_ns = header.first_timestamp_ns;
    _log_bytes = position + header.batch_bytes;
    _end = header.end_offset();
    _last_timestamp_ns = header.last_timestamp_ns;
}

// --- segment: write path ---------------------------------------------------

void segment::reserve(std::uint64_t end_position) noexcept {
    if (end_position <= _allocated_bytes || _preallocate_unsupported) return;
    const auto target = round_up(end_position, _options.preallocate_step_bytes);
    const auto done = _log.preallocate(target);
    if (done) {
        _allocated_bytes = target;
    } else if (done.error() == errc::invalid_argument) {
        _preallocate_unsupported = true;
    }
}

void segment::commit(std::span<const std::byte> batches) noexcept {
    while (!batches.empty()) {
        const auto header = peek_header(batches);
        NG_ASSERT(header.has_value() && header->batch_bytes <= batches.size(),
                  "commit takes whole sealed batches");
        add_batch(*header, _log_bytes);
        batches = batches.subspan(header->batch_bytes);
    }
    _allocated_bytes = std::max(_allocated_bytes, _log_bytes);
}

void segment::discard_uncommitted() noexcept {
    (void)_log.truncate(_log_bytes);  // best effort: recovery cuts a bad tail anyway
    _allocated_bytes = _log_bytes;
}

std::expected<void, errc> segment::persist_index() noexcept {
    if (!index_dirty()) return {};
    if (auto opened = open_index_files(); !opened) return opened;
    if (auto cut = cut_stale_index_entries(); !cut) return cut;
    return append_pending_index_entries();
}

// Entries in the files past _index_persisted are not (or no longer) in memory:
// a torn tail dropped at recovery, entries of a cut log. Appending after them
// would leave them behind ours.
std::expected<void, errc> segment::cut_stale_index_entries() noexcept {
    if (!_index_files_stale) return {};
    if (auto cut = _idx.truncate(_index_persisted * idx_entry_bytes); !cut) return cut;
    if (auto cut = _tix.truncate(_index_persisted * tix_entry_bytes); !cut) return cut;
    _index_files_stale = false;
    return {};
}

// Writes at explicit positions, so a retry after a failed or short write
// rewrites the same entries in the same place.
std::expected<void, errc> segment::append_pending_index_entries() noexcept {
    constexpr std::size_t chunk_entries = 64;
    std::array<std::byte, chunk_entries * idx_entry_bytes> idx{};
    std::array<std::byte, chunk_entries * tix_entry_bytes> tix{};
    while (_index_persisted < _index.size()) {
        const auto n = std::min(chunk_entries, _index.size() - _index_persisted);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& e = _index[_index_persisted + i];
            store<std::uint32_t>(idx.data() + i * idx_entry_bytes, e.relative_offset);
            store<std::uint32_t>(idx.data() + i * idx_entry_bytes + 4, e.position);
            store<std::uint64_t>(tix.data() + i * tix_entry_bytes, e.timestamp_ns);
            store<std::uint32_t>(tix.data() + i * tix_entry_bytes + 8, e.relative_offset);
        }
        if (auto w = _idx.write_at(std::span(idx).first(n * idx_entry_bytes),
                                   _index_persisted * idx_entry_bytes);
            !w) {
            return w;
        }
        if (auto w = _tix.write_at(std::span(tix).first(n * tix_entry_bytes),
                                   _index_persisted * tix_entry_bytes);
            !w) {
            return w;
        }
        _index_persisted += n;
    }
    return {};
}

// After the index in memory lost entries (recovery, truncate, rebuild): the
// files are cut to what is still valid before the rest is appended. Stays
// dirty on failure.
std::expected<void, errc> segment::rewrite_index_files() noexcept {
    _index_files_stale = true;
    return persist_index();
}

std::expected<void, errc> segment::seal() noexcept {
    // Trim first: on a full disk the index write fails, and the tail is the
    // space the next segment needs.
    const auto trimmed = trim_preallocation();
    const auto persisted = persist_index();
    _idx.close();
    _tix.close();
    if (!trimmed) return trimmed;
    return persisted;
}

// Gives the preallocated space after the data back. A damaged sealed segment
// keeps its tail (never cut); a closed .log (a retried seal) is left to
// recovery, which trims a tail of zeros.
std::expected<void, errc> segment::trim_preallocation() noexcept {
    if (_allocated_bytes <= _log_bytes || damaged() || !_log.is_open()) return {};
    if (auto cut = _log.truncate(_log_bytes); !cut) return cut;
    _allocated_bytes = _log_bytes;
    return {};
}

// --- segment: read path ----------------------------------------------------

index_entry segment::locate(offset target) const noexcept {
    if (_index.empty()) return {};
    const auto relative = target.value - _base.value;
    auto it = std::upper_bound(
        _index.begin(), _index.end(), relative,
        [](std::uint64_t r, const index_entry& e) { return r < e.relative_offset; });
    return it == _index.begin() ? _index.front() : *std::prev(it);
}

index_entry segment::locate_time(std::uint64_t timestamp_ns) const noexcept {
    if (_index.empty()) return {};
    auto it = std::partition_point(_index.begin(), _index.end(), [&](const index_entry& e) {
        return e.timestamp_ns < timestamp_ns;
    });
    return it == _index.begin() ? _index.front() : *std::prev(it);
}

std::expected<read_result, errc> segment::read(offset from, std::span<std::byte> buffer) {
    bool index_mismatch = false;
    auto result = read_once(from, buffer, index_mismatch);
    if (index_mismatch && !_index_rebuilt) {
        _index_rebuilt = true;  // the index disagrees with a valid batch: rebuild it once
        if (auto rebuilt = scan_index(); !rebuilt) return std::unexpected(rebuilt.error());
        (void)rewrite_index_files();  // the read needs the index in memory only
        result = read_once(from, buffer, index_mismatch);
    }
    return result;
}

std::expected<read_result, errc> segment::read_once(offset from, std::span<std::byte> buffer,
                                                    bool& index_mismatch) {
    const auto entry = locate(from);
    std::uint64_t position = entry.position;
    offset expected{_base.value + entry.relative_offset};
    const auto end_position = std::max(_log_bytes, _damaged_end_position);
    bool at_entry = true;
    while (position < end_position) {
        const auto want = static_cast<std::size_t>(
            std::min<std::uint64_t>(buffer.size(), end_position - position));
        const auto got = _log.read_at(buffer.first(want), position);
        if (!got) return std::unexpected(got.error());
        if (*got < want) return std::unexpected(errc::corrupt);  // the file lost bytes
        std::size_t at = 0;
        std::size_t first = want;
        bool bad = false;  // a batch that fails verification: stop before it
        while (want - at >= batch_header_bytes) {
            const auto bytes = buffer.subspan(at, want - at);
            const auto header = peek_header(bytes);
            if (!header || header->batch_bytes <= batch_header_bytes ||
                header->batch_bytes > batch_bytes_max) {
                bad = true;
                break;
            }
            if (header->batch_bytes > bytes.size()) break;  // read it next round
            const auto batch = batch_view::parse(bytes);
            if (!batch || batch->header().base_offset != expected) {
                index_mismatch = at_entry && batch.has_value();
                bad = true;
                break;
            }
            if (at_entry && batch->header().first_timestamp_ns != entry.timestamp_ns) {
                index_mismatch = true;
                bad = true;
                break;
            }
            at_entry = false;
            expected = batch->header().end_offset();
            if (first == want && expected > from) first = at;
            at += batch->header().batch_bytes;
        }
        if (first < at) return read_result{buffer.subspan(first, at - first), expected};
        if (bad) return std::unexpected(errc::corrupt);
        if (at == 0) {
            // The next batch is larger than the buffer, or runs past the data.
            const auto header = peek_header(buffer.first(want));
            if (header && position + header->batch_bytes > end_position) {
                return std::unexpected(errc::corrupt);
            }
            return std::unexpected(errc::invalid_argument);
        }
        position += at;
    }
    return std::unexpected(errc::corrupt);  // `from` should be here and is not
}

std::expected<void, errc> segment::rebuild_index() {
    if (auto scanned = scan_index(); !scanned) return scanned;
    return rewrite_index_files();
}

// Replaces the index in memory with one derived from a scan of the whole log.
std::expected<void, errc> segment::scan_index() {
    const auto end_position = std::max(_log_bytes, _damaged_end_position);
    std::vector<index_entry> rebuilt;
    rebuilt.reserve(_index.capacity());
    batch_scanner scanner(_log, 0, end_position, _base);
    while (const auto batch = scanner.next()) {
        maybe_add_entry(rebuilt, _base, batch->header(), scanner.batch_position(),
                        _options.index_interval_bytes);
    }
    if (scanner.read_error()) return std::unexpected(*scanner.read_error());
    _index = std::move(rebuilt);
    _index_persisted = 0;
    return {};
}

// --- segment: truncate and remove ------------------------------------------

std::expected<void, errc> segment::truncate(offset end) {
    NG_ASSERT(_base <= end && end <= _end, "truncate inside the segment");
    _index.reserve(_options.segment_bytes / _options.index_interval_bytes + 16);  // active again
    if (end == _end) return {};
    const auto entry = locate(end);
    batch_scanner scanner(_log, entry.position, _log_bytes,
                          offset{_base.value + entry.relative_offset});
    std::optional<batch_header> holder;
    while (const auto batch = scanner.next()) {
        if (batch->header().end_offset() > end) {
            holder = batch->header();
            break;
        }
    }
    if (!holder) return std::unexpected(scanner.read_error().value_or(errc::corrupt));
    const auto position = scanner.batch_position();
    std::uint64_t cut = position;
    if (holder->base_offset != end) {
        const auto rewritten = rewrite_batch_before(position, holder->batch_bytes, end);
        if (!rewritten) return std::unexpected(rewritten.error());
        cut = *rewritten;
    }
    if (auto done = _log.truncate(cut); !done) return done;
    while (!_index.empty() && _index.back().position >= cut) _index.pop_back();
    _index_persisted = std::min(_index_persisted, _index.size());
    _damaged_end_position = 0;
    const auto stop = scan_tail(cut);
    if (!stop) return std::unexpected(stop.error());
    NG_ASSERT(_end == end && _log_bytes == cut, "the cut log ends at `end`");
    _allocated_bytes = cut;
    // The cut is done and the partition builds on it: a failed index write
    // must not report it as not done. The index stays dirty, written later.
    (void)rewrite_index_files();
    return _log.datasync();
}

// Writes, at `position`, the batch found there without its records >= end;
// returns the position after it.
std::expected<std::uint64_t, errc> segment::rewrite_batch_before(std::uint64_t position,
                                                                 std::uint32_t batch_bytes,
                                                                 offset end) {
    std::vector<std::byte> old_bytes(batch_bytes);
    const auto got = _log.read_at(old_bytes, position);
    if (!got) return std::unexpected(got.error());
    const auto old = batch_view::parse(std::span(old_bytes).first(*got));
    if (!old) return std::unexpected(old.error());
    std::vector<std::byte> out(old->bytes().size());
    batch_builder builder(out);
    const bool opened = builder.open(old->header().base_offset);
    NG_ASSERT(opened, "the header fits");
    std::vector<header_ref> headers;
    const auto status = old->for_each([&](const record_view& r) {
        if (r.record_offset >= end) return false;
        headers.assign(r.headers.begin(), r.headers.end());
        const record_ref ref{r.project, r.subject, r.msg_id, headers, r.payload};
        const bool added = builder.add(ref, r.timestamp_ns);
        NG_ASSERT(added, "a part of a batch fits in its size");
        return true;
    });
    if (!status) return std::unexpected(status.error());
    const auto batch = builder.seal();
    if (auto written = _log.write_at(batch, position); !written) {
        return std::unexpected(written.error());
    }
    if (auto synced = _log.datasync(); !synced) return std::unexpected(synced.error());
    return position + batch.size();
}

std::expected<void, errc> segment::remove_files() {
    close_file();
    return remove_segment_files(_dir, _base);
}

}  // namespace nagare::storage
