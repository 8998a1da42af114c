// A consumer's definition (DESIGN.md section 2, "Consumer"): what a Subscribe
// asks for, checked and with defaults applied; for durable consumers also
// what is kept on disk (`<partition dir>/consumers/<name>.toml`) so the
// consumer outlives restarts.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <string>
#include <vector>

#include "protocol/errc.h"
#include "protocol/frame.h"

namespace nagare::broker {

inline constexpr std::uint32_t ack_wait_ms_default = 30'000;
inline constexpr std::uint32_t max_deliver_default = 5;
inline constexpr std::uint32_t max_inflight_default = 1024;
inline constexpr std::uint32_t max_inflight_limit = 16384;  // storage::delivery_entries_max_limit
inline constexpr std::size_t subject_patterns_max = 64;
inline constexpr std::size_t backoff_steps_max = 32;
inline constexpr std::size_t start_positions_max = 1024;

enum class deliver_policy : std::uint8_t { all, fresh, from_offset, from_time, last_per_subject };

struct consumer_config {
    std::string stream;
    std::string name;  // durable name, or the generated name of an ephemeral consumer
    bool ephemeral = false;
    std::string project;                // empty: every project
    std::vector<std::string> subjects;  // empty: every subject
    deliver_policy deliver = deliver_policy::all;
    std::uint64_t start_offset = 0;
    std::uint64_t start_time_ns = 0;
    std::vector<std::uint64_t> start_offsets;  // [partition]; UINT64_MAX: not given
    bool ack_explicit = true;
    std::uint32_t ack_wait_ms = ack_wait_ms_default;
    std::uint32_t max_deliver = max_deliver_default;
    std::vector<std::uint32_t> backoff_ms;
    std::uint32_t max_inflight = max_inflight_default;
    bool ordered = false;

    // Filter and policies equal (what a second subscriber must agree on).
    [[nodiscard]] bool same_definition(const consumer_config& other) const noexcept;
    // The delay before the redelivery that follows delivery number `deliveries`.
    [[nodiscard]] std::uint64_t redelivery_delay_ns(std::uint32_t deliveries) const noexcept;
    // The project and subject filter.
    [[nodiscard]] bool matches(std::string_view project, std::string_view subject) const noexcept;
};

struct config_error {
    protocol::errc code = protocol::errc::bad_request;
    std::string message;
};

// Checks a Subscribe (not the stream's existence) and applies defaults.
// `ephemeral_name` names the consumer when the Subscribe gives none.
[[nodiscard]] std::expected<consumer_config, config_error> consumer_config_from(
    const protocol::fb::Subscribe& subscribe, std::string ephemeral_name);

// The definition file of a durable consumer (written atomically: temp file,
// fsync, rename). Blocking: subscribe and start-up only.
[[nodiscard]] std::expected<void, std::string> save_consumer_config(
    const std::filesystem::path& file, const consumer_config& config);
[[nodiscard]] std::expected<consumer_config, std::string> load_consumer_config(
    const std::filesystem::path& file);

}  // namespace nagare::broker
