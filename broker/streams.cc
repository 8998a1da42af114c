#include "broker/streams.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "broker/atomic_file.h"
#include "protocol/assert.h"
#include "protocol/subject.h"

namespace nagare::broker {
namespace fs = std::filesystem;

stream_table::stream_table(std::vector<stream_info> streams) : _streams(std::move(streams)) {
    const auto it = std::ranges::find_if(
        _streams, [](const stream_info& s) { return s.config.name == default_stream_name; });
    NG_ASSERT(it != _streams.end(), "the stream table needs the default stream");
    _default_index = static_cast<std::size_t>(it - _streams.begin());
}

const stream_info* stream_table::find(std::string_view name) const noexcept {
    for (const auto& s : _streams) {
        if (s.config.name == name) return &s;
    }
    return nullptr;
}

const stream_info& stream_table::route(std::string_view subject) const noexcept {
    for (std::size_t i = 0; i < _streams.size(); ++i) {
        if (i == _default_index) continue;
        for (const auto& pattern : _streams[i].config.subjects) {
            if (protocol::subject_matches(pattern, subject)) return _streams[i];
        }
    }
    return _streams[_default_index];
}

std::expected<void, std::string> stream_table::admits(const stream_config& candidate) const {
    if (find(candidate.name) != nullptr) {
        return std::unexpected("stream '" + candidate.name + "' exists");
    }
    if (_streams.size() >= streams_max) return std::unexpected("too many streams");
    for (const auto& s : _streams) {
        if (s.config.name == default_stream_name) continue;  // the catch-all
        for (const auto& mine : s.config.subjects) {
            for (const auto& theirs : candidate.subjects) {
                if (protocol::patterns_overlap(mine, theirs)) {
                    return std::unexpected("subjects '" + theirs + "' overlap stream '" +
                                           s.config.name + "' ('" + mine + "')");
                }
            }
        }
    }
    return {};
}

std::uint64_t new_epoch() {
    std::random_device rd;
    std::uint64_t e = 0;
    while (e == 0) e = ((static_cast<std::uint64_t>(rd()) << 32) ^ rd()) >> 1;
    return e;
}


std::expected<std::vector<stream_info>, std::string> stream_store::load() const {
    std::vector<stream_info> out;
    std::error_code ec;
    if (!fs::exists(_data_dir, ec)) return out;
    for (const auto& entry : fs::directory_iterator(_data_dir, ec)) {
        const auto file = entry.path() / "stream.toml";
        if (!entry.is_directory() || !fs::exists(file)) continue;
        std::ifstream in(file);
        std::stringstream text;
        text << in.rdbuf();
        auto parsed = stream_from_toml(text.str());
        if (!parsed) return std::unexpected(file.string() + ": " + parsed.error());
        if (parsed->config.name != entry.path().filename().string()) {
            return std::unexpected(file.string() + ": names stream '" + parsed->config.name +
                                   "' but lives in another directory");
        }
        out.push_back({std::move(parsed->config), parsed->epoch});
    }
    if (ec) return std::unexpected("cannot list " + _data_dir.string() + ": " + ec.message());
    std::ranges::sort(out, {}, [](const stream_info& s) { return s.config.name; });
    return out;
}

std::expected<void, std::string> stream_store::save(const stream_info& stream) const {
    const auto dir = stream_dir(stream.config.name);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return std::unexpected("cannot create " + dir.string() + ": " + ec.message());
    if (auto ok = write_file_atomically(dir / "stream.toml", stream_to_toml(stream.config, stream.epoch)); !ok) {
        return ok;
    }
    return fsync_path(_data_dir, O_RDONLY | O_DIRECTORY);
}

std::expected<void, std::string> stream_store::remove(std::string_view name) const {
    std::error_code ec;
    fs::remove_all(stream_dir(name), ec);
    if (ec) return std::unexpected("cannot remove stream '" + std::string(name) + "': " + ec.message());
    return fsync_path(_data_dir, O_RDONLY | O_DIRECTORY);
}

std::expected<std::vector<stream_info>, std::string> reconcile_streams(const stream_store& store,
                                                                       const node_config& config) {
    auto loaded = store.load();
    if (!loaded) return loaded;
    auto streams = *std::move(loaded);
    auto find = [&](std::string_view name) {
        return std::ranges::find_if(streams,
                                    [&](const stream_info& s) { return s.config.name == name; });
    };
    if (find(default_stream_name) == streams.end()) {
        stream_info events{.config = {.name = std::string(default_stream_name), .subjects = {">"}},
                           .epoch = new_epoch()};
        events.config.partitions = config.shards;
        if (auto ok = store.save(events); !ok) return std::unexpected(ok.error());
        streams.push_back(std::move(events));
    }
    for (const auto& wanted : config.streams) {
        auto existing = find(wanted.name);
        stream_info next{.config = wanted, .epoch = new_epoch()};
        if (existing != streams.end()) {
            next.epoch = existing->epoch;
            next.config.partitions = existing->config.partitions;  // fixed at creation
            if (next.config.subjects == existing->config.subjects &&
                stream_to_toml(next.config, next.epoch) ==
                    stream_to_toml(existing->config, existing->epoch)) {
                continue;
            }
        } else {
            if (next.config.partitions == 0) next.config.partitions = config.shards;
            std::vector<stream_info> others(streams.begin(), streams.end());
            if (auto ok = stream_table(others).admits(next.config); !ok) {
                return std::unexpected(ok.error());
            }
        }
        if (auto ok = store.save(next); !ok) return std::unexpected(ok.error());
        if (existing != streams.end()) {
            *existing = std::move(next);
        } else {
            streams.push_back(std::move(next));
        }
    }
    return streams;
}

}  // namespace nagare::broker
