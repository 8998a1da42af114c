#include "storage/consumer_state.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "protocol/assert.h"
#include "protocol/validate.h"
#include "storage/sync_file_io.h"

namespace nagare::storage {

static_assert(std::endian::native == std::endian::little,
              "the state file is little-endian; a big-endian port must swap on encode/decode");

namespace {

constexpr std::uint64_t fibonacci_multiplier = 0x9e3779b97f4a7c15ull;
constexpr std::string_view suffix_newest = ".state";
constexpr std::string_view suffix_previous = ".state.prev";
constexpr std::string_view suffix_temporary = ".state.tmp";

std::uint32_t slot_count(std::uint32_t delivery_entries_max) noexcept {
    // Load factor at most 1/2: probes stay short and a free slot always exists.
    return std::bit_ceil(delivery_entries_max * 2u);
}

std::uint64_t low_bits(std::uint32_t count) noexcept {
    return count >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
}

}  // namespace

// ---- ack_state_limits --------------------------------------------------------

bool ack_state_limits::valid() const noexcept {
    return std::has_single_bit(window_offsets) && window_offsets >= ack_window_offsets_min &&
           window_offsets <= ack_window_offsets_limit && delivery_entries_max >= 1 &&
           delivery_entries_max <= delivery_entries_max_limit;
}

std::size_t ack_state_limits::memory_bytes() const noexcept {
    return std::size_t{window_offsets} / 8 + std::size_t{slot_count(delivery_entries_max)} *
                                                 (sizeof(std::uint64_t) + sizeof(std::uint32_t));
}

// ---- partition_ack_state -------------------------------------------------------

partition_ack_state::partition_ack_state(ack_state_limits limits, offset initial_floor)
    : _limits(limits), _floor(initial_floor.value), _ring_mask(limits.window_offsets - 1u) {
    NG_ASSERT(limits.valid(), "ack_state_limits out of range");
    NG_ASSERT(initial_floor.value <= ack_offset_end, "floor beyond ack_offset_end");
    _words.assign(limits.window_offsets / 64u, 0);
    const auto slots = slot_count(limits.delivery_entries_max);
    _slot_mask = slots - 1u;
    _slot_shift = 64 - std::countr_zero(slots);
    _slot_offsets.assign(slots, 0);
    _slot_counts.assign(slots, 0);
}

bool partition_ack_state::bit(std::uint64_t o) const noexcept {
    const auto i = ring_index(o);
    return ((_words[i >> 6] >> (i & 63u)) & 1u) != 0;
}

std::expected<bool, errc> partition_ack_state::ack(offset o) noexcept {
    if (o.value >= ack_offset_end) return std::unexpected(errc::out_of_range);
    if (o.value < _floor) return false;
    if (o.value - _floor >= _limits.window_offsets) return std::unexpected(errc::out_of_range);
    const auto i = ring_index(o.value);
    auto& word = _words[i >> 6];
    const std::uint64_t mask = std::uint64_t{1} << (i & 63u);
    if ((word & mask) != 0) return false;
    word |= mask;
    ++_acked_count;
    if (const auto slot = find_slot(o.value); slot != no_slot) erase_slot(slot);
    if (o.value == _floor) slide_floor();
    return true;
}

void partition_ack_state::slide_floor() noexcept {
    // Word at a time: clear the run of ones starting at the floor's bit.
    for (;;) {
        const auto i = ring_index(_floor);
        const auto b = i & 63u;
        auto& word = _words[i >> 6];
        const auto run = static_cast<std::uint32_t>(std::countr_one(word >> b));
        if (run == 0) break;
        word &= ~(low_bits(run) << b);
        _floor += run;
        _acked_count -= run;
        if (b + run < 64) break;
    }
}

std::uint32_t partition_ack_state::clear_range(std::uint64_t from, std::uint64_t count) noexcept {
    std::uint32_t cleared = 0;
    while (count > 0) {
        const auto i = ring_index(from);
        const auto b = i & 63u;
        const auto take = static_cast<std::uint32_t>(std::min<std::uint64_t>(64u - b, count));
        const auto mask = low_bits(take) << b;
        auto& word = _words[i >> 6];
        cleared += static_cast<std::uint32_t>(std::popcount(word & mask));
        word &= ~mask;
        from += take;
        count -= take;
    }
    return cleared;
}

void partition_ack_state::advance_floor(offset to) noexcept {
    NG_ASSERT(to.value <= ack_offset_end, "floor beyond ack_offset_end");
    if (to.value <= _floor) return;
    const auto distance = to.value - _floor;
    if (distance >= _limits.window_offsets) {
        std::ranges::fill(_words, 0);
        _acked_count = 0;
    } else {
        _acked_count -= clear_range(_floor, distance);
    }
    _floor = to.value;
    slide_floor();
    erase_deliveries_below_floor();
}

bool partition_ack_state::is_acked(offset o) const noexcept {
    if (o.value < _floor) return true;
    if (o.value - _floor >= _limits.window_offsets) return false;
    return bit(o.value);
}

offset partition_ack_state::window_end() const noexcept {
    const auto room = ack_offset_end - _floor;
    return offset{_floor + std::min<std::uint64_t>(room, _limits.window_offsets)};
}

std::uint64_t partition_ack_state::relative_word(std::uint32_t j) const noexcept {
    NG_ASSERT(j < _words.size(), "relative word beyond the window");
    const auto i = ring_index(_floor + std::uint64_t{64} * j);
    const auto w = i >> 6;
    const auto s = i & 63u;
    const auto low = _words[w] >> s;
    if (s == 0) return low;
    const auto next = (w + 1u) % static_cast<std::uint32_t>(_words.size());
    return low | (_words[next] << (64u - s));
}

// ---- delivery counts -----------------------------------------------------------

std::uint32_t partition_ack_state::home_slot(std::uint64_t o) const noexcept {
    return static_cast<std::uint32_t>((o * fibonacci_multiplier) >> _slot_shift);
}

std::uint32_t partition_ack_state::find_slot(std::uint64_t o) const noexcept {
    for (auto i = home_slot(o);; i = (i + 1u) & _slot_mask) {
        if (_slot_counts[i] == 0) return no_slot;
        if (_slot_offsets[i] == o) return i;
    }
}

std::uint32_t partition_ack_state::insert_slot(std::uint64_t o, std::uint32_t count) noexcept {
    if (_delivery_entries >= _limits.delivery_entries_max) return no_slot;
    auto i = home_slot(o);
    while (_slot_counts[i] != 0) i = (i + 1u) & _slot_mask;
    _slot_offsets[i] = o;
    _slot_counts[i] = count;
    ++_delivery_entries;
    return i;
}

void partition_ack_state::erase_slot(std::uint32_t slot) noexcept {
    // Backward shift: move later entries of the probe run into the hole when
    // their home slot does not lie cyclically between the hole and them.
    auto hole = slot;
    for (auto j = (hole + 1u) & _slot_mask; _slot_counts[j] != 0; j = (j + 1u) & _slot_mask) {
        const auto home = home_slot(_slot_offsets[j]);
        if (((j - home) & _slot_mask) >= ((j - hole) & _slot_mask)) {
            _slot_offsets[hole] = _slot_offsets[j];
            _slot_counts[hole] = _slot_counts[j];
            hole = j;
        }
    }
    _slot_counts[hole] = 0;
    --_delivery_entries;
}

void partition_ack_state::erase_deliveries_below_floor() noexcept {
    // An erase only moves entries into the hole from cyclically later slots,
    // so re-examining the same slot until it holds a keeper visits every entry.
    for (std::uint32_t i = 0; i <= _slot_mask && _delivery_entries > 0; ++i) {
        while (_slot_counts[i] != 0 && _slot_offsets[i] < _floor) erase_slot(i);
    }
}

std::expected<std::uint32_t, errc> partition_ack_state::record_delivery(offset o) noexcept {
    if (o.value >= ack_offset_end) return std::unexpected(errc::out_of_range);
    if (o.value < _floor) return std::unexpected(errc::invalid_argument);
    if (o.value - _floor >= _limits.window_offsets) return std::unexpected(errc::out_of_range);
    if (bit(o.value)) return std::unexpected(errc::invalid_argument);
    if (const auto slot = find_slot(o.value); slot != no_slot) {
        auto& count = _slot_counts[slot];
        if (count < std::numeric_limits<std::uint32_t>::max()) ++count;
        return count;
    }
    if (insert_slot(o.value, 1) == no_slot) return std::unexpected(errc::invalid_argument);
    return 1u;
}

std::expected<void, errc> partition_ack_state::restore_delivery_count(
    offset o, std::uint32_t count) noexcept {
    if (count == 0) return std::unexpected(errc::invalid_argument);
    if (o.value >= ack_offset_end) return std::unexpected(errc::out_of_range);
    if (o.value < _floor) return std::unexpected(errc::invalid_argument);
    if (o.value - _floor >= _limits.window_offsets) return std::unexpected(errc::out_of_range);
    if (bit(o.value) || find_slot(o.value) != no_slot) {
        return std::unexpected(errc::invalid_argument);
    }
    if (insert_slot(o.value, count) == no_slot) return std::unexpected(errc::invalid_argument);
    return {};
}

std::uint32_t partition_ack_state::delivery_count(offset o) const noexcept {
    const auto slot = find_slot(o.value);
    return slot == no_slot ? 0u : _slot_counts[slot];
}

void partition_ack_state::check_invariants() const noexcept {
    NG_ASSERT(_floor <= ack_offset_end, "floor beyond ack_offset_end");
    NG_ASSERT(_floor == ack_offset_end || !bit(_floor), "the offset at the floor is acked");
    std::uint32_t bits = 0;
    for (const auto word : _words) bits += static_cast<std::uint32_t>(std::popcount(word));
    NG_ASSERT(bits == _acked_count, "acked count differs from the bitmap");
    std::uint32_t entries = 0;
    for_each_delivery([&](offset o, std::uint32_t count) {
        ++entries;
        NG_ASSERT(count >= 1, "a delivery entry with count 0");
        NG_ASSERT(o.value >= _floor && o.value < window_end().value, "delivery outside window");
        NG_ASSERT(!bit(o.value), "a delivery entry for an acked offset");
        NG_ASSERT(find_slot(o.value) != no_slot, "a delivery entry its probe cannot reach");
    });
    NG_ASSERT(entries == _delivery_entries, "delivery entry count differs from the table");
}

bool operator==(const partition_ack_state& a, const partition_ack_state& b) noexcept {
    if (a._limits != b._limits || a._floor != b._floor || a._acked_count != b._acked_count ||
        a._delivery_entries != b._delivery_entries) {
        return false;
    }
    for (std::uint32_t j = 0; j < a._words.size(); ++j) {
        if (a.relative_word(j) != b.relative_word(j)) return false;
    }
    bool same = true;
    a.for_each_delivery(
        [&](offset o, std::uint32_t count) { same = same && b.delivery_count(o) == count; });
    return same;
}

// ---- consumer_state -----------------------------------------------------------

consumer_state::consumer_state(std::string consumer_name, std::string stream_name,
                               std::uint64_t epoch, std::uint32_t partition_count,
                               ack_state_limits limits)
    : name(std::move(consumer_name)), stream(std::move(stream_name)), stream_epoch(epoch) {
    NG_ASSERT(partition_count <= consumer_partitions_max, "too many partitions");
    partitions.reserve(partition_count);
    for (std::uint32_t p = 0; p < partition_count; ++p) partitions.emplace_back(limits);
}

partition_ack_state& consumer_state::partition(partition_id p) noexcept {
    NG_ASSERT(p.value < partitions.size(), "partition id out of range");
    return partitions[p.value];
}

const partition_ack_state& consumer_state::partition(partition_id p) const noexcept {
    NG_ASSERT(p.value < partitions.size(), "partition id out of range");
    return partitions[p.value];
}

bool is_valid_consumer_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > consumer_name_bytes_max) return false;
    return std::ranges::all_of(name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

namespace {

bool valid_stream(std::string_view stream) noexcept {
    return !stream.empty() && stream.size() <= state_stream_bytes_max &&
           protocol::validate_stream_name(stream) == protocol::errc::none;
}

// ---- encoding helpers --------------------------------------------------------

class byte_writer {
public:
    explicit byte_writer(std::vector<std::byte>& out) : _out(out) {}

    template <class T>
    void put(T value) {
        const auto at = _out.size();
        _out.resize(at + sizeof(T));
        std::memcpy(_out.data() + at, &value, sizeof(T));
    }
    void put_bytes(std::string_view text) {
        const auto at = _out.size();
        _out.resize(at + text.size());
        std::memcpy(_out.data() + at, text.data(), text.size());
    }
    template <class T>
    void put_at(std::size_t at, T value) noexcept {
        std::memcpy(_out.data() + at, &value, sizeof(T));
    }

private:
    std::vector<std::byte>& _out;
};

// Reads fixed-size fields; every read checks the bytes left first.
class byte_reader {
public:
    explicit byte_reader(std::span<const std::byte> bytes) noexcept : _bytes(bytes) {}

    template <class T>
    [[nodiscard]] bool get(T& value) noexcept {
        if (remaining() < sizeof(T)) return false;
        std::memcpy(&value, _bytes.data() + _pos, sizeof(T));
        _pos += sizeof(T);
        return true;
    }
    [[nodiscard]] bool get_text(std::size_t count, std::string& text) {
        if (remaining() < count) return false;
        text.assign(reinterpret_cast<const char*>(_bytes.data() + _pos), count);
        _pos += count;
        return true;
    }
    [[nodiscard]] std::size_t remaining() const noexcept { return _bytes.size() - _pos; }

private:
    std::span<const std::byte> _bytes;
    std::size_t _pos = 0;
};

std::uint32_t trimmed_words(const partition_ack_state& p) noexcept {
    if (p.acked_above_floor_count() == 0) return 0;
    auto words = p.limits().window_offsets / 64u;
    while (words > 0 && p.relative_word(words - 1u) == 0) --words;
    return words;
}

void encode_partition(const partition_ack_state& p, byte_writer& out) {
    const auto words = trimmed_words(p);
    out.put<std::uint64_t>(p.floor().value);
    out.put<std::uint32_t>(p.limits().window_offsets);
    out.put<std::uint32_t>(p.limits().delivery_entries_max);
    out.put<std::uint32_t>(words);
    out.put<std::uint32_t>(p.delivery_entries());
    for (std::uint32_t j = 0; j < words; ++j) out.put<std::uint64_t>(p.relative_word(j));
    p.for_each_delivery([&](offset o, std::uint32_t count) {
        out.put<std::uint32_t>(static_cast<std::uint32_t>(o.value - p.floor().value));
        out.put<std::uint32_t>(count);
    });
}

std::unexpected<errc> corrupt() noexcept { return std::unexpected(errc::corrupt); }

std::expected<partition_ack_state, errc> decode_partition(byte_reader& in,
                                                          std::size_t& memory_bytes) {
    std::uint64_t floor = 0;
    ack_state_limits limits;
    std::uint32_t words = 0;
    std::uint32_t entries = 0;
    if (!in.get(floor) || !in.get(limits.window_offsets) || !in.get(limits.delivery_entries_max) ||
        !in.get(words) || !in.get(entries)) {
        return corrupt();
    }
    if (floor > ack_offset_end || !limits.valid() || words > limits.window_offsets / 64u ||
        entries > limits.delivery_entries_max) {
        return corrupt();
    }
    const auto record_bytes = std::size_t{words} * 8u + std::size_t{entries} * 8u;
    memory_bytes += limits.memory_bytes();
    if (in.remaining() < record_bytes || memory_bytes > consumer_state_memory_bytes_max) {
        return corrupt();
    }
    partition_ack_state state(limits, offset{floor});
    for (std::uint32_t j = 0; j < words; ++j) {
        std::uint64_t word = 0;
        if (!in.get(word)) return corrupt();
        if ((j == 0 && (word & 1u) != 0) || (j + 1u == words && word == 0)) return corrupt();
        for (; word != 0; word &= word - 1) {
            const auto t = static_cast<std::uint64_t>(std::countr_zero(word));
            const auto acked = state.ack(offset{floor + std::uint64_t{64} * j + t});
            if (!acked || !*acked) return corrupt();
        }
    }
    for (std::uint32_t e = 0; e < entries; ++e) {
        std::uint32_t relative = 0;
        std::uint32_t count = 0;
        if (!in.get(relative) || !in.get(count)) return corrupt();
        if (!state.restore_delivery_count(offset{floor + relative}, count)) return corrupt();
    }
    if (state.floor().value != floor) return corrupt();
    return state;
}

}  // namespace

std::expected<void, errc> encode_consumer_state(const consumer_state& state,
                                                std::vector<std::byte>& out) {
    if (!is_valid_consumer_name(state.name) || !valid_stream(state.stream) ||
        state.partitions.size() > consumer_partitions_max) {
        return std::unexpected(errc::invalid_argument);
    }
    out.clear();
    byte_writer w(out);
    w.put<std::uint32_t>(state_magic);
    w.put<std::uint16_t>(state_version);
    w.put<std::uint16_t>(0);  // flags
    w.put<std::uint64_t>(0);  // checksum, set below
    w.put<std::uint32_t>(0);  // body_bytes, set below
    w.put<std::uint32_t>(0);  // reserved
    w.put<std::uint64_t>(state.stream_epoch);
    w.put<std::uint64_t>(state.counters.redelivered);
    w.put<std::uint64_t>(state.counters.dead_lettered);
    w.put<std::uint64_t>(state.counters.terminated);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(state.partitions.size()));
    w.put<std::uint16_t>(static_cast<std::uint16_t>(state.name.size()));
    w.put<std::uint16_t>(static_cast<std::uint16_t>(state.stream.size()));
    w.put_bytes(state.name);
    w.put_bytes(state.stream);
    for (const auto& p : state.partitions) encode_partition(p, w);
    const auto body_bytes = out.size() - state_header_bytes;
    if (body_bytes > state_body_bytes_max) return std::unexpected(errc::invalid_argument);
    w.put_at<std::uint32_t>(state_body_bytes_pos, static_cast<std::uint32_t>(body_bytes));
    const auto checksum =
        XXH3_64bits(out.data() + state_checksummed_from, out.size() - state_checksummed_from);
    w.put_at<std::uint64_t>(state_checksum_pos, checksum);
    return {};
}

std::expected<void, errc> verify_consumer_state(std::span<const std::byte> file) noexcept {
    byte_reader in(file);
    std::uint32_t magic = 0;
    std::uint16_t version = 0;
    std::uint16_t flags = 0;
    std::uint64_t checksum = 0;
    std::uint32_t body_bytes = 0;
    std::uint32_t reserved = 0;
    if (!in.get(magic) || !in.get(version) || !in.get(flags) || !in.get(checksum) ||
        !in.get(body_bytes) || !in.get(reserved)) {
        return corrupt();
    }
    if (magic != state_magic || version != state_version || flags != 0 || reserved != 0 ||
        body_bytes > state_body_bytes_max || file.size() != state_header_bytes + body_bytes) {
        return corrupt();
    }
    const auto covered = file.subspan(state_checksummed_from);
    if (XXH3_64bits(covered.data(), covered.size()) != checksum) return corrupt();
    return {};
}

std::expected<consumer_state, errc> decode_consumer_state(std::span<const std::byte> file) {
    if (auto ok = verify_consumer_state(file); !ok) return std::unexpected(ok.error());
    byte_reader in(file.subspan(state_header_bytes));
    consumer_state state;
    std::uint32_t partitions = 0;
    std::uint16_t name_bytes = 0;
    std::uint16_t stream_bytes = 0;
    if (!in.get(state.stream_epoch) || !in.get(state.counters.redelivered) ||
        !in.get(state.counters.dead_lettered) || !in.get(state.counters.terminated) ||
        !in.get(partitions) || !in.get(name_bytes) || !in.get(stream_bytes)) {
        return corrupt();
    }
    if (partitions > consumer_partitions_max || name_bytes > consumer_name_bytes_max ||
        stream_bytes > state_stream_bytes_max) {
        return corrupt();
    }
    if (!in.get_text(name_bytes, state.name) || !in.get_text(stream_bytes, state.stream) ||
        !is_valid_consumer_name(state.name) || !valid_stream(state.stream) ||
        in.remaining() < std::size_t{partitions} * state_partition_fixed_bytes) {
        return corrupt();
    }
    state.partitions.reserve(partitions);
    std::size_t memory_bytes = 0;
    for (std::uint32_t p = 0; p < partitions; ++p) {
        auto partition = decode_partition(in, memory_bytes);
        if (!partition) return std::unexpected(partition.error());
        state.partitions.push_back(std::move(*partition));
    }
    if (in.remaining() != 0) return corrupt();
    return state;
}

// ---- consumer_state_store --------------------------------------------------------

consumer_state_store::consumer_state_store(std::filesystem::path path, int dir_fd) noexcept
    : _path(std::move(path)), _dir_fd(dir_fd) {}

consumer_state_store::consumer_state_store(consumer_state_store&& other) noexcept
    : _path(std::move(other._path)),
      _dir_fd(std::exchange(other._dir_fd, -1)),
      _last_errno(other._last_errno),
      _write_buffer(std::move(other._write_buffer)),
      _read_buffer(std::move(other._read_buffer)),
      _known_newest(other._known_newest),
      _newest(other._newest),
      _save_result(std::move(other._save_result)) {
    NG_ASSERT(!other.save_in_flight(), "moving a consumer state store with a save in flight");
}

consumer_state_store& consumer_state_store::operator=(consumer_state_store&& other) noexcept {
    NG_ASSERT(!save_in_flight() && !other.save_in_flight(),
              "moving a consumer state store with a save in flight");
    if (this != &other) {
        if (_dir_fd >= 0) ::close(_dir_fd);
        _path = std::move(other._path);
        _dir_fd = std::exchange(other._dir_fd, -1);
        _last_errno = other._last_errno;
        _write_buffer = std::move(other._write_buffer);
        _read_buffer = std::move(other._read_buffer);
        _known_newest = other._known_newest;
        _newest = other._newest;
        _save_result = std::move(other._save_result);
    }
    return *this;
}

consumer_state_store::~consumer_state_store() {
    if (_temporary_fd >= 0) ::close(_temporary_fd);  // only a save that never completed
    if (_dir_fd >= 0) ::close(_dir_fd);
}

std::expected<consumer_state_store, errc> consumer_state_store::open(
    const std::filesystem::path& dir) {
    const int parent = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (parent < 0) return std::unexpected(from_errno(errno));
    if (::mkdirat(parent, "consumers", 0755) == 0) {
        if (::fsync(parent) != 0) {
            const int error_number = errno;
            ::close(parent);
            return std::unexpected(from_errno(error_number));
        }
    } else if (errno != EEXIST) {
        const int error_number = errno;
        ::close(parent);
        return std::unexpected(from_errno(error_number));
    }
    const int fd = ::openat(parent, "consumers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const int error_number = errno;
    ::close(parent);
    if (fd < 0) return std::unexpected(from_errno(error_number));
    return consumer_state_store(dir / "consumers", fd);
}

consumer_state_store::file_name consumer_state_store::make_file_name(
    std::string_view name, std::string_view suffix) noexcept {
    NG_ASSERT(name.size() <= consumer_name_bytes_max && suffix.size() <= 11, "file name too long");
    file_name out{};
    std::memcpy(out.data(), name.data(), name.size());
    std::memcpy(out.data() + name.size(), suffix.data(), suffix.size());
    return out;  // zero-filled: NUL-terminated
}

std::unexpected<errc> consumer_state_store::fail_errno(int error_number) noexcept {
    _last_errno = error_number;
    return std::unexpected(from_errno(error_number));
}

std::expected<void, errc> consumer_state_store::sync_directory() noexcept {
    if (::fsync(_dir_fd) != 0) return fail_errno(errno);
    return {};
}

std::expected<void, errc> consumer_state_store::read_file(const char* file,
                                                          std::vector<std::byte>& out) {
    const int fd = ::openat(_dir_fd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno(errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int error_number = errno;
        ::close(fd);
        return fail_errno(error_number);
    }
    const auto file_bytes = static_cast<std::uint64_t>(st.st_size);
    if (file_bytes > state_header_bytes + state_body_bytes_max) {
        ::close(fd);
        return corrupt();  // never allocate what a damaged size asks for
    }
    out.resize(static_cast<std::size_t>(file_bytes));
    std::size_t done = 0;
    while (done < out.size()) {
        const auto got =
            ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            const int error_number = errno;
            ::close(fd);
            return fail_errno(error_number);
        }
        if (got == 0) break;  // shrank under us: verification will fail
        done += static_cast<std::size_t>(got);
    }
    out.resize(done);
    ::close(fd);
    return {};
}

bool consumer_state_store::check_newest(std::string_view name) {
    NG_ASSERT(is_valid_consumer_name(name), "check_newest of an invalid name");
    NG_ASSERT(!save_in_flight(), "check_newest with a save in flight");
    _known_newest = make_file_name(name, suffix_newest);
    const bool good = read_file(_known_newest.data(), _read_buffer).has_value() &&
                      verify_consumer_state(_read_buffer).has_value();
    _newest = good ? newest_file::verified : newest_file::not_verified;
    return good;
}

std::expected<void, errc> consumer_state_store::save(const consumer_state& state) {
    NG_ASSERT(!save_in_flight(), "a blocking save with a save in flight");
    if (!is_valid_consumer_name(state.name)) return std::unexpected(errc::invalid_argument);
    (void)check_newest(state.name);  // read back every time: see the top of the header
    sync_file_io io(1);
    if (auto started = save_async(state, io); !started) return started;
    while (save_in_flight()) io.poll(true);
    return *take_save_result();
}

std::expected<void, errc> consumer_state_store::save_async(const consumer_state& state,
                                                           file_io& io) noexcept {
    if (save_in_flight()) return std::unexpected(errc::busy);
    if (auto encoded = encode_consumer_state(state, _write_buffer); !encoded) return encoded;
    NG_DEBUG_ASSERT(verify_consumer_state(_write_buffer).has_value(), "encoded a bad state");
    const auto newest = make_file_name(state.name, suffix_newest);
    if (newest != _known_newest) {
        _known_newest = newest;
        _newest = newest_file::unknown;
    }
    _temporary = make_file_name(state.name, suffix_temporary);
    _previous = make_file_name(state.name, suffix_previous);
    _save_result.reset();
    _save_error = 0;
    _io = &io;
    _step = save_step::open_temporary;
    io.open_at(_dir_fd, _temporary.data(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644, *this);
    return {};
}

std::optional<std::expected<void, errc>> consumer_state_store::take_save_result() noexcept {
    return std::exchange(_save_result, std::nullopt);
}

void consumer_state_store::io_done(int result) noexcept {
    switch (_step) {
        case save_step::open_temporary:
            if (result < 0) return finish_save(result);
            _temporary_fd = result;
            _step = save_step::write_temporary;
            _io->write(_temporary_fd, _write_buffer, 0, true, *this);
            return;
        case save_step::write_temporary:
            if (result < 0 || static_cast<std::size_t>(result) != _write_buffer.size()) {
                _save_error = result < 0 ? result : -EIO;
            }
            _step = save_step::close_temporary;
            _io->close(std::exchange(_temporary_fd, -1), *this);
            return;
        case save_step::close_temporary:
            if (_save_error == 0 && result < 0) _save_error = result;
            if (_save_error != 0) return finish_save(_save_error);
            if (_newest != newest_file::verified) return install_temporary();
            _step = save_step::rotate;
            _io->rename_at(_dir_fd, _known_newest.data(), _previous.data(), *this);
            return;
        case save_step::rotate:
            if (result < 0 && result != -ENOENT) return finish_save(result);  // nothing moved
            _newest = newest_file::not_verified;  // now .prev (or it was gone already)
            return install_temporary();
        case save_step::install:
            if (result < 0) return finish_save(result);
            _newest = newest_file::verified;
            _step = save_step::sync_directory;
            _io->fsync(_dir_fd, *this);
            return;
        case save_step::sync_directory:
            return finish_save(result);
        case save_step::idle:
            break;
    }
    NG_ASSERT(false, "a consumer state completion with no save in flight");
}

void consumer_state_store::install_temporary() noexcept {
    _step = save_step::install;
    _io->rename_at(_dir_fd, _temporary.data(), _known_newest.data(), *this);
}

void consumer_state_store::finish_save(int result) noexcept {
    _step = save_step::idle;
    _io = nullptr;
    if (result < 0) {
        _save_result = fail_errno(-result);
    } else {
        _save_result.emplace();
    }
}

std::expected<loaded_consumer_state, errc> consumer_state_store::load(std::string_view name) {
    if (!is_valid_consumer_name(name)) return std::unexpected(errc::invalid_argument);
    // One copy: the decoded state, or why not (a decoded state with another
    // name is a damaged or misplaced file).
    auto load_copy = [&](std::string_view suffix) -> std::expected<consumer_state, errc> {
        const auto file = make_file_name(name, suffix);
        if (auto read = read_file(file.data(), _read_buffer); !read) {
            return std::unexpected(read.error());
        }
        auto state = decode_consumer_state(_read_buffer);
        if (state && state->name != name) return corrupt();
        return state;
    };
    auto newest = load_copy(suffix_newest);
    if (newest) return loaded_consumer_state{std::move(*newest), state_copy::newest, false};
    if (newest.error() != errc::not_found && newest.error() != errc::corrupt) {
        return std::unexpected(newest.error());
    }
    const bool newest_corrupt = newest.error() == errc::corrupt;
    auto previous = load_copy(suffix_previous);
    if (previous) {
        return loaded_consumer_state{std::move(*previous), state_copy::previous, newest_corrupt};
    }
    if (previous.error() == errc::not_found && newest_corrupt) return corrupt();
    return std::unexpected(previous.error());
}

std::expected<std::vector<std::string>, errc> consumer_state_store::list() const {
    std::vector<std::string> names;
    std::error_code error;
    for (std::filesystem::directory_iterator it(_path, error), end; !error && it != end;
         it.increment(error)) {
        const auto file = it->path().filename().native();
        const std::string_view view = file;
        for (const auto suffix : {suffix_newest, suffix_previous}) {
            if (!view.ends_with(suffix)) continue;
            const auto name = view.substr(0, view.size() - suffix.size());
            if (is_valid_consumer_name(name)) names.emplace_back(name);
        }
    }
    if (error) return std::unexpected(errc::io_error);
    std::ranges::sort(names);
    names.erase(std::unique(names.begin(), names.end()), names.end());
    return names;
}

std::expected<void, errc> consumer_state_store::remove(std::string_view name) {
    NG_ASSERT(!save_in_flight(), "removing consumer state files with a save in flight");
    if (!is_valid_consumer_name(name)) return std::unexpected(errc::invalid_argument);
    if (make_file_name(name, suffix_newest) == _known_newest) _newest = newest_file::not_verified;
    bool found = false;
    for (const auto suffix : {suffix_newest, suffix_previous, suffix_temporary}) {
        const auto file = make_file_name(name, suffix);
        if (::unlinkat(_dir_fd, file.data(), 0) == 0) {
            found = found || suffix != suffix_temporary;
        } else if (errno != ENOENT) {
            return fail_errno(errno);
        }
    }
    if (auto synced = sync_directory(); !synced) return synced;
    if (!found) return std::unexpected(errc::not_found);
    return {};
}

}  // namespace nagare::storage
