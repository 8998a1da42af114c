#include "tools/cli/log_command.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "storage/posix_file.h"
#include "storage/record_batch.h"
#include "storage/segment.h"

namespace nagare::cli {

namespace {

using storage::batch_scanner;
using storage::index_entry;
using storage::posix_file;
using storage::scan_stop;

struct segment_file {
    offset base;
    std::filesystem::path log;
};

std::optional<std::vector<segment_file>> list_segments(const std::filesystem::path& dir,
                                                       std::ostream& err) {
    std::error_code error;
    std::vector<segment_file> out;
    for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
        if (const auto base = storage::parse_segment_file_name(entry.path().filename().string())) {
            out.push_back({*base, entry.path()});
        }
    }
    if (error) {
        err << dir.string() << ": " << error.message() << "\n";
        return std::nullopt;
    }
    std::sort(out.begin(), out.end(),
              [](const segment_file& a, const segment_file& b) { return a.base < b.base; });
    return out;
}

std::vector<char> read_whole(const std::filesystem::path& path, bool& exists) {
    auto file = posix_file::open_read_only(path);
    exists = file.has_value();
    if (!file) return {};
    const auto size = file->size_bytes().value_or(0);
    std::vector<char> bytes(size);
    const auto got = file->read_at(std::as_writable_bytes(std::span(bytes)), 0);
    bytes.resize(got.value_or(0));
    return bytes;
}

template <class T>
T load(const char* at) {
    T value;
    std::memcpy(&value, at, sizeof value);
    return value;
}

bool all_zero(const posix_file& file, std::uint64_t from, std::uint64_t to) {
    std::vector<std::byte> chunk(storage::scan_chunk_bytes);
    while (from < to) {
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), to - from));
        const auto got = file.read_at(std::span(chunk).first(want), from);
        if (!got || *got == 0) return false;
        if (std::any_of(chunk.begin(), chunk.begin() + static_cast<long>(*got),
                        [](std::byte b) { return b != std::byte{0}; })) {
            return false;
        }
        from += *got;
    }
    return true;
}

// Why the batch at `position` does not verify, in words.
std::string describe(const posix_file& file, std::uint64_t position, std::uint64_t size,
                     offset expected, scan_stop stop) {
    if (stop == scan_stop::zeros) return "zeros where a batch should start, data after them";
    if (stop == scan_stop::incomplete) return "batch cut short (torn write)";
    std::vector<std::byte> bytes(static_cast<std::size_t>(
        std::min<std::uint64_t>(storage::batch_bytes_max, size - position)));
    const auto got = file.read_at(bytes, position);
    if (!got) return "read error";
    bytes.resize(*got);
    const auto header = storage::peek_header(bytes);
    if (!header) return "bad magic";
    const auto batch = storage::batch_view::parse(bytes);
    if (!batch) return "bad header or checksum mismatch";
    if (batch->header().base_offset != expected) {
        return "batch has offset " + std::to_string(batch->header().base_offset.value) +
               ", expected " + std::to_string(expected.value);
    }
    return "malformed record";
}

class verifier {
public:
    explicit verifier(std::ostream& out) : _out(out) {}

    void fault(const std::filesystem::path& file, std::uint64_t position, const std::string& what) {
        _out << file.string() << ": position " << position << ": " << what << "\n";
        ++faults;
    }

    // Checks one segment; returns its end offset.
    offset segment(const segment_file& seg);

    std::size_t faults = 0;
    std::size_t batches = 0;
    std::uint64_t records = 0;

private:
    struct found_batch {
        std::uint64_t position;
        offset base;
        std::uint64_t first_timestamp_ns;
    };

    std::vector<index_entry> load_index(const segment_file& seg);
    offset scan(const segment_file& seg, const posix_file& log, std::uint64_t size,
                const std::vector<index_entry>& index, std::vector<found_batch>& found);
    void check_index(const segment_file& seg, const std::vector<index_entry>& index,
                     const std::vector<found_batch>& found);

    std::ostream& _out;
};

std::vector<index_entry> verifier::load_index(const segment_file& seg) {
    auto idx_path = seg.log;
    auto tix_path = seg.log;
    idx_path.replace_extension(".idx");
    tix_path.replace_extension(".tix");
    bool idx_exists = false;
    bool tix_exists = false;
    const auto idx = read_whole(idx_path, idx_exists);
    const auto tix = read_whole(tix_path, tix_exists);
    if (!idx_exists) fault(idx_path, 0, "missing (rebuilt at the next open)");
    if (!tix_exists) fault(tix_path, 0, "missing (rebuilt at the next open)");
    if (idx.size() % storage::idx_entry_bytes != 0) {
        fault(idx_path, idx.size() - idx.size() % storage::idx_entry_bytes, "partial entry");
    }
    if (tix.size() % storage::tix_entry_bytes != 0) {
        fault(tix_path, tix.size() - tix.size() % storage::tix_entry_bytes, "partial entry");
    }
    const auto idx_count = idx.size() / storage::idx_entry_bytes;
    const auto tix_count = tix.size() / storage::tix_entry_bytes;
    if (idx_exists && tix_exists && idx_count != tix_count) {
        fault(tix_path, 0,
              std::to_string(tix_count) + " entries, the .idx has " + std::to_string(idx_count));
    }
    std::vector<index_entry> out;
    for (std::size_t i = 0; i < std::min(idx_count, tix_count); ++i) {
        const char* e = idx.data() + i * storage::idx_entry_bytes;
        const char* t = tix.data() + i * storage::tix_entry_bytes;
        out.push_back({load<std::uint32_t>(e), load<std::uint32_t>(e + 4), load<std::uint64_t>(t)});
        if (load<std::uint32_t>(t + 8) != out.back().relative_offset) {
            fault(tix_path, i * storage::tix_entry_bytes,
                  "entry " + std::to_string(i) + " disagrees with the .idx");
        }
    }
    return out;
}

offset verifier::scan(const segment_file& seg, const posix_file& log, std::uint64_t size,
                      const std::vector<index_entry>& index, std::vector<found_batch>& found) {
    std::uint64_t position = 0;
    offset expected = seg.base;
    while (true) {
        batch_scanner scanner(log, position, size, expected);
        while (const auto batch = scanner.next()) {
            found.push_back({scanner.batch_position(), batch->header().base_offset,
                             batch->header().first_timestamp_ns});
            ++batches;
            records += batch->header().record_count;
        }
        expected = scanner.expected_base();
        position = scanner.position();
        if (scanner.stop() == scan_stop::end) return expected;
        if (scanner.stop() == scan_stop::zeros && all_zero(log, position, size)) return expected;
        fault(seg.log, position, describe(log, position, size, expected, scanner.stop()));
        // Carry on from the next index entry past the fault, if there is one.
        const auto next = std::find_if(index.begin(), index.end(), [&](const index_entry& e) {
            return e.position > position && e.position < size;
        });
        if (next == index.end()) return expected;
        position = next->position;
        expected = offset{seg.base.value + next->relative_offset};
    }
}

void verifier::check_index(const segment_file& seg, const std::vector<index_entry>& index,
                           const std::vector<found_batch>& found) {
    auto idx_path = seg.log;
    idx_path.replace_extension(".idx");
    for (std::size_t i = 0; i < index.size(); ++i) {
        const auto& e = index[i];
        const auto where = i * storage::idx_entry_bytes;
        if (i > 0 && (e.position <= index[i - 1].position ||
                      e.relative_offset <= index[i - 1].relative_offset)) {
            fault(idx_path, where, "entry " + std::to_string(i) + " does not increase");
        }
        const auto it =
            std::lower_bound(found.begin(), found.end(), e.position,
                             [](const found_batch& b, std::uint64_t p) { return b.position < p; });
        if (it == found.end() || it->position != e.position) {
            fault(idx_path, where,
                  "entry " + std::to_string(i) + " points at log position " +
                      std::to_string(e.position) + ", not a valid batch");
        } else if (it->base.value != seg.base.value + e.relative_offset ||
                   it->first_timestamp_ns != e.timestamp_ns) {
            fault(idx_path, where,
                  "entry " + std::to_string(i) + " has another offset or time than its batch");
        }
    }
}

offset verifier::segment(const segment_file& seg) {
    auto log = posix_file::open_read_only(seg.log);
    if (!log) {
        fault(seg.log, 0, "cannot open: " + std::string(storage::to_string(log.error())));
        return seg.base;
    }
    const auto size = log->size_bytes().value_or(0);
    const auto index = load_index(seg);
    std::vector<found_batch> found;
    const auto end = scan(seg, *log, size, index, found);
    check_index(seg, index, found);
    return end;
}

std::string format_time(std::uint64_t timestamp_ns) {
    const auto seconds = static_cast<std::time_t>(timestamp_ns / 1'000'000'000);
    std::tm utc{};
    ::gmtime_r(&seconds, &utc);
    char text[64];
    const auto n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(text + n, sizeof text - n, ".%09lluZ",
                  static_cast<unsigned long long>(timestamp_ns % 1'000'000'000));
    return text;
}

}  // namespace

int verify_log(const std::filesystem::path& dir, std::ostream& out) {
    const auto segments = list_segments(dir, out);
    if (!segments) return exit_unusable;
    verifier v(out);
    for (std::size_t i = 0; i < segments->size(); ++i) {
        const auto end = v.segment((*segments)[i]);
        if (i + 1 < segments->size() && end != (*segments)[i + 1].base) {
            v.fault((*segments)[i].log, 0,
                    "segment ends at offset " + std::to_string(end.value) +
                        ", the next one starts at " +
                        std::to_string((*segments)[i + 1].base.value));
        }
    }
    out << dir.string() << ": " << segments->size() << " segments, " << v.batches << " batches, "
        << v.records << " records, " << v.faults << " faults\n";
    return v.faults == 0 ? exit_ok : exit_faults;
}

int dump_log(const std::filesystem::path& dir, const dump_options& options, std::ostream& out,
             std::ostream& err) {
    const auto segments = list_segments(dir, err);
    if (!segments) return exit_unusable;
    std::uint64_t printed = 0;
    for (std::size_t i = 0; i < segments->size() && printed < options.limit; ++i) {
        const auto& seg = (*segments)[i];
        if (i + 1 < segments->size() && (*segments)[i + 1].base.value <= options.from_offset)
            continue;
        auto log = posix_file::open_read_only(seg.log);
        if (!log) {
            err << seg.log.string() << ": cannot open: " << storage::to_string(log.error()) << "\n";
            return exit_faults;
        }
        const auto size = log->size_bytes().value_or(0);
        batch_scanner scanner(*log, 0, size, seg.base);
        while (const auto batch = scanner.next()) {
            if (batch->header().end_offset().value <= options.from_offset) continue;
            (void)batch->for_each([&](const storage::record_view& r) {
                if (r.record_offset.value < options.from_offset) return true;
                out << r.record_offset.value << '\t' << format_time(r.timestamp_ns) << '\t'
                    << r.project << '\t' << r.subject << '\t' << r.msg_id << '\t'
                    << r.payload.size() << '\n';
                return ++printed < options.limit;
            });
            if (printed >= options.limit) return exit_ok;
        }
        const bool clean =
            scanner.stop() == scan_stop::end ||
            (scanner.stop() == scan_stop::zeros && all_zero(*log, scanner.position(), size));
        if (!clean) {
            err << seg.log.string() << ": position " << scanner.position() << ": "
                << describe(*log, scanner.position(), size, scanner.expected_base(), scanner.stop())
                << "\n";
            return exit_faults;
        }
    }
    return exit_ok;
}

}  // namespace nagare::cli
