#include "broker/consumer_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>

#include "broker/atomic_file.h"
#include "protocol/subject.h"
#include "protocol/validate.h"
#include "storage/consumer_state.h"

namespace nagare::broker {

namespace fb = protocol::fb;
using protocol::errc;

bool consumer_config::same_definition(const consumer_config& o) const noexcept {
    return stream == o.stream && name == o.name && project == o.project && subjects == o.subjects &&
           ack_explicit == o.ack_explicit && ack_wait_ms == o.ack_wait_ms &&
           max_deliver == o.max_deliver && backoff_ms == o.backoff_ms &&
           max_inflight == o.max_inflight && ordered == o.ordered;
}

std::uint64_t consumer_config::redelivery_delay_ns(std::uint32_t deliveries) const noexcept {
    if (backoff_ms.empty() || deliveries == 0) return std::uint64_t{ack_wait_ms} * 1'000'000;
    const auto step = std::min<std::size_t>(deliveries - 1, backoff_ms.size() - 1);
    return std::uint64_t{backoff_ms[step]} * 1'000'000;
}

bool consumer_config::matches(std::string_view p, std::string_view subject) const noexcept {
    if (!project.empty() && p != project) return false;
    if (subjects.empty()) return true;
    return std::ranges::any_of(subjects, [&](const std::string& pattern) {
        return protocol::subject_matches(pattern, subject);
    });
}

std::expected<consumer_config, config_error> consumer_config_from(const fb::Subscribe& s,
                                                                 std::string ephemeral_name) {
    auto fail = [](errc code, std::string message) {
        return std::unexpected(config_error{code, std::move(message)});
    };
    consumer_config c;
    c.stream = std::string(protocol::view(s.stream()));
    if (protocol::validate_stream_name(c.stream) != errc::none) {
        return fail(errc::no_such_stream, "bad stream name");
    }
    c.name = std::string(protocol::view(s.consumer()));
    if (c.name.empty()) {
        c.name = std::move(ephemeral_name);
        c.ephemeral = true;
    } else if (!storage::is_valid_consumer_name(c.name)) {
        return fail(errc::bad_request, "consumer names are 1..64 bytes of [A-Za-z0-9_-]");
    }
    c.project = std::string(protocol::view(s.project()));
    if (!c.project.empty() && protocol::validate_project(c.project) != errc::none) {
        return fail(errc::bad_project, "bad project");
    }
    if (const auto* subjects = s.subjects()) {
        if (subjects->size() > subject_patterns_max) {
            return fail(errc::bad_pattern, "more than 64 subject patterns");
        }
        for (const auto* p : *subjects) {
            const auto pattern = protocol::view(p);
            if (protocol::validate_pattern(pattern) != errc::none) {
                return fail(errc::bad_pattern, "bad subject pattern '" + std::string(pattern) + "'");
            }
            c.subjects.emplace_back(pattern);
        }
        std::ranges::sort(c.subjects);
        const auto dup = std::ranges::unique(c.subjects);
        c.subjects.erase(dup.begin(), dup.end());
    }
    switch (s.deliver()) {
        case fb::DeliverPolicy::ALL: c.deliver = deliver_policy::all; break;
        case fb::DeliverPolicy::NEW: c.deliver = deliver_policy::fresh; break;
        case fb::DeliverPolicy::FROM_OFFSET: c.deliver = deliver_policy::from_offset; break;
        case fb::DeliverPolicy::FROM_TIME: c.deliver = deliver_policy::from_time; break;
        case fb::DeliverPolicy::LAST_PER_SUBJECT:
            if (c.project.empty()) {
                return fail(errc::bad_request, "deliver last_per_subject needs a project");
            }
            c.deliver = deliver_policy::last_per_subject;
            break;
        default: return fail(errc::bad_request, "unknown deliver policy");
    }
    c.start_offset = s.start_offset();
    c.start_time_ns = s.start_time_ns();
    if (const auto* positions = s.start_positions()) {
        if (positions->size() > start_positions_max) return fail(errc::bad_request, "too many start positions");
        for (const auto* p : *positions) {
            if (p->partition() >= start_positions_max) return fail(errc::bad_request, "bad start partition");
            if (c.start_offsets.size() <= p->partition()) {
                c.start_offsets.resize(p->partition() + 1, std::numeric_limits<std::uint64_t>::max());
            }
            c.start_offsets[p->partition()] = p->offset();
        }
    }
    if (s.ack() != fb::AckPolicy::EXPLICIT && s.ack() != fb::AckPolicy::NONE) {
        return fail(errc::bad_request, "unknown ack policy");
    }
    c.ack_explicit = s.ack() == fb::AckPolicy::EXPLICIT;
    if (s.ack_wait_ms() != 0) c.ack_wait_ms = s.ack_wait_ms();
    if (s.max_deliver() != 0) c.max_deliver = s.max_deliver();
    if (s.max_inflight() != 0) c.max_inflight = s.max_inflight();
    if (c.max_inflight > max_inflight_limit) {
        return fail(errc::bad_request, "max_inflight above 16384");
    }
    if (const auto* backoff = s.backoff_ms()) {
        if (backoff->size() > backoff_steps_max) return fail(errc::bad_request, "more than 32 backoff steps");
        for (const auto d : *backoff) c.backoff_ms.push_back(d);
    }
    c.ordered = s.ordered();
    return c;
}

std::expected<void, std::string> save_consumer_config(const std::filesystem::path& file,
                                                      const consumer_config& c) {
    toml::array subjects;
    for (const auto& s : c.subjects) subjects.push_back(s);
    toml::array backoff;
    for (const auto d : c.backoff_ms) backoff.push_back(static_cast<std::int64_t>(d));
    const toml::table t{
        {"stream", c.stream},
        {"name", c.name},
        {"project", c.project},
        {"subjects", subjects},
        {"ack", c.ack_explicit ? "explicit" : "none"},
        {"ack_wait_ms", static_cast<std::int64_t>(c.ack_wait_ms)},
        {"max_deliver", static_cast<std::int64_t>(c.max_deliver)},
        {"backoff_ms", backoff},
        {"max_inflight", static_cast<std::int64_t>(c.max_inflight)},
        {"ordered", c.ordered},
    };
    std::ostringstream text;
    text << t << '\n';
    return write_file_atomically(file, text.str());
}

std::expected<consumer_config, std::string> load_consumer_config(const std::filesystem::path& file) {
    toml::table t;
    try {
        t = toml::parse_file(file.string());
    } catch (const toml::parse_error& e) {
        return std::unexpected(std::string(e.description()));
    }
    consumer_config c;
    c.stream = t["stream"].value_or(std::string{});
    c.name = t["name"].value_or(std::string{});
    c.project = t["project"].value_or(std::string{});
    if (const auto* a = t["subjects"].as_array()) {
        for (const auto& s : *a) {
            if (auto v = s.value<std::string>()) c.subjects.push_back(*v);
        }
    }
    c.ack_explicit = t["ack"].value_or(std::string{"explicit"}) == "explicit";
    auto u32 = [&](const char* key, std::uint32_t fallback) {
        const auto v = t[key].value_or(static_cast<std::int64_t>(fallback));
        return v <= 0 || v > std::numeric_limits<std::uint32_t>::max() ? fallback
                                                                        : static_cast<std::uint32_t>(v);
    };
    c.ack_wait_ms = u32("ack_wait_ms", ack_wait_ms_default);
    c.max_deliver = u32("max_deliver", max_deliver_default);
    c.max_inflight = std::min(u32("max_inflight", max_inflight_default), max_inflight_limit);
    if (const auto* a = t["backoff_ms"].as_array()) {
        for (const auto& d : *a) {
            if (auto v = d.value<std::int64_t>(); v && *v >= 0) c.backoff_ms.push_back(static_cast<std::uint32_t>(*v));
        }
    }
    c.ordered = t["ordered"].value_or(false);
    if (!storage::is_valid_consumer_name(c.name) ||
        protocol::validate_stream_name(c.stream) != errc::none) {
        return std::unexpected("bad consumer or stream name");
    }
    for (const auto& s : c.subjects) {
        if (protocol::validate_pattern(s) != errc::none) return std::unexpected("bad pattern " + s);
    }
    if (!c.project.empty() && protocol::validate_project(c.project) != errc::none) {
        return std::unexpected("bad project");
    }
    return c;
}

}  // namespace nagare::broker
