#include "broker/partition.h"

#include <chrono>

#include "broker/metrics.h"
#include "protocol/assert.h"

namespace nagare::broker {

partition::partition(const partition_settings& settings, publish_sink& sink)
    : _sink(sink),
      _dedup(std::make_unique<storage::dedup_window>(settings.dedup)),
      _waiters(settings.waiters_max) {
    NG_ASSERT(settings.waiters_max > 0, "a partition needs room for waiters");
}

partition::~partition() = default;

std::expected<std::unique_ptr<partition>, std::string> partition::open(
    const std::filesystem::path& dir, const partition_settings& settings, storage::file_io& io,
    publish_sink& sink) {
    std::unique_ptr<partition> p(new partition(settings, sink));
    auto log = storage::partition_log::open(dir, settings.log, io);
    if (!log) {
        return std::unexpected("cannot open partition " + dir.string() + ": " +
                               std::string(storage::to_string(log.error())));
    }
    p->_log = std::move(*log);
    p->_dir = dir;
    p->_io = &io;
    p->_log->set_listener(p.get());
    if (auto ok = p->rebuild_dedup(); !ok) return std::unexpected(ok.error());
    return p;
}

std::expected<void, std::string> partition::rebuild_dedup() {
    if (_log->durable_end() == _log->first_offset()) return {};
    const auto newest_ns = _log->segments().back()->last_timestamp_ns();
    _last_stored_ns = newest_ns;
    auto from = _log->seek_time(_dedup->rebuild_from_ns(newest_ns));
    if (!from) return std::unexpected("dedup rebuild: seek failed");
    auto done = _log->for_each_record(*from, [&](const storage::record_view& r) {
        _dedup->insert(storage::dedup_window::hash_msg_id(r.msg_id), r.record_offset,
                       r.timestamp_ns);
        return true;
    });
    if (!done) {
        return std::unexpected("dedup rebuild: " + std::string(storage::to_string(done.error())));
    }
    return {};
}

void partition::push_waiter(const waiter& w) noexcept {
    NG_ASSERT(_waiter_count < _waiters.size(), "waiter ring overflow");
    _waiters[(_waiter_head + _waiter_count) % _waiters.size()] = w;
    ++_waiter_count;
}

partition::accepted partition::publish(const protocol::message_ref& message,
                                       const publish_ticket& ticket,
                                       std::uint64_t now_ns) noexcept {
    const auto hash = storage::dedup_window::hash_msg_id(message.msg_id);
    if (const auto hit = _dedup->lookup(hash, now_ns)) {
        if (!hit->pending) {
            _sink.on_published(ticket, {hit->original, true, protocol::errc::none, _partition_id,
                                        _stream_index});
            return accepted::yes;
        }
        if (_waiter_count == _waiters.size()) return accepted::busy;
        push_waiter({ticket, hit->original, true});
        return accepted::yes;
    }
    if (_waiter_count == _waiters.size()) return accepted::busy;
    const auto stored_ns = std::max(now_ns, _last_stored_ns);
    const auto base = _log->append({&message, 1}, stored_ns);
    if (!base) {
        if (base.error() == storage::errc::busy) return accepted::busy;
        _sink.on_published(ticket, {{}, false, storage::to_protocol(base.error()), _partition_id,
                                    _stream_index});
        return accepted::yes;
    }
    _last_stored_ns = stored_ns;
    _dedup->insert_pending(hash, *base, stored_ns);
    push_waiter({ticket, *base, false});
    return accepted::yes;
}

namespace {
std::uint64_t steady_ns() noexcept {
    return static_cast<std::uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch() / std::chrono::nanoseconds(1));
}
}  // namespace

void partition::end_of_turn() noexcept {
    _dirty = false;
    const bool was_writing = _log->io_in_flight();
    _log->flush();
    if (_latency != nullptr && !was_writing && _log->io_in_flight() && _write_started_ns == 0) {
        _write_started_ns = steady_ns();
        _write_end = _log->next_offset();
    }
}

void partition::on_durable(offset end) noexcept {
    if (_write_started_ns != 0 && end >= _write_end) {
        _latency->record_ns(steady_ns() - _write_started_ns);
        _write_started_ns = 0;
    }
    if (end.value > 0) _dedup->commit_through(offset{end.value - 1});
    if (!_cursors.empty()) _sink.on_new_data(*this);
    while (_waiter_count > 0) {
        const waiter& w = _waiters[_waiter_head];
        if (w.position >= end) break;
        const waiter done = w;
        _waiter_head = (_waiter_head + 1) % _waiters.size();
        --_waiter_count;
        _sink.on_published(done.ticket, {done.position, done.duplicate, protocol::errc::none,
                                         _partition_id, _stream_index});
    }
}

void partition::on_write_failed(offset from, storage::errc error) noexcept {
    _write_started_ns = 0;
    _dedup->abort_from(from);
    const auto code = storage::to_protocol(error);
    while (_waiter_count > 0) {
        const waiter done = _waiters[_waiter_head];
        _waiter_head = (_waiter_head + 1) % _waiters.size();
        --_waiter_count;
        NG_DEBUG_ASSERT(done.position >= from, "a waiter below the durable end was left");
        _sink.on_published(done.ticket, {{}, false, code, _partition_id, _stream_index});
    }
}

void partition::tick(std::uint64_t now_ns) noexcept {
    _log->tick(now_ns);
    _dedup->expire(now_ns);
}

std::expected<void, storage::errc> partition::close_blocking() noexcept {
    for (int i = 0; i < 100'000 && (_log->io_in_flight() || _log->unflushed_bytes() > 0); ++i) {
        _log->flush();
        _io->poll(true);
    }
    return _log->close();
}

}  // namespace nagare::broker
