#include "broker/consumer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "broker/partition.h"
#include "protocol/assert.h"
#include "protocol/routing.h"

namespace nagare::broker {

namespace fb = protocol::fb;

namespace {

constexpr std::uint32_t no_slot = u64_index::empty_value;
constexpr std::uint64_t timer_tick_ns = 10'000'000;  // the shard's tick
constexpr std::uint32_t timer_slots = 1024;

// Scratch for the frame being built (one at a time per shard thread).
thread_local std::vector<flatbuffers::Offset<fb::DeliverMessage>> t_messages;
thread_local std::vector<flatbuffers::Offset<fb::Header>> t_headers;

storage::ack_state_limits limits_for(const consumer_config& c) {
    storage::ack_state_limits l;
    l.delivery_entries_max = std::max<std::uint32_t>(1, c.max_inflight);
    return l;
}

}  // namespace

struct consumer_cursor::frame_in_progress {
    deliver_frame* frame = nullptr;
    std::uint32_t subscriber = 0;
    std::uint32_t count = 0;
};

// ---- consumer_cursor ---------------------------------------------------------

consumer_cursor::consumer_cursor(consumer& owner, partition& part, std::uint32_t partition_id,
                                 const std::filesystem::path* state_dir,
                                 std::optional<storage::partition_ack_state> state,
                                 storage::consumer_counters counters)
    : _owner(owner),
      _partition(part),
      _partition_id(partition_id),
      _ack(limits_for(owner.config())),
      _counters(counters),
      _entries(std::max<std::uint32_t>(1, owner.config().max_inflight)),
      _by_offset(std::max<std::uint32_t>(1, owner.config().max_inflight)),
      _by_project(owner.config().ordered ? std::max<std::uint32_t>(1, owner.config().max_inflight) : 1),
      _timers(static_cast<std::uint32_t>(_entries.size()), timer_tick_ns, timer_slots, 0),
      _ready(_entries.size()) {
    for (auto slot = static_cast<std::uint32_t>(_entries.size()); slot-- > 0;) _free_slots.push_back(slot);
    if (state_dir != nullptr) {
        auto store = storage::consumer_state_store::open(*state_dir);
        if (store) {
            _store = std::make_unique<storage::consumer_state_store>(std::move(*store));
            (void)_store->check_newest(owner.config().name);
        } else {
            spdlog::error("event=consumer_state_store_failed consumer={} partition={} error={}",
                          owner.config().name, partition_id, static_cast<int>(store.error()));
        }
    }
    if (state && state->limits() == _ack.limits()) {
        _ack = std::move(*state);
        _next = _ack.floor().value;
        const auto first = _partition.log().first_offset().value;
        if (_next < first) {  // retention removed what was not acknowledged
            _ack.advance_floor(offset{first});
            _next = first;
        }
    } else {
        apply_start();
    }
    _save_scratch = storage::consumer_state(owner.config().name, owner.config().stream,
                                            owner.stream_epoch(), 1, _ack.limits());
}

consumer_cursor::~consumer_cursor() {
    NG_ASSERT(!state_save_in_flight(), "a cursor destroyed while its state save is in flight");
}

void consumer_cursor::apply_start() noexcept {
    auto& log = _partition.log();
    const auto& c = _owner.config();
    const std::uint64_t first = log.first_offset().value;
    const std::uint64_t end = log.durable_end().value;
    std::uint64_t start = first;
    switch (c.deliver) {
        case deliver_policy::all: start = first; break;
        case deliver_policy::fresh: start = end; break;
        case deliver_policy::from_offset: {
            std::uint64_t wanted = c.start_offset;
            if (_partition_id < c.start_offsets.size() &&
                c.start_offsets[_partition_id] != std::numeric_limits<std::uint64_t>::max()) {
                wanted = c.start_offsets[_partition_id];
            }
            start = std::clamp(wanted, first, end);
            break;
        }
        case deliver_policy::from_time: {
            const auto found = log.seek_time(c.start_time_ns);
            start = found ? std::clamp(found->value, first, end) : end;
            break;
        }
        case deliver_policy::last_per_subject: {
            std::map<std::string, std::uint64_t, std::less<>> newest;
            (void)log.for_each_record(offset{first}, [&](const storage::record_view& r) {
                if (r.record_offset.value >= end) return false;
                if (c.matches(r.project, r.subject)) {
                    auto it = newest.find(r.subject);
                    if (it == newest.end()) {
                        newest.emplace(std::string(r.subject), r.record_offset.value);
                    } else {
                        it->second = r.record_offset.value;
                    }
                }
                return true;
            });
            for (const auto& [subject, o] : newest) _snapshot.push_back(o);
            std::ranges::sort(_snapshot);
            start = end;
            break;
        }
    }
    _ack = storage::partition_ack_state(limits_for(c), offset{start});
    _next = start;
    _state_dirty = true;
}

std::uint64_t consumer_cursor::not_yet_delivered() const noexcept {
    const auto end = _partition.log().durable_end().value;
    return end > _next ? end - _next : 0;
}

void consumer_cursor::settle(std::uint64_t o) noexcept {
    if (o < _ack.floor().value) return;
    (void)_ack.ack(offset{o});
    _state_dirty = true;
}

std::optional<std::uint32_t> consumer_cursor::allocate_entry(std::uint64_t o,
                                                             std::uint64_t project_hash) noexcept {
    if (_free_slots.empty()) return std::nullopt;
    if (!_ack.record_delivery(offset{o})) return std::nullopt;
    const auto slot = _free_slots.back();
    _free_slots.pop_back();
    auto& e = _entries[slot];
    e = entry{.offset = o, .project_hash = project_hash, .subscriber = 0, .state = entry_state::sent};
    _by_offset.insert(o, slot);
    if (_owner.config().ordered) _by_project.insert(project_hash, slot);
    ++_in_flight;
    _state_dirty = true;
    return slot;
}

void consumer_cursor::free_entry(std::uint32_t slot) noexcept {
    auto& e = _entries[slot];
    NG_ASSERT(e.state != entry_state::free, "freeing a free in-flight entry");
    _timers.cancel(slot);
    _by_offset.erase(e.offset);
    if (_owner.config().ordered) {
        _by_project.erase(e.project_hash);
        if (_skipped_from) _rescan = true;
    }
    e.state = entry_state::free;
    --_in_flight;
    if (!e.queued) _free_slots.push_back(slot);  // else when it leaves the ready queue
}

void consumer_cursor::make_ready(std::uint32_t slot) noexcept {
    auto& e = _entries[slot];
    e.state = entry_state::waiting;
    _timers.cancel(slot);
    if (e.queued) return;
    e.queued = true;
    _ready[(_ready_head + _ready_count) % _ready.size()] = slot;
    ++_ready_count;
}

consumer_cursor::ack_result consumer_cursor::ack(fb::AckKind kind, offset o,
                                                 std::uint32_t nak_delay_ms,
                                                 consumer_host& host) noexcept {
    const auto found = _by_offset.find(o.value);
    if (!found) {
        // Settled already (a repeated ack, or a last_per_subject snapshot
        // message below the floor): nothing to do, not an error.
        const bool settled = o < _ack.floor() || _ack.is_acked(o);
        const bool settles = kind == fb::AckKind::ACK || kind == fb::AckKind::TERM;
        return settled && settles && o < offset{_next} ? ack_result::done : ack_result::unknown;
    }
    const auto slot = *found;
    auto& e = _entries[slot];
    switch (kind) {
        case fb::AckKind::ACK:
        case fb::AckKind::TERM:
            if (e.state == entry_state::dead_letter) return ack_result::done;  // being copied
            if (kind == fb::AckKind::TERM) ++_counters.terminated;
            settle(e.offset);
            free_entry(slot);
            host.activate(*this);
            break;
        case fb::AckKind::NAK:
            if (e.state != entry_state::sent) return ack_result::done;
            if (nak_delay_ms == 0) {
                make_ready(slot);
                host.activate(*this);
            } else {
                e.state = entry_state::waiting;
                _timers.schedule(slot, host.now_ns() + std::uint64_t{nak_delay_ms} * 1'000'000);
            }
            break;
        case fb::AckKind::IN_PROGRESS:
            if (e.state == entry_state::sent) {
                _timers.schedule(slot, host.now_ns() + std::uint64_t{_owner.config().ack_wait_ms} * 1'000'000);
            }
            break;
        default: return ack_result::unknown;
    }
    return ack_result::done;
}

void consumer_cursor::subscriber_left(std::uint32_t index) noexcept {
    for (std::uint32_t slot = 0; slot < _entries.size(); ++slot) {
        const auto& e = _entries[slot];
        if (e.state == entry_state::sent && e.subscriber == index) make_ready(slot);
    }
}

void consumer_cursor::dead_lettered(std::uint32_t slot, bool stored) noexcept {
    if (slot >= _entries.size() || _entries[slot].state != entry_state::dead_letter) return;
    if (stored) {
        ++_counters.dead_lettered;
        settle(_entries[slot].offset);
        free_entry(slot);
    } else {
        make_ready(slot);  // tried again on the next pass
    }
}

bool consumer_cursor::tick(consumer_host& host) noexcept {
    const auto fired = _timers.advance(host.now_ns(), [&](std::uint32_t slot) {
        auto& e = _entries[slot];
        if (e.state == entry_state::sent || e.state == entry_state::waiting) make_ready(slot);
    });
    return fired > 0 || _ready_count > 0;
}

bool consumer_cursor::deliver_record(consumer_host& host, frame_in_progress& f,
                                     const storage::record_view& r, std::uint32_t slot) noexcept {
    auto& enc = host.deliver_encoder();
    if (f.frame == nullptr) {
        const auto who = _owner.pick_subscriber();
        if (!who) return false;
        f.frame = host.take_deliver_frame();
        if (f.frame == nullptr) return false;
        f.subscriber = *who;
        f.count = 0;
        enc.reset();
        t_messages.clear();
    }
    std::uint32_t deliveries = 1;
    if (slot != no_slot) {
        deliveries = _ack.delivery_count(offset{r.record_offset.value});
        auto& e = _entries[slot];
        e.subscriber = f.subscriber;
        e.state = entry_state::sent;
        _timers.schedule(slot, host.now_ns() + _owner.config().redelivery_delay_ns(deliveries));
        if (deliveries > 1) ++_counters.redelivered;
    }
    auto& b = enc.builder();
    t_headers.clear();
    for (const auto& h : r.headers) {
        t_headers.push_back(fb::CreateHeader(b, b.CreateString(h.key), b.CreateString(h.value)));
    }
    const auto payload = b.CreateVector(reinterpret_cast<const std::uint8_t*>(r.payload.data()),
                                        r.payload.size());
    const auto headers = t_headers.empty() ? 0 : b.CreateVector(t_headers);
    t_messages.push_back(fb::CreateDeliverMessage(
        b, _partition_id, r.record_offset.value, b.CreateString(r.project), b.CreateString(r.subject),
        b.CreateString(r.msg_id), r.timestamp_ns, deliveries, headers, payload));
    ++f.count;
    if (f.count >= deliver_frame_messages_max || b.GetSize() >= deliver_frame_bytes_target) {
        finish_frame(host, f);
    }
    return true;
}

void consumer_cursor::finish_frame(consumer_host& host, frame_in_progress& f) noexcept {
    if (f.frame == nullptr) return;
    auto& enc = host.deliver_encoder();
    auto& b = enc.builder();
    const auto& sub = _owner.subscribers()[f.subscriber];
    const auto bytes = enc.finish(fb::CreateDeliver(b, sub.address.subscription_id, b.CreateVector(t_messages)));
    f.frame->bytes.assign(bytes.begin(), bytes.end());
    f.frame->to = sub.address;
    f.frame->consumer_handle = _owner.handle();
    f.frame->subscriber = f.subscriber;
    f.frame->subscriber_generation = sub.generation;
    f.frame->taken = false;
    _owner.subscribers()[f.subscriber].frames_in_transit += 1;
    host.send_deliver(f.frame);
    f.frame = nullptr;
    f.count = 0;
}

template <class Fn>
bool consumer_cursor::read_records(consumer_host& host, std::uint64_t from, std::size_t window_bytes,
                                   Fn&& fn) noexcept {
    auto& log = _partition.log();
    // A window of `window_bytes`, doubled while the first batch does not fit.
    auto buffer = host.read_buffer();
    auto window = std::min(buffer.size(), window_bytes);
    auto read = log.read(offset{from}, buffer.first(window));
    while (!read && read.error() == storage::errc::invalid_argument && window < buffer.size()) {
        window = std::min(buffer.size(), window * 2);
        read = log.read(offset{from}, buffer.first(window));
    }
    if (!read) {
        if (read.error() == storage::errc::out_of_range && from < log.first_offset().value) {
            return true;  // removed by retention; the caller skips ahead
        }
        spdlog::error("event=consumer_read_failed consumer={} partition={} offset={} error={}",
                      _owner.config().name, _partition_id, from, static_cast<int>(read.error()));
        return false;
    }
    auto bytes = read->batches;
    bool go_on = true;
    while (go_on && !bytes.empty()) {
        const auto batch = storage::batch_view::parse(bytes);
        if (!batch) return false;
        (void)batch->for_each([&](const storage::record_view& r) {
            if (r.record_offset.value < from) return true;
            go_on = fn(r);
            return go_on;
        });
        bytes = bytes.subspan(batch->bytes().size());
    }
    return true;
}

void consumer_cursor::skip_removed() noexcept {
    const auto first = _partition.log().first_offset().value;
    if (_next >= first) return;
    for (std::uint32_t slot = 0; slot < _entries.size(); ++slot) {
        if (_entries[slot].state != entry_state::free && _entries[slot].offset < first) free_entry(slot);
    }
    _ack.advance_floor(offset{first});
    _next = first;
    if (_skipped_from && *_skipped_from < first) _skipped_from = first;
    _state_dirty = true;
}

bool consumer_cursor::redeliver(consumer_host& host, frame_in_progress& f, std::uint32_t& budget) noexcept {
    while (_ready_count > 0 && budget > 0) {
        const auto slot = _ready[_ready_head];
        auto& e = _entries[slot];
        auto pop = [&] {
            _ready_head = (_ready_head + 1) % _ready.size();
            --_ready_count;
            e.queued = false;
        };
        if (e.state != entry_state::waiting) {  // freed or re-sent meanwhile
            pop();
            if (e.state == entry_state::free) _free_slots.push_back(slot);
            continue;
        }
        if (!_owner.has_credit()) return true;
        const auto deliveries = _ack.delivery_count(offset{e.offset});
        bool found = false;
        bool delivered = false;
        bool blocked = false;
        const auto want = e.offset;
        if (!read_records(host, want, single_read_bytes, [&](const storage::record_view& r) {
                if (r.record_offset.value != want) return false;
                found = true;
                if (deliveries >= _owner.config().max_deliver) {
                    const auto result = host.dead_letter(*this, slot, r, deliveries);
                    if (result == dead_letter_result::accepted) {
                        e.state = entry_state::dead_letter;
                        delivered = true;
                    } else {
                        blocked = true;
                    }
                    return false;
                }
                if (!_ack.record_delivery(offset{want})) {
                    blocked = true;
                    return false;
                }
                delivered = deliver_record(host, f, r, slot);
                if (!delivered) blocked = true;
                return false;
            })) {
            return false;
        }
        if (blocked) return false;  // no credit, or the dead-letter stream is not ready
        pop();
        --budget;
        if (!found) {  // removed by retention: nothing left to deliver
            settle(want);
            free_entry(slot);
        }
        (void)delivered;
    }
    return true;
}

bool consumer_cursor::deliver_new(consumer_host& host, frame_in_progress& f, const storage::record_view& r,
                                  bool& stop) noexcept {
    const auto& c = _owner.config();
    const auto o = r.record_offset.value;
    if (o < _ack.floor().value || _ack.is_acked(offset{o})) return true;  // settled before a restart
    if (!c.matches(r.project, r.subject)) {
        settle(o);
        return true;
    }
    if (!c.ack_explicit) {
        if (!deliver_record(host, f, r, no_slot)) {
            stop = true;
            return false;
        }
        settle(o);
        return true;
    }
    const std::uint64_t h = c.ordered ? protocol::hash64(r.project) : 0;
    if (c.ordered && _by_project.find(h)) {
        if (!_skipped_from || o < *_skipped_from) _skipped_from = o;
        return true;
    }
    if (_free_slots.empty() || (f.frame == nullptr && !_owner.has_credit())) {
        stop = true;
        return false;
    }
    const auto slot = allocate_entry(o, h);
    if (!slot) {
        stop = true;
        return false;
    }
    if (!deliver_record(host, f, r, *slot)) {  // no frame left in the pool: undo, retry later
        free_entry(*slot);
        stop = true;
        return false;
    }
    return true;
}

bool consumer_cursor::run(consumer_host& host) noexcept {
    if (_owner.subscriber_count() == 0) return false;
    skip_removed();
    frame_in_progress f;
    std::uint32_t budget = pass_records_max;
    bool ok = redeliver(host, f, budget);

    // last_per_subject: the snapshot, once, untracked.
    while (ok && _snapshot_next < _snapshot.size() && budget > 0 && _owner.has_credit()) {
        const auto want = _snapshot[_snapshot_next];
        bool sent = true;
        ok = read_records(host, want, single_read_bytes, [&](const storage::record_view& r) {
            if (r.record_offset.value == want) sent = deliver_record(host, f, r, no_slot);
            return false;
        });
        if (!sent) break;
        ++_snapshot_next;
        --budget;
    }

    // Ordered: messages skipped while their project was busy.
    if (ok && _rescan && _skipped_from && budget > 0) {
        std::uint64_t pos = *_skipped_from;
        std::optional<std::uint64_t> still_skipped;
        bool stop = false;
        while (ok && !stop && pos < _next && budget > 0) {
            const auto before = pos;
            ok = read_records(host, pos, read_window_bytes, [&](const storage::record_view& r) {
                const auto o = r.record_offset.value;
                if (o >= _next || budget == 0) return false;
                pos = o + 1;
                --budget;
                if (o < _ack.floor().value || _ack.is_acked(offset{o}) || _by_offset.find(o)) return true;
                const auto h = protocol::hash64(r.project);
                if (_by_project.find(h)) {
                    if (!still_skipped) still_skipped = o;
                    return true;
                }
                bool s = false;
                const bool go = deliver_new(host, f, r, s);
                if (s) {
                    stop = true;
                    pos = o;
                    if (!still_skipped) still_skipped = o;
                }
                return go;
            });
            if (pos == before) break;
        }
        if (pos >= _next) {
            _skipped_from = still_skipped;
            _rescan = false;
        } else {
            _skipped_from = still_skipped ? std::min(*still_skipped, pos) : pos;
        }
    }

    // First deliveries.
    const auto end = std::min(_partition.log().durable_end().value, _ack.window_end().value);
    bool stop = false;
    while (ok && !stop && _next < end && budget > 0) {
        const auto before = _next;
        ok = read_records(host, _next, read_window_bytes, [&](const storage::record_view& r) {
            const auto o = r.record_offset.value;
            if (o >= end || budget == 0) return false;
            const bool go = deliver_new(host, f, r, stop);
            if (stop) return false;
            _next = o + 1;
            --budget;
            return go;
        });
        if (_next == before) break;
    }
    finish_frame(host, f);
    return ok && budget == 0;
}

consumer_cursor::state_save_step consumer_cursor::step_state_save(storage::file_io& io,
                                                                  save_when when) noexcept {
    state_save_step step;
    if (_store) {
        if (auto outcome = _store->take_save_result(); outcome && !*outcome) {
            _state_dirty = true;  // not saved: the next due tick tries again
            step.failed = outcome->error();
        }
    }
    if (!_state_dirty) return step;
    ++_state_dirty_ticks;
    if (state_save_in_flight() || when == save_when::never) return step;
    if (when == save_when::due && _state_dirty_ticks < state_save_wait_ticks) return step;
    _state_dirty_ticks = 0;
    if (!_store) {
        step.failed = storage::errc::io_error;  // the store could not be opened
        return step;
    }
    _save_scratch.partitions[0] = _ack;
    _save_scratch.counters = _counters;
    if (auto started = _store->save_async(_save_scratch, io); !started) {
        step.failed = started.error();
        return step;
    }
    _state_dirty = false;
    step.started = true;
    return step;
}

std::unique_ptr<storage::consumer_state_store> consumer_cursor::release_store() noexcept {
    return std::move(_store);
}

// ---- consumer -----------------------------------------------------------------

consumer::consumer(consumer_config config, std::uint64_t stream_epoch, std::uint64_t handle)
    : _config(std::move(config)), _stream_epoch(stream_epoch), _handle(handle) {}

consumer::~consumer() = default;

std::optional<std::uint32_t> consumer::attach(const subscriber_address& address) {
    for (std::uint32_t i = 0; i < _subscribers.size(); ++i) {
        auto& s = _subscribers[i];
        if (!s.live && s.frames_in_transit == 0) {
            s.address = address;
            s.generation += 1;
            s.live = true;
            ++_live;
            return i;
        }
    }
    if (_subscribers.size() >= subscribers_per_consumer_max) return std::nullopt;
    _subscribers.push_back({address, 1, 0, true});
    ++_live;
    return static_cast<std::uint32_t>(_subscribers.size() - 1);
}

std::optional<std::uint32_t> consumer::find(const subscriber_address& address) const noexcept {
    for (std::uint32_t i = 0; i < _subscribers.size(); ++i) {
        if (_subscribers[i].live && _subscribers[i].address == address) return i;
    }
    return std::nullopt;
}

void consumer::detach(std::uint32_t index) noexcept {
    auto& s = _subscribers[index];
    if (!s.live) return;
    s.live = false;
    --_live;
    for (auto& c : _cursors) c->subscriber_left(index);
}

bool consumer::has_credit() const noexcept {
    return std::ranges::any_of(_subscribers, [](const subscriber& s) {
        return s.live && s.frames_in_transit < subscriber_frames_in_transit;
    });
}

std::optional<std::uint32_t> consumer::pick_subscriber() noexcept {
    const auto n = static_cast<std::uint32_t>(_subscribers.size());
    for (std::uint32_t k = 0; k < n; ++k) {
        const auto i = (_round_robin + k) % n;
        const auto& s = _subscribers[i];
        if (s.live && s.frames_in_transit < subscriber_frames_in_transit) {
            _round_robin = (i + 1) % n;
            return i;
        }
    }
    return std::nullopt;
}

void consumer::frame_returned(std::uint32_t index, std::uint32_t generation) noexcept {
    if (index >= _subscribers.size()) return;
    auto& s = _subscribers[index];
    if (s.generation != generation || s.frames_in_transit == 0) return;
    s.frames_in_transit -= 1;
}

void consumer::activate_all(consumer_host& host) noexcept {
    for (auto& c : _cursors) host.activate(*c);
}

}  // namespace nagare::broker
