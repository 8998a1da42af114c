// nagared's configuration: command-line flags (CLI11) over a TOML file
// (toml++), over built-in defaults (DESIGN.md section 9). Parsed once at
// start-up on the main thread; shards get a copy. Errors are one clear line.
//
// TOML layout (every key optional):
//   data = "./data"            host = "127.0.0.1"      port = 4150
//   shards = 2                 admin_port = 8222       log_level = "info"
//   max_frame_bytes = "8MiB"   max_payload_bytes = "1MiB"
//   max_pending_publish = 4096 fsync_interval = "50ms"  ping_interval = "15s"
//   [[tokens]]  token = "..."  publish = ["task.>"]  subscribe = [">"]  admin = false
//   [[streams]] name = "audit" subjects = ["audit.>"] partitions = 2 max_age = "30d"
//               max_bytes = "10GiB" segment_bytes = "64MiB" dedup_window = "30s"
//               durability = "fsync" | "interval" | "none"   private = true
// With no [[tokens]], authentication is off and every client may do anything.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/frame.h"

namespace nagare::broker {

inline constexpr std::uint64_t ms_per_s = 1000;
inline constexpr std::uint64_t ms_per_day = 24 * 3600 * ms_per_s;

struct token_config {
    std::string token;
    std::vector<std::string> publish{">"};    // subject patterns this token may publish to
    std::vector<std::string> subscribe{">"};  // subject patterns it may read
    bool admin = false;                       // streams admin and private streams
};

struct stream_config {
    std::string name;
    std::vector<std::string> subjects;
    std::uint32_t partitions = 0;  // 0: one per shard
    std::uint64_t max_age_ms = 7 * ms_per_day;
    std::uint64_t max_bytes = 0;  // 0: unlimited
    std::uint64_t segment_bytes = 64u << 20;
    std::uint64_t dedup_window_ms = 30 * ms_per_s;
    protocol::fb::Durability durability = protocol::fb::Durability::FSYNC;
    bool is_private = false;
};

struct node_config {
    std::filesystem::path data_dir = "data";
    std::string host = "127.0.0.1";
    std::uint16_t port = 4150;
    std::uint32_t shards = 0;  // 0: one per core
    std::uint16_t admin_port = 8222;
    std::string log_level = "info";
    std::uint64_t max_frame_bytes = protocol::frame_bytes_max_default;
    std::uint64_t max_payload_bytes = protocol::payload_bytes_max_default;
    std::uint32_t max_pending_publish = 4096;
    std::uint64_t fsync_interval_ms = 50;
    std::uint64_t ping_interval_ms = 15 * ms_per_s;
    std::vector<token_config> tokens;
    std::vector<stream_config> streams;  // beyond the default stream `events`
};

// Flags, then the file named by --config underneath them. On --help the
// error holds the help text and `help_requested` is set.
struct parse_failure {
    std::string message;
    bool help_requested = false;
};
[[nodiscard]] std::expected<node_config, parse_failure> parse_node_config(int argc,
                                                                          const char* const* argv);

// Applies a TOML document on top of `base`.
[[nodiscard]] std::expected<node_config, std::string> apply_toml(std::string_view toml_text,
                                                                 node_config base);


[[nodiscard]] std::expected<void, std::string> validate(const stream_config& stream);

// A stream's persisted form (`<data>/<name>/stream.toml`): `epoch = N` and a
// [stream] table with the [[streams]] keys.
[[nodiscard]] std::string stream_to_toml(const stream_config& stream, std::uint64_t epoch);
struct persisted_stream {
    stream_config config;
    std::uint64_t epoch = 0;
};
[[nodiscard]] std::expected<persisted_stream, std::string> stream_from_toml(std::string_view text);
[[nodiscard]] std::expected<void, std::string> validate(const node_config& config);

}  // namespace nagare::broker
