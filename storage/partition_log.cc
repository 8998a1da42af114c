#include "storage/partition_log.h"

#include <algorithm>
#include <system_error>

#include "protocol/assert.h"
#include "storage/posix_file.h"

namespace nagare::storage {

namespace {

bool valid(const partition_options& o) noexcept {
    return o.segment_bytes >= segment_bytes_min && o.segment_bytes <= segment_bytes_max &&
           o.index_interval_bytes >= index_interval_bytes_min &&
           o.write_buffer_bytes >= write_buffer_bytes_min &&
           o.write_buffer_bytes <= write_buffer_bytes_max && o.batch_bytes_target > 0 &&
           o.batch_bytes_target <= o.write_buffer_bytes && o.preallocate_step_bytes > 0 &&
           o.preallocate_step_bytes <= segment_bytes_max && o.fsync_interval_ns > 0 &&
           (o.tail_cache_bytes == 0 || (o.tail_cache_bytes >= tail_cache_bytes_min &&
                                        o.tail_cache_bytes <= tail_cache_bytes_max));
}

// Segment bases found in `dir`; index files without a log are removed.
std::expected<std::vector<offset>, errc> list_segments(const std::filesystem::path& dir) {
    std::vector<offset> bases;
    std::vector<std::filesystem::path> orphans;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        const auto name = entry.path().filename().string();
        if (const auto base = parse_segment_file_name(name)) {
            bases.push_back(*base);
        } else if (entry.path().extension() == ".idx" || entry.path().extension() == ".tix") {
            auto log = entry.path();
            log.replace_extension(".log");
            if (!std::filesystem::exists(log, error)) orphans.push_back(entry.path());
        }
    }
    if (error) return std::unexpected(from_errno(error.value()));
    for (const auto& orphan : orphans) std::filesystem::remove(orphan, error);
    std::sort(bases.begin(), bases.end());
    return bases;
}

}  // namespace

partition_log::partition_log(std::filesystem::path dir, const partition_options& options,
                             file_io& io)
    : _dir(std::move(dir)), _options(options), _io(io), _cache(options.tail_cache_bytes) {
    _write_done.log = this;
    _sync_done.log = this;
}

partition_log::~partition_log() { NG_ASSERT(!io_in_flight(), "a partition log outlives its I/O"); }

std::expected<std::unique_ptr<partition_log>, errc> partition_log::open(
    const std::filesystem::path& dir, const partition_options& options, file_io& io) {
    if (!valid(options)) return std::unexpected(errc::invalid_argument);
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    if (error) return std::unexpected(from_errno(error.value()));
    std::unique_ptr<partition_log> log(new partition_log(dir, options, io));
    if (auto recovered = log->recover(); !recovered) return std::unexpected(recovered.error());
    for (auto& buffer : log->_buffers) buffer.resize(options.write_buffer_bytes);
    log->_builder.reset(log->open_buffer());
    return log;
}

segment_options partition_log::segment_opts() const noexcept {
    return {_options.index_interval_bytes, _options.preallocate_step_bytes,
            _options.segment_bytes + _options.write_buffer_bytes};
}

std::expected<void, errc> partition_log::recover() {
    const auto bases = list_segments(_dir);
    if (!bases) return std::unexpected(bases.error());
    if (bases->empty()) {
        auto first = segment::create(_dir, offset{0}, segment_opts());
        if (!first) return std::unexpected(first.error());
        _segments.push_back(std::move(*first));
        if (auto synced = fsync_directory(_dir); !synced) return synced;
    }
    if (auto recovered = recover_segments(*bases); !recovered) return recovered;
    if (auto continuous = check_continuity(); !continuous) return continuous;
    for (std::size_t i = 0; i + 1 < _segments.size(); ++i) {
        _sealed_index_dirty = _sealed_index_dirty || _segments[i]->index_dirty();
    }
    auto& active = *_segments.back();
    _next_offset = _durable_end = active.end_offset();
    for (const auto& seg : _segments) {
        _last_timestamp_ns = std::max(_last_timestamp_ns, seg->last_timestamp_ns());
    }
    // What recovery kept is what later appends build on: make it durable.
    if (_options.durability_mode != durability::none) {
        if (auto synced = active.log().datasync(); !synced) return synced;
    }
    _synced_bytes = active.log_bytes();
    return {};
}

// Recovers the segments oldest first; the last one kept is the active one.
// An empty leftover of a failed roll is deleted; when it was the last file,
// the segment before it (recovered as sealed) is the one the data went on
// into, and is recovered again as the active one, its first pass not counted.
std::expected<void, errc> partition_log::recover_segments(std::span<const offset> bases) {
    recovery_stats before_back = _recovery;  // as it was before _segments.back() was recovered
    for (std::size_t i = 0; i < bases.size(); ++i) {
        const bool last = i + 1 == bases.size();
        const auto leftover = is_leftover(bases[i], last);
        if (!leftover) return std::unexpected(leftover.error());
        if (*leftover) {
            if (auto gone = remove_segment_files(_dir, bases[i]); !gone) return gone;
            if (!last) continue;
            const auto base = _segments.back()->base_offset();
            _segments.pop_back();
            _recovery = before_back;
            auto again = segment::recover(_dir, base, segment_opts(), true, _recovery);
            if (!again) return std::unexpected(again.error());
            _segments.push_back(std::move(*again));
            continue;
        }
        before_back = _recovery;
        auto seg = segment::recover(_dir, bases[i], segment_opts(), last, _recovery);
        if (!seg) return std::unexpected(seg.error());
        if (!last) (*seg)->close_file();  // reopened by reads, a few at a time
        _segments.push_back(std::move(*seg));
    }
    return {};
}

// An empty <base>.log inside the offsets of the segment before it: a roll
// created it, failed, and could not remove it, and the data went on into the
// segment before. It holds nothing, so deleting it loses nothing; kept, it
// would overlap that segment. For the last file, the segment before ending
// exactly at `base` with a damaged tail is the same case (the first write
// after the failed roll was torn): a segment sealed by a roll has only zeros
// after its end, as trim and recovery leave it. An empty file at the end of
// the segment before (a roll whose first write failed or never came, a crash
// inside create) is kept: it is the (empty) active segment.
std::expected<bool, errc> partition_log::is_leftover(offset base, bool last) const {
    if (_segments.empty()) return false;
    std::error_code error;
    const auto bytes = std::filesystem::file_size(_dir / segment_file_name(base, "log"), error);
    if (error) return std::unexpected(from_errno(error.value()));
    if (bytes != 0) return false;
    const auto& before = *_segments.back();
    return before.end_offset() > base || (last && before.end_offset() == base && before.damaged());
}

// Sealed segments end where the next begins; one that ends short holds
// damage (reads report it), one that runs past it cannot be trusted at all.
std::expected<void, errc> partition_log::check_continuity() {
    for (std::size_t i = 0; i + 1 < _segments.size(); ++i) {
        const auto end = _segments[i]->end_offset();
        const auto next = _segments[i + 1]->base_offset();
        if (end > next) return std::unexpected(errc::corrupt);
        if (end < next && !_segments[i]->damaged()) ++_recovery.damaged_segments;
    }
    return {};
}

// --- write path ------------------------------------------------------------

std::expected<offset, errc> partition_log::append(std::span<const record_ref> records,
                                                  std::uint64_t now_ns) noexcept {
    if (_closed) return std::unexpected(errc::closed);
    if (records.empty()) return std::unexpected(errc::invalid_argument);
    _now_ns = std::max(_now_ns, now_ns);
    const auto timestamp_ns = std::max(now_ns, _last_timestamp_ns);
    const auto mark = _builder.save();
    const auto base = _next_offset;
    auto next = base;
    for (const auto& record : records) {
        const bool ok = within_record_limits(record);
        if (ok && _builder.is_open() && _builder.open_records() > 0 &&
            _builder.open_bytes() + encoded_record_bytes(record, timestamp_ns, 0) >
                _options.batch_bytes_target) {
            _builder.seal();
        }
        if (!ok || (!_builder.is_open() && !_builder.open(next)) ||
            !_builder.add(record, timestamp_ns)) {
            const bool never_fits = !ok || mark.used_bytes == 0;
            _builder.rewind(mark);
            return std::unexpected(never_fits ? errc::invalid_argument : errc::busy);
        }
        next = offset{next.value + 1};
    }
    _next_offset = next;
    _last_timestamp_ns = timestamp_ns;
    return base;
}

void partition_log::flush() noexcept {
    if (_closed) return;
    if (_write_in_flight) {
        _flush_requested = true;
        return;
    }
    if (_builder.used_bytes() == 0) return;
    maybe_roll();
    start_write();
}

bool partition_log::roll_due(const segment& active) const noexcept {
    if (active.empty()) return false;
    const bool aged = _now_ns >= active.first_timestamp_ns() &&
                      _now_ns - active.first_timestamp_ns() >= _options.segment_age_ns;
    return active.log_bytes() >= _options.segment_bytes || aged;
}

// Seals the active segment and starts a new one at durable_end(). Waits (the
// data goes to the old segment once more) while a sync is in flight, or in
// interval mode until the old segment is synced; a roll that fails is retried
// at the next flush.
void partition_log::maybe_roll() noexcept {
    auto& active = *_segments.back();
    if (!roll_due(active) || _sync_in_flight) return;
    if (_options.durability_mode == durability::interval && _synced_bytes < active.log_bytes()) {
        return;
    }
    NG_ASSERT(_durable_end == active.end_offset(), "nothing in flight at a roll");
    auto next = segment::create(_dir, _durable_end, segment_opts());
    if (!next) return;  // create left nothing behind: the data goes to the old segment
    // Gives the preallocated tail back before writing the index: on a full
    // disk that space is what the next write needs. An index write that fails
    // stays in memory and tick() retries it.
    (void)active.seal();
    _sealed_index_dirty = _sealed_index_dirty || active.index_dirty();
    if (_options.durability_mode != durability::none) (void)fsync_directory(_dir);
    _segments.push_back(std::move(*next));
    _synced_bytes = 0;
    active.last_read_tick = ++_read_tick;
    (void)open_for_read(active);  // keeps the number of open sealed files bounded
}

void partition_log::start_write() noexcept {
    if (_builder.is_open()) _builder.seal();
    auto& active = *_segments.back();
    const auto bytes = _builder.bytes();
    const auto position = active.log_bytes();
    if (position + bytes.size() > UINT32_MAX) {
        fail_writes(errc::io_error);  // rolls keep failing: positions would overflow
        return;
    }
    active.reserve(position + bytes.size());
    _write_datasync = _options.durability_mode == durability::fsync ||
                      (_options.durability_mode == durability::interval &&
                       (position + bytes.size() >= _options.segment_bytes || roll_due(active)));
    _write_bytes = bytes;
    _write_end = _next_offset;
    _write_in_flight = true;
    _open_buffer ^= 1;
    _builder.reset(open_buffer());
    _io.write(active.log().fd(), bytes, position, _write_datasync, _write_done);
}

void partition_log::on_write_done(int result) noexcept {
    NG_ASSERT(_write_in_flight, "a write completion for a write in flight");
    _write_in_flight = false;
    if (result < 0 || static_cast<std::size_t>(result) != _write_bytes.size()) {
        // A short write that the backend did not finish is a failed write.
        fail_writes(result < 0 ? from_errno(-result) : errc::io_error);
        return;
    }
    auto& active = *_segments.back();
    active.commit(_write_bytes);
    NG_ASSERT(active.end_offset() == _write_end, "the write ends where append left off");
    if (_write_datasync) _synced_bytes = active.log_bytes();
    _durable_end = _write_end;
    cache_batches(_write_bytes);  // before the buffer is reused, and before on_durable
    if (active.index_pending_entries() >= index_pending_entries_max) {
        (void)active.persist_index();  // on failure they stay pending: retried by tick()
    }
    if (_listener != nullptr) _listener->on_durable(_durable_end);
    if (_flush_requested && !_write_in_flight) {
        _flush_requested = false;
        flush();
    }
}

void partition_log::cache_batches(std::span<const std::byte> batches) noexcept {
    while (!batches.empty()) {
        const auto header = peek_header(batches);
        NG_ASSERT(header.has_value() && header->batch_bytes <= batches.size(), "whole batches");
        _cache.append(batches.first(header->batch_bytes));
        batches = batches.subspan(header->batch_bytes);
    }
    NG_ASSERT(_cache.empty() || _cache.end_offset() == _durable_end,
              "the cache ends at durable_end");
}

void partition_log::fail_writes(errc error) noexcept {
    const auto from = _durable_end;
    _next_offset = _durable_end;
    _builder.reset(open_buffer());
    _flush_requested = false;
    _segments.back()->discard_uncommitted();
    if (_listener != nullptr) _listener->on_write_failed(from, error);
}

void partition_log::tick(std::uint64_t now_ns) noexcept {
    if (_closed) return;
    _now_ns = std::max(_now_ns, now_ns);
    auto& active = *_segments.back();
    if (_options.durability_mode == durability::interval && !_sync_in_flight &&
        active.log_bytes() > _synced_bytes &&
        _now_ns - std::min(_now_ns, _last_sync_ns) >= _options.fsync_interval_ns) {
        _sync_in_flight = true;
        _sync_target_bytes = active.log_bytes();
        _last_sync_ns = _now_ns;
        _io.datasync(active.log().fd(), _sync_done);
    }
    // The index files are a cache: while they cannot be written (a full
    // disk) the entries stay in memory and every tick tries again.
    if (active.index_dirty()) (void)active.persist_index();
    if (_sealed_index_dirty) persist_sealed_indexes();
}

// Retries the index writes of sealed segments that failed at a roll or at
// open; reads use the index in memory meanwhile.
void partition_log::persist_sealed_indexes() noexcept {
    bool dirty = false;
    for (std::size_t i = 0; i + 1 < _segments.size(); ++i) {
        auto& seg = *_segments[i];
        if (seg.index_dirty()) (void)seg.seal();  // closes the index files again
        dirty = dirty || seg.index_dirty();
    }
    _sealed_index_dirty = dirty;
}

void partition_log::on_sync_done(int result) noexcept {
    NG_ASSERT(_sync_in_flight, "a sync completion for a sync in flight");
    _sync_in_flight = false;
    if (result < 0) {
        if (_listener != nullptr) _listener->on_sync_failed(from_errno(-result));
        return;
    }
    _synced_bytes = std::max(_synced_bytes, _sync_target_bytes);
}

// --- read path -------------------------------------------------------------

segment& partition_log::segment_for(offset target) noexcept {
    auto it = std::upper_bound(
        _segments.begin(), _segments.end(), target,
        [](offset t, const std::unique_ptr<segment>& s) { return t < s->base_offset(); });
    NG_ASSERT(it != _segments.begin(), "target >= first_offset()");
    return **std::prev(it);
}

// Reopens a sealed segment's file for reading, closing the least recently
// read one past sealed_fds_open_max.
std::expected<void, errc> partition_log::open_for_read(segment& seg) noexcept {
    seg.last_read_tick = ++_read_tick;
    if (auto opened = seg.reopen(); !opened) return opened;
    std::size_t open = 0;
    segment* oldest = nullptr;
    for (std::size_t i = 0; i + 1 < _segments.size(); ++i) {
        auto* s = _segments[i].get();
        if (!s->is_open()) continue;
        ++open;
        if (s != &seg && (oldest == nullptr || s->last_read_tick < oldest->last_read_tick)) {
            oldest = s;
        }
    }
    if (open > sealed_fds_open_max && oldest != nullptr) oldest->close_file();
    return {};
}

std::expected<read_result, errc> partition_log::read(offset from,
                                                     std::span<std::byte> buffer) noexcept {
    if (_closed) return std::unexpected(errc::closed);
    if (from < first_offset() || from > _durable_end) return std::unexpected(errc::out_of_range);
    if (from == _durable_end) return read_result{{}, from};
    auto& seg = segment_for(from);
    if (_cache.contains(from)) {
        ++_counters.read_cache_hits;
        const auto copied = _cache.copy(from, seg.end_offset(), buffer);
        if (copied.bytes == 0) return std::unexpected(errc::invalid_argument);  // does not fit
        return read_result{buffer.first(copied.bytes), copied.next_offset};
    }
    ++_counters.read_cache_misses;
    if (auto opened = open_for_read(seg); !opened) return std::unexpected(opened.error());
    return seg.read(from, buffer);
}

std::expected<std::span<const std::byte>, errc> partition_log::cached_batch(
    offset o) const noexcept {
    if (_closed) return std::unexpected(errc::closed);
    if (o < first_offset() || o > _durable_end) return std::unexpected(errc::out_of_range);
    return _cache.find(o);
}

std::expected<offset, errc> partition_log::seek_time(std::uint64_t timestamp_ns) {
    if (_closed) return std::unexpected(errc::closed);
    for (auto& seg : _segments) {
        if (seg->empty() || seg->last_timestamp_ns() < timestamp_ns) continue;
        if (auto opened = open_for_read(*seg); !opened) return std::unexpected(opened.error());
        const auto entry = seg->locate_time(timestamp_ns);
        batch_scanner scanner(seg->log(), entry.position, seg->log_bytes(),
                              offset{seg->base_offset().value + entry.relative_offset});
        while (const auto batch = scanner.next()) {
            if (batch->header().last_timestamp_ns < timestamp_ns) continue;
            offset found = batch->header().end_offset();
            (void)batch->for_each([&](const record_view& r) {
                if (r.timestamp_ns < timestamp_ns) return true;
                found = r.record_offset;
                return false;
            });
            return found;
        }
        return std::unexpected(scanner.read_error().value_or(errc::corrupt));
    }
    return _durable_end;
}

// --- retention, truncate, close --------------------------------------------

std::uint64_t partition_log::bytes() const noexcept {
    std::uint64_t total = 0;
    for (const auto& seg : _segments) total += seg->log_bytes();
    return total;
}

std::expected<std::size_t, errc> partition_log::enforce_retention(std::uint64_t now_ns) {
    if (_closed) return std::unexpected(errc::closed);
    std::size_t removed = 0;
    while (_segments.size() > 1) {
        const auto& front = *_segments.front();
        const bool expired = _options.max_age_ns <= now_ns &&
                             front.last_timestamp_ns() < now_ns - _options.max_age_ns;
        const bool over = bytes() > _options.max_bytes;
        if (!expired && !over) break;
        if (auto gone = _segments.front()->remove_files(); !gone) {
            return std::unexpected(gone.error());
        }
        _segments.erase(_segments.begin());
        _cache.drop_before(first_offset());
        ++removed;
    }
    return removed;
}

std::expected<void, errc> partition_log::truncate(offset end) {
    if (_closed) return std::unexpected(errc::closed);
    if (io_in_flight()) return std::unexpected(errc::busy);
    if (end < first_offset() || end > _durable_end) return std::unexpected(errc::out_of_range);
    if (end < _cache.end_offset()) _cache.clear();
    _builder.reset(open_buffer());
    _flush_requested = false;
    _next_offset = _durable_end;
    bool removed = false;
    while (_segments.size() > 1 && _segments.back()->base_offset() >= end) {
        if (auto gone = _segments.back()->remove_files(); !gone) return gone;
        _segments.pop_back();
        removed = true;
    }
    auto& last = *_segments.back();
    if (auto opened = last.reopen(); !opened) return opened;
    if (auto cut = last.truncate(end); !cut) return cut;
    _next_offset = _durable_end = end;
    _synced_bytes = last.log_bytes();
    if (removed) return fsync_directory(_dir);
    return {};
}

std::expected<void, errc> partition_log::close() {
    if (_closed) return {};
    if (io_in_flight() || _builder.used_bytes() > 0) return std::unexpected(errc::busy);
    auto& active = *_segments.back();
    auto sealed = active.seal();
    if (_sealed_index_dirty) persist_sealed_indexes();  // best effort: recovery rebuilds them
    auto synced = _options.durability_mode == durability::none ? std::expected<void, errc>{}
                                                               : active.log().datasync();
    for (auto& seg : _segments) seg->close_file();
    _cache.clear();
    _closed = true;
    if (!sealed) return sealed;
    return synced;
}

}  // namespace nagare::storage
