#include "protocol/validate.h"

#include <algorithm>
#include <array>

#include "protocol/limits.h"
#include "protocol/subject.h"

namespace nagare::protocol {
namespace {

using char_set = std::array<bool, 256>;

constexpr char_set make_set(std::string_view extra) {
    char_set set{};
    for (char c = 'a'; c <= 'z'; ++c) set[static_cast<unsigned char>(c)] = true;
    for (char c = 'A'; c <= 'Z'; ++c) set[static_cast<unsigned char>(c)] = true;
    for (char c = '0'; c <= '9'; ++c) set[static_cast<unsigned char>(c)] = true;
    for (const char c : extra) set[static_cast<unsigned char>(c)] = true;
    return set;
}

constexpr char_set project_chars = make_set("_.:-");
constexpr char_set name_chars = make_set("_-");

bool all_in(std::string_view text, const char_set& set) noexcept {
    return std::ranges::all_of(text, [&](char c) { return set[static_cast<unsigned char>(c)]; });
}

}  // namespace

errc validate_project(std::string_view project) noexcept {
    if (project.empty() || project.size() > project_bytes_max) return errc::bad_project;
    return all_in(project, project_chars) ? errc::none : errc::bad_project;
}

errc validate_msg_id(std::string_view msg_id) noexcept {
    if (msg_id.empty() || msg_id.size() > msg_id_bytes_max) return errc::bad_msg_id;
    const bool printable =
        std::ranges::all_of(msg_id, [](char c) { return c > ' ' && c <= '~'; });
    return printable ? errc::none : errc::bad_msg_id;
}

errc validate_stream_name(std::string_view stream) noexcept {
    constexpr std::string_view dlq_prefix = "$dlq.";
    if (stream.starts_with(dlq_prefix)) {
        // $dlq.<stream>.<consumer>
        const auto rest = stream.substr(dlq_prefix.size());
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) return errc::bad_request;
        const auto parent = rest.substr(0, dot);
        const auto consumer = rest.substr(dot + 1);
        return validate_stream_name(parent) == errc::none &&
                       validate_stream_name(consumer) == errc::none
                   ? errc::none
                   : errc::bad_request;
    }
    if (stream.empty() || stream.size() > stream_name_bytes_max) return errc::bad_request;
    return all_in(stream, name_chars) ? errc::none : errc::bad_request;
}

errc validate_header(std::string_view key, std::string_view value) noexcept {
    if (key.empty() || key.size() > header_key_bytes_max || !all_in(key, name_chars)) {
        return errc::bad_headers;
    }
    return value.size() <= header_value_bytes_max ? errc::none : errc::bad_headers;
}

errc validate_message(const fb::PublishMessage& message, std::size_t payload_bytes_max) noexcept {
    if (const auto e = validate_project(view(message.project())); e != errc::none) return e;
    if (const auto e = validate_subject(view(message.subject())); e != errc::none) return e;
    if (const auto e = validate_msg_id(view(message.msg_id())); e != errc::none) return e;
    if (const auto* headers = message.headers(); headers != nullptr) {
        if (headers->size() > headers_max) return errc::bad_headers;
        for (const auto* h : *headers) {
            if (const auto e = validate_header(view(h->key()), view(h->value())); e != errc::none) {
                return e;
            }
        }
    }
    const auto* payload = message.payload();
    if (payload != nullptr && payload->size() > payload_bytes_max) return errc::payload_too_large;
    return errc::none;
}

}  // namespace nagare::protocol
