#include "storage/dedup_window.h"

#include <algorithm>
#include <bit>
#include <random>
#include <stdexcept>

#include <xxhash.h>

#include "protocol/assert.h"

namespace nagare::storage {
namespace {

constexpr unsigned distance_bits = 4;
constexpr std::size_t distance_saturated = (std::size_t{1} << distance_bits) - 1;
constexpr std::uint64_t fibonacci_multiplier = 0x9E3779B97F4A7C15ULL;
constexpr std::size_t prefetch_ahead = 8;  // inserts

static_assert(std::bit_width(dedup_max_entries_limit) + distance_bits + 4 <= 32,
              "a slot keeps at least 4 tag bits");
static_assert(dedup_max_entries_default <= dedup_max_entries_limit);

const dedup_window::options& validated(const dedup_window::options& opts) {
    if (opts.window_ns == 0) throw std::invalid_argument("dedup window_ns must be > 0");
    if (opts.max_entries == 0 || opts.max_entries > dedup_max_entries_limit) {
        throw std::invalid_argument("dedup max_entries must be in 1..16777215");
    }
    return opts;
}

std::uint64_t random_seed() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

// More slots than entries (so a probe always ends), at least 1.5x.
std::size_t table_slots_for(std::size_t max_entries) noexcept {
    return std::bit_ceil(std::max(max_entries + (max_entries + 1) / 2, max_entries + 1));
}

}  // namespace

dedup_window::dedup_window(const options& opts) : dedup_window(opts, random_seed()) {}

dedup_window::dedup_window(const options& opts, std::uint64_t table_seed)
    : _window_ns(validated(opts).window_ns),
      _seed(table_seed),
      // Value-initialized: every page is touched here, not on the first inserts.
      _ring(std::make_unique<ring_entry[]>(opts.max_entries)),
      _ring_capacity(opts.max_entries),
      _table(std::make_unique<slot[]>(table_slots_for(opts.max_entries))),
      _table_mask(table_slots_for(opts.max_entries) - 1),
      _home_shift(64 - static_cast<unsigned>(std::countr_zero(_table_mask + 1))),
      _index_bits(static_cast<unsigned>(std::bit_width(opts.max_entries))),
      _tag_shift(64 - (32 - _index_bits - distance_bits)) {}

dedup_window::~dedup_window() = default;

msg_id_hash dedup_window::hash_msg_id(std::string_view msg_id) noexcept {
    const XXH128_hash_t h = XXH3_128bits(msg_id.data(), msg_id.size());
    return {.low = h.low64, .high = h.high64};
}

std::optional<dedup_hit> dedup_window::lookup(const msg_id_hash& hash,
                                              std::uint64_t now_ns) noexcept {
    const std::size_t position = find(hash);
    if (position == not_found) return std::nullopt;
    const std::size_t index = slot_index(_table[position]);
    const ring_entry& entry = _ring[index];
    const bool pending = is_pending(index);
    if (!pending && expired_at(entry, now_ns)) return std::nullopt;
    ++_counters.hits;
    return dedup_hit{.original = offset{entry.record_offset}, .pending = pending};
}

void dedup_window::insert(const msg_id_hash& hash, offset record_offset,
                          std::uint64_t stored_ns) noexcept {
    NG_ASSERT(_pending == 0, "insert() with pending entries: use insert_pending()");
    push(hash, record_offset, stored_ns);
}

void dedup_window::insert_pending(const msg_id_hash& hash, offset record_offset,
                                  std::uint64_t stored_ns) noexcept {
    push(hash, record_offset, stored_ns);
    ++_pending;
}

std::size_t dedup_window::commit_through(offset last) noexcept {
    std::size_t committed = 0;
    while (_pending > 0 && _ring[ring_at(_count - _pending)].record_offset <= last.value) {
        --_pending;
        ++committed;
    }
    return committed;
}

std::size_t dedup_window::abort_from(offset first) noexcept {
    std::size_t aborted = 0;
    while (_pending > 0 && _ring[ring_at(_count - 1)].record_offset >= first.value) {
        drop_tail();
        ++aborted;
    }
    _counters.aborted += aborted;
    return aborted;
}

std::size_t dedup_window::expire(std::uint64_t now_ns) noexcept {
    std::size_t expired = 0;
    while (_count > _pending && expired_at(_ring[_head], now_ns)) {
        if (drop_head()) ++expired;
    }
    _counters.expired += expired;
    return expired;
}

void dedup_window::clear() noexcept {
    std::fill_n(_table.get(), _table_mask + 1, slot{0});
    _head = 0;
    _count = 0;
    _pending = 0;
    _table_used = 0;
}

std::uint64_t dedup_window::rebuild_from_ns(std::uint64_t newest_ns) const noexcept {
    return newest_ns >= _window_ns ? newest_ns - _window_ns + 1 : 0;
}

std::size_t dedup_window::memory_bytes() const noexcept {
    return sizeof(*this) + _ring_capacity * sizeof(ring_entry) + (_table_mask + 1) * sizeof(slot);
}

// Ring.

void dedup_window::push(const msg_id_hash& hash, offset record_offset,
                        std::uint64_t stored_ns) noexcept {
    if (_count > 0) {
        const ring_entry& newest = _ring[ring_at(_count - 1)];
        NG_ASSERT(stored_ns >= newest.stored_ns, "dedup entries must come in time order");
        NG_ASSERT(record_offset.value > newest.record_offset,
                  "dedup entries must come in offset order");
    }
    // The new id's slot is fetched while the oldest entries leave.
    __builtin_prefetch(&_table[home(hash)]);
    expire(stored_ns);
    if (_count == _ring_capacity && drop_head()) ++_counters.early_evictions;
    const std::size_t index = ring_at(_count);
    _ring[index] = {.hash = hash, .record_offset = record_offset.value, .stored_ns = stored_ns};
    ++_count;
    ++_counters.inserts;
    table_insert(hash, index);
    // Entries leave in ring order: fetch the slot of one that leaves a few
    // inserts from now, so its miss is over when it does.
    __builtin_prefetch(&_table[home(_ring[ring_at(std::min(prefetch_ahead, _count - 1))].hash)]);
    NG_DEBUG_ASSERT(_table_used <= _count && _count <= _ring_capacity, "dedup bounds");
}

bool dedup_window::drop_head() noexcept {
    NG_ASSERT(_count > 0, "drop from an empty dedup ring");
    const bool live = unlink(_head);
    _head = _head + 1 == _ring_capacity ? 0 : _head + 1;
    --_count;
    _pending = std::min(_pending, _count);
    return live;
}

bool dedup_window::drop_tail() noexcept {
    NG_ASSERT(_pending > 0, "only pending entries leave by the tail");
    const bool live = unlink(ring_at(_count - 1));
    --_count;
    --_pending;
    return live;
}

// Removes the table's slot for the ring entry at `index`, unless its id was
// stored again since (the slot points at the newer entry then).
bool dedup_window::unlink(std::size_t index) noexcept {
    const std::size_t position = find(_ring[index].hash);
    if (position == not_found || slot_index(_table[position]) != index) return false;
    table_erase(position);
    return true;
}

bool dedup_window::expired_at(const ring_entry& entry, std::uint64_t now_ns) const noexcept {
    return now_ns >= entry.stored_ns && now_ns - entry.stored_ns >= _window_ns;
}

bool dedup_window::is_pending(std::size_t index) const noexcept {
    const std::size_t age = index >= _head ? index - _head : index + _ring_capacity - _head;
    return age >= _count - _pending;
}

// The ring index of the entry `age` places after the oldest.
std::size_t dedup_window::ring_at(std::size_t age) const noexcept {
    const std::size_t index = _head + age;
    return index >= _ring_capacity ? index - _ring_capacity : index;
}

// Table.

std::size_t dedup_window::find(const msg_id_hash& hash) const noexcept {
    const std::uint32_t wanted = tag(hash);
    std::size_t position = home(hash);
    // Ends: the table always has an empty slot, and Robin Hood order stops
    // the probe at the first slot whose entry sits nearer its home than we do.
    for (std::size_t probed = 0;; ++probed) {
        const slot s = _table[position];
        if (s == 0 || slot_distance(position, s) < probed) return not_found;
        if (slot_tag(s) == wanted && _ring[slot_index(s)].hash == hash) return position;
        position = (position + 1) & _table_mask;
    }
}

// Points `hash` at ring entry `index`: replaces its slot if the id is there
// (it was stored again), else inserts it where the probe for it ends.
void dedup_window::table_insert(const msg_id_hash& hash, std::size_t index) noexcept {
    const std::uint32_t wanted = tag(hash);
    std::size_t position = home(hash);
    std::size_t probed = 0;
    for (;; ++probed, position = (position + 1) & _table_mask) {
        const slot s = _table[position];
        if (s == 0 || slot_distance(position, s) < probed) break;
        if (slot_tag(s) == wanted && _ring[slot_index(s)].hash == hash) {
            _table[position] = make_slot(index, probed, wanted);
            return;
        }
    }
    ++_table_used;
    std::uint32_t carried_tag = wanted;
    for (;; ++probed, position = (position + 1) & _table_mask) {
        const slot s = _table[position];
        if (s == 0) {
            _table[position] = make_slot(index, probed, carried_tag);
            return;
        }
        const std::size_t resident = slot_distance(position, s);
        if (resident < probed) {
            // Robin Hood: the entry nearer its home moves on instead.
            _table[position] = make_slot(index, probed, carried_tag);
            index = slot_index(s);
            carried_tag = slot_tag(s);
            probed = resident;
        }
    }
}

// Backward shift: pull the following entries of the cluster one slot nearer
// their homes, so no tombstone is left.
void dedup_window::table_erase(std::size_t position) noexcept {
    for (;;) {
        const std::size_t next = (position + 1) & _table_mask;
        const slot s = _table[next];
        if (s == 0) break;
        const std::size_t next_distance = slot_distance(next, s);
        if (next_distance == 0) break;
        _table[position] = make_slot(slot_index(s), next_distance - 1, slot_tag(s));
        position = next;
    }
    _table[position] = 0;
    --_table_used;
}

std::size_t dedup_window::home(const msg_id_hash& hash) const noexcept {
    return static_cast<std::size_t>(((hash.low ^ _seed) * fibonacci_multiplier) >> _home_shift);
}

std::uint32_t dedup_window::tag(const msg_id_hash& hash) const noexcept {
    return static_cast<std::uint32_t>(hash.high >> _tag_shift);
}

dedup_window::slot dedup_window::make_slot(std::size_t index, std::size_t distance,
                                           std::uint32_t hash_tag) const noexcept {
    const auto stored_distance = std::min(distance, distance_saturated);
    return static_cast<slot>((index + 1) | (stored_distance << _index_bits) |
                             (std::size_t{hash_tag} << (_index_bits + distance_bits)));
}

std::size_t dedup_window::slot_index(slot s) const noexcept {
    return (s & ((slot{1} << _index_bits) - 1)) - 1;
}

std::uint32_t dedup_window::slot_tag(slot s) const noexcept {
    return s >> (_index_bits + distance_bits);
}

// How far the slot at `position` is from its entry's home; past the
// saturated value the home is recomputed from the ring.
std::size_t dedup_window::slot_distance(std::size_t position, slot s) const noexcept {
    const std::size_t stored = (s >> _index_bits) & distance_saturated;
    if (stored < distance_saturated) return stored;
    return (position - home(_ring[slot_index(s)].hash)) & _table_mask;
}

}  // namespace nagare::storage
