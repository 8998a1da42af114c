// Streams known to the node: their configuration, epoch and partition count
// (DESIGN.md section 2), and the routing of a subject to its stream.
//
// stream_table is an immutable snapshot. The metadata owner (shard 0)
// builds a new one on create/update/delete and hands a shared pointer to
// every shard through the mesh; a shard reads only its own pointer, so the
// data path takes no lock and no reference count per message.
//
// stream_store persists one stream as `<data>/<name>/stream.toml`, written
// atomically (temp file, fsync, rename, directory fsync). Start-up and
// admin only: it blocks.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "broker/config.h"

namespace nagare::broker {

inline constexpr std::string_view default_stream_name = "events";
inline constexpr std::size_t streams_max = 1024;

struct stream_info {
    stream_config config;     // config.partitions is resolved: never 0
    std::uint64_t epoch = 0;  // random, fixed at creation, never 0
};

class stream_table {
public:
    // REQUIRES: one stream is named `events`; no two streams' subjects overlap.
    explicit stream_table(std::vector<stream_info> streams);

    [[nodiscard]] const stream_info* find(std::string_view name) const noexcept;
    // The stream whose subjects match, else `events`.
    [[nodiscard]] const stream_info& route(std::string_view subject) const noexcept;
    [[nodiscard]] std::span<const stream_info> streams() const noexcept { return _streams; }

    // Why `candidate` cannot join this table (name taken, subjects overlap), or nothing.
    [[nodiscard]] std::expected<void, std::string> admits(const stream_config& candidate) const;

private:
    std::vector<stream_info> _streams;
    std::size_t _default_index = 0;
};

using stream_table_ptr = std::shared_ptr<const stream_table>;

class stream_store {
public:
    explicit stream_store(std::filesystem::path data_dir) : _data_dir(std::move(data_dir)) {}

    // Every stream found under the data directory. A broken stream.toml is an
    // error naming the file.
    [[nodiscard]] std::expected<std::vector<stream_info>, std::string> load() const;
    [[nodiscard]] std::expected<void, std::string> save(const stream_info& stream) const;
    // Removes the stream's whole directory (partitions included).
    [[nodiscard]] std::expected<void, std::string> remove(std::string_view name) const;

    [[nodiscard]] std::filesystem::path stream_dir(std::string_view name) const {
        return _data_dir / std::string(name);
    }

private:
    std::filesystem::path _data_dir;
};

// A new random stream epoch in [1, 2^63) (TOML integers are signed).
[[nodiscard]] std::uint64_t new_epoch();

// Streams after start-up: those on disk, `events` created if missing
// (partitions = shards), and those of the config file created or updated
// (partitions stay as created). Saves what it creates or changes.
[[nodiscard]] std::expected<std::vector<stream_info>, std::string> reconcile_streams(
    const stream_store& store, const node_config& config);

}  // namespace nagare::broker
