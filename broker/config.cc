#include "broker/config.h"

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <charconv>
#include <limits>
#include <fstream>
#include <sstream>
#include <thread>

#include "protocol/subject.h"
#include "protocol/units.h"
#include "protocol/validate.h"

namespace nagare::broker {
namespace {

template <class T>
std::expected<T, std::string> narrow(std::uint64_t value, std::string_view key) {
    if (value > std::numeric_limits<T>::max()) {
        return std::unexpected(std::string(key) + " is out of range");
    }
    return static_cast<T>(value);
}

// Reads a key that may be an integer or a string with units.
std::expected<std::uint64_t, std::string> read_quantity(const toml::node& node,
                                                        std::string_view key, bool duration) {
    if (const auto* i = node.as_integer()) {
        if (i->get() < 0) return std::unexpected(std::string(key) + " must not be negative");
        return static_cast<std::uint64_t>(i->get());
    }
    if (const auto* s = node.as_string()) {
        auto parsed = duration ? protocol::parse_duration_ms(s->get()) : protocol::parse_bytes(s->get());
        if (!parsed) return std::unexpected(std::string(key) + ": " + parsed.error());
        return parsed;
    }
    return std::unexpected(std::string(key) + " must be a number or a string");
}

std::expected<std::vector<std::string>, std::string> read_strings(const toml::node& node,
                                                                  std::string_view key) {
    const auto* array = node.as_array();
    if (array == nullptr) return std::unexpected(std::string(key) + " must be a list of strings");
    std::vector<std::string> out;
    for (const auto& item : *array) {
        const auto* s = item.as_string();
        if (s == nullptr) return std::unexpected(std::string(key) + " must be a list of strings");
        out.push_back(s->get());
    }
    return out;
}

std::expected<protocol::fb::Durability, std::string> parse_durability(std::string_view text) {
    if (text == "fsync") return protocol::fb::Durability::FSYNC;
    if (text == "interval") return protocol::fb::Durability::INTERVAL;
    if (text == "none") return protocol::fb::Durability::NONE;
    return std::unexpected("durability must be fsync, interval or none, not '" +
                           std::string(text) + "'");
}

#define NG_TRY(target, expr)                                \
    do {                                                    \
        auto _r = (expr);                                   \
        if (!_r) return std::unexpected(std::move(_r).error()); \
        target = *std::move(_r);                            \
    } while (false)

std::expected<stream_config, std::string> read_stream(const toml::table& t) {
    stream_config s;
    for (const auto& [key_node, value] : t) {
        const std::string_view key = key_node.str();
        if (key == "name") {
            if (!value.is_string()) return std::unexpected("stream name must be a string");
            s.name = value.as_string()->get();
        } else if (key == "subjects") {
            NG_TRY(s.subjects, read_strings(value, "subjects"));
        } else if (key == "partitions") {
            std::uint64_t n = 0;
            NG_TRY(n, read_quantity(value, key, false));
            NG_TRY(s.partitions, narrow<std::uint32_t>(n, key));
        } else if (key == "max_age") {
            NG_TRY(s.max_age_ms, read_quantity(value, key, true));
        } else if (key == "max_bytes") {
            NG_TRY(s.max_bytes, read_quantity(value, key, false));
        } else if (key == "segment_bytes") {
            NG_TRY(s.segment_bytes, read_quantity(value, key, false));
        } else if (key == "dedup_window") {
            NG_TRY(s.dedup_window_ms, read_quantity(value, key, true));
        } else if (key == "durability") {
            if (!value.is_string()) return std::unexpected("durability must be a string");
            NG_TRY(s.durability, parse_durability(value.as_string()->get()));
        } else if (key == "private") {
            if (!value.is_boolean()) return std::unexpected("private must be true or false");
            s.is_private = value.as_boolean()->get();
        } else {
            return std::unexpected("unknown key '" + std::string(key) + "' in [[streams]]");
        }
    }
    if (auto ok = validate(s); !ok) return std::unexpected(ok.error());
    return s;
}

std::expected<token_config, std::string> read_token(const toml::table& t) {
    token_config c;
    for (const auto& [key_node, value] : t) {
        const std::string_view key = key_node.str();
        if (key == "token") {
            if (!value.is_string()) return std::unexpected("token must be a string");
            c.token = value.as_string()->get();
        } else if (key == "publish") {
            NG_TRY(c.publish, read_strings(value, key));
        } else if (key == "subscribe") {
            NG_TRY(c.subscribe, read_strings(value, key));
        } else if (key == "admin") {
            if (!value.is_boolean()) return std::unexpected("admin must be true or false");
            c.admin = value.as_boolean()->get();
        } else {
            return std::unexpected("unknown key '" + std::string(key) + "' in [[tokens]]");
        }
    }
    if (c.token.empty()) return std::unexpected("a [[tokens]] entry needs a non-empty token");
    for (const auto* list : {&c.publish, &c.subscribe}) {
        for (const auto& p : *list) {
            if (protocol::validate_pattern(p) != protocol::errc::none) {
                return std::unexpected("token pattern '" + p + "' is not a valid subject pattern");
            }
        }
    }
    return c;
}

template <class Each>
std::expected<void, std::string> read_table_array(const toml::node& node, std::string_view key,
                                                  Each&& each) {
    const auto* array = node.as_array();
    if (array == nullptr) return std::unexpected("[[" + std::string(key) + "]] must be tables");
    for (const auto& item : *array) {
        const auto* t = item.as_table();
        if (t == nullptr) return std::unexpected("[[" + std::string(key) + "]] must be tables");
        if (auto ok = each(*t); !ok) return ok;
    }
    return {};
}

std::expected<void, std::string> apply_key(node_config& c, std::string_view key,
                                           const toml::node& value) {
    std::uint64_t n = 0;
    if (key == "data" || key == "host" || key == "log_level") {
        if (!value.is_string()) return std::unexpected(std::string(key) + " must be a string");
        const auto& s = value.as_string()->get();
        if (key == "data") c.data_dir = s;
        if (key == "host") c.host = s;
        if (key == "log_level") c.log_level = s;
    } else if (key == "port" || key == "admin_port") {
        NG_TRY(n, read_quantity(value, key, false));
        NG_TRY((key == "port" ? c.port : c.admin_port), narrow<std::uint16_t>(n, key));
    } else if (key == "shards") {
        NG_TRY(n, read_quantity(value, key, false));
        NG_TRY(c.shards, narrow<std::uint32_t>(n, key));
    } else if (key == "max_frame_bytes") {
        NG_TRY(c.max_frame_bytes, read_quantity(value, key, false));
    } else if (key == "max_payload_bytes") {
        NG_TRY(c.max_payload_bytes, read_quantity(value, key, false));
    } else if (key == "max_pending_publish") {
        NG_TRY(n, read_quantity(value, key, false));
        NG_TRY(c.max_pending_publish, narrow<std::uint32_t>(n, key));
    } else if (key == "fsync_interval") {
        NG_TRY(c.fsync_interval_ms, read_quantity(value, key, true));
    } else if (key == "ping_interval") {
        NG_TRY(c.ping_interval_ms, read_quantity(value, key, true));
    } else if (key == "tokens") {
        return read_table_array(value, key, [&](const toml::table& t) -> std::expected<void, std::string> {
            auto token = read_token(t);
            if (!token) return std::unexpected(token.error());
            c.tokens.push_back(*std::move(token));
            return {};
        });
    } else if (key == "streams") {
        return read_table_array(value, key, [&](const toml::table& t) -> std::expected<void, std::string> {
            auto stream = read_stream(t);
            if (!stream) return std::unexpected(stream.error());
            c.streams.push_back(*std::move(stream));
            return {};
        });
    } else {
        return std::unexpected("unknown key '" + std::string(key) + "'");
    }
    return {};
}

}  // namespace

std::expected<void, std::string> validate(const stream_config& s) {
    // Dead-letter streams ($dlq.<stream>.<consumer>) bind no subjects: only
    // the broker writes to them.
    const bool dead_letter = s.name.starts_with("$dlq.");
    if (protocol::validate_stream_name(s.name) != protocol::errc::none ||
        (s.name.starts_with('$') && !dead_letter)) {
        return std::unexpected("stream name '" + s.name +
                               "' must be 1..64 characters of [A-Za-z0-9_-]");
    }
    if (dead_letter && !s.subjects.empty()) {
        return std::unexpected("dead-letter stream '" + s.name + "' binds no subjects");
    }
    if (!dead_letter && s.subjects.empty()) return std::unexpected("stream '" + s.name + "' needs subjects");
    for (const auto& p : s.subjects) {
        if (protocol::validate_pattern(p) != protocol::errc::none) {
            return std::unexpected("stream '" + s.name + "': '" + p +
                                   "' is not a valid subject pattern");
        }
    }
    if (s.partitions > 4096) return std::unexpected("stream '" + s.name + "': at most 4096 partitions");
    if (s.segment_bytes < (64u << 10) || s.segment_bytes > (1ULL << 30)) {
        return std::unexpected("stream '" + s.name + "': segment_bytes must be 64KiB..1GiB");
    }
    if (s.dedup_window_ms == 0 || s.dedup_window_ms > 24 * 3600 * ms_per_s) {
        return std::unexpected("stream '" + s.name + "': dedup_window must be 1ms..24h");
    }
    if (s.max_age_ms == 0) return std::unexpected("stream '" + s.name + "': max_age must be > 0");
    return {};
}

std::expected<void, std::string> validate(const node_config& c) {
    if (c.shards == 0 || c.shards > 256) return std::unexpected("shards must be 1..256");
    if (c.port == 0 || static_cast<std::uint32_t>(c.port) + c.shards > 65535) {
        return std::unexpected("port must leave room for one shard port per shard (port+1..)");
    }
    if (c.max_frame_bytes < 4096 || c.max_frame_bytes > protocol::frame_bytes_max_limit) {
        return std::unexpected("max_frame_bytes must be 4KiB..64MiB");
    }
    if (c.max_payload_bytes == 0 || c.max_payload_bytes + 4096 > c.max_frame_bytes) {
        return std::unexpected("max_payload_bytes must be > 0 and leave 4KiB of a frame for headers");
    }
    if (c.max_pending_publish == 0) return std::unexpected("max_pending_publish must be > 0");
    if (c.fsync_interval_ms == 0) return std::unexpected("fsync_interval must be > 0");
    if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" &&
        c.log_level != "warn" && c.log_level != "error") {
        return std::unexpected("log_level must be trace, debug, info, warn or error");
    }
    for (const auto& s : c.streams) {
        if (auto ok = validate(s); !ok) return ok;
        if (s.name == "events") return std::unexpected("stream 'events' is built in");
    }
    return {};
}

std::string stream_to_toml(const stream_config& s, std::uint64_t epoch) {
    toml::array subjects;
    for (const auto& p : s.subjects) subjects.push_back(p);
    const char* durability = s.durability == protocol::fb::Durability::FSYNC      ? "fsync"
                             : s.durability == protocol::fb::Durability::INTERVAL ? "interval"
                                                                                  : "none";
    auto count = [](std::uint64_t v) { return static_cast<std::int64_t>(v); };
    toml::table stream{{"name", s.name},
                       {"subjects", subjects},
                       {"partitions", count(s.partitions)},
                       {"max_age", count(s.max_age_ms)},
                       {"max_bytes", count(s.max_bytes)},
                       {"segment_bytes", count(s.segment_bytes)},
                       {"dedup_window", count(s.dedup_window_ms)},
                       {"durability", durability},
                       {"private", s.is_private}};
    toml::table doc{{"epoch", count(epoch)}, {"stream", stream}};
    std::ostringstream out;
    out << "# nagare stream; written by nagared, durations in ms, sizes in bytes\n" << doc << "\n";
    return out.str();
}

std::expected<persisted_stream, std::string> stream_from_toml(std::string_view text) {
    toml::table doc;
    try {
        doc = toml::parse(text);
    } catch (const toml::parse_error& e) {
        std::ostringstream where;
        where << "line " << e.source().begin.line << ": " << e.description();
        return std::unexpected(where.str());
    }
    const auto epoch = doc["epoch"].value<std::int64_t>();
    const auto* stream = doc["stream"].as_table();
    if (!epoch || *epoch <= 0 || stream == nullptr) {
        return std::unexpected("needs a positive epoch and a [stream] table");
    }
    auto config = read_stream(*stream);
    if (!config) return std::unexpected(config.error());
    if (config->partitions == 0) return std::unexpected("partitions must be set");
    return persisted_stream{*std::move(config), static_cast<std::uint64_t>(*epoch)};
}

std::expected<node_config, std::string> apply_toml(std::string_view toml_text, node_config base) {
    toml::table doc;
    try {
        doc = toml::parse(toml_text);
    } catch (const toml::parse_error& e) {
        std::ostringstream where;
        where << "line " << e.source().begin.line << ": " << e.description();
        return std::unexpected(where.str());
    }
    for (const auto& [key, value] : doc) {
        if (auto ok = apply_key(base, key.str(), value); !ok) return std::unexpected(ok.error());
    }
    return base;
}

std::expected<node_config, parse_failure> parse_node_config(int argc, const char* const* argv) {
    node_config flags;
    std::string config_file, data_dir, max_frame, max_payload, fsync_interval;
    CLI::App app{"nagared: the nagare broker node"};
    app.add_option("--config", config_file, "TOML config file (flags override it)");
    app.add_option("--data", data_dir, "data directory (default ./data)");
    app.add_option("--host", flags.host, "address to listen on (default 127.0.0.1)");
    app.add_option("--port", flags.port, "broker port; shard i also listens on port+1+i (default 4150)");
    app.add_option("--shards", flags.shards, "shards, one thread each (default: cores)");
    app.add_option("--admin-port", flags.admin_port, "/metrics and /healthz port (default 8222)");
    app.add_option("--log-level", flags.log_level, "trace|debug|info|warn|error (default info)");
    app.add_option("--max-frame-bytes", max_frame, "largest frame accepted (default 8MiB)");
    app.add_option("--max-payload-bytes", max_payload, "largest payload accepted (default 1MiB)");
    app.add_option("--max-pending-publish", flags.max_pending_publish,
                   "unacknowledged messages per connection before reading pauses (default 4096)");
    app.add_option("--fsync-interval", fsync_interval, "sync period of durability=interval (default 50ms)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        return std::unexpected(parse_failure{app.help(), true});
    } catch (const CLI::ParseError& e) {
        return std::unexpected(parse_failure{e.what(), false});
    }
    node_config c;
    if (!config_file.empty()) {
        std::ifstream in(config_file);
        if (!in) return std::unexpected(parse_failure{"cannot read config file " + config_file});
        std::stringstream text;
        text << in.rdbuf();
        auto applied = apply_toml(text.str(), c);
        if (!applied) return std::unexpected(parse_failure{config_file + ": " + applied.error()});
        c = *std::move(applied);
    }
    auto given = [&](const char* name) { return app.count(name) > 0; };
    if (given("--data")) c.data_dir = data_dir;
    if (given("--host")) c.host = flags.host;
    if (given("--port")) c.port = flags.port;
    if (given("--shards")) c.shards = flags.shards;
    if (given("--admin-port")) c.admin_port = flags.admin_port;
    if (given("--log-level")) c.log_level = flags.log_level;
    if (given("--max-pending-publish")) c.max_pending_publish = flags.max_pending_publish;
    auto quantity = [&](const char* name, const std::string& text, bool duration,
                        std::uint64_t& into) -> std::expected<void, parse_failure> {
        if (!given(name)) return {};
        auto v = duration ? protocol::parse_duration_ms(text) : protocol::parse_bytes(text);
        if (!v) return std::unexpected(parse_failure{std::string(name) + ": " + v.error()});
        into = *v;
        return {};
    };
    if (auto ok = quantity("--max-frame-bytes", max_frame, false, c.max_frame_bytes); !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = quantity("--max-payload-bytes", max_payload, false, c.max_payload_bytes); !ok) {
        return std::unexpected(ok.error());
    }
    if (auto ok = quantity("--fsync-interval", fsync_interval, true, c.fsync_interval_ms); !ok) {
        return std::unexpected(ok.error());
    }
    if (c.shards == 0) c.shards = std::max(1u, std::thread::hardware_concurrency());
    if (auto ok = validate(c); !ok) return std::unexpected(parse_failure{ok.error()});
    return c;
}

}  // namespace nagare::broker
