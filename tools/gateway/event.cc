#include "tools/gateway/event.h"

#include <charconv>
#include <ctime>

#include <nlohmann/json.hpp>

namespace nagare::gateway {

std::optional<event_id> parse_event_id(std::string_view text) noexcept {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
    event_id id;
    const char* end = text.data() + colon;
    auto [p1, e1] = std::from_chars(text.data(), end, id.epoch);
    if (e1 != std::errc{} || p1 != end) return std::nullopt;
    const char* last = text.data() + text.size();
    auto [p2, e2] = std::from_chars(end + 1, last, id.offset);
    if (e2 != std::errc{} || p2 != last) return std::nullopt;
    return id;
}

std::string format_event_id(event_id id) {
    return std::to_string(id.epoch) + ':' + std::to_string(id.offset);
}

void append_json_string(std::string& out, std::string_view text) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out.push_back(hex[c >> 4]);
                    out.push_back(hex[c & 0xf]);
                } else {
                    out.push_back(ch);
                }
        }
    }
    out.push_back('"');
}

bool valid_utf8(std::string_view text) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int extra = 0;
        std::uint32_t cp = 0;
        if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1fu;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0fu;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (end - p <= extra) return false;
        for (int i = 1; i <= extra; ++i) {
            if ((p[i] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[i] & 0x3fu);
        }
        static constexpr std::uint32_t min_for[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_for[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        p += extra + 1;
    }
    return true;
}

bool valid_json(std::string_view text) noexcept {
    if (text.empty()) return false;
    return nlohmann::json::accept(text.begin(), text.end());
}

void append_base64(std::string& out, std::span<const std::byte> bytes) {
    static constexpr char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const auto v = (std::to_integer<std::uint32_t>(bytes[i]) << 16) |
                       (std::to_integer<std::uint32_t>(bytes[i + 1]) << 8) |
                       std::to_integer<std::uint32_t>(bytes[i + 2]);
        out.push_back(table[(v >> 18) & 63]);
        out.push_back(table[(v >> 12) & 63]);
        out.push_back(table[(v >> 6) & 63]);
        out.push_back(table[v & 63]);
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 0) return;
    std::uint32_t v = std::to_integer<std::uint32_t>(bytes[i]) << 16;
    if (rest == 2) v |= std::to_integer<std::uint32_t>(bytes[i + 1]) << 8;
    out.push_back(table[(v >> 18) & 63]);
    out.push_back(table[(v >> 12) & 63]);
    out.push_back(rest == 2 ? table[(v >> 6) & 63] : '=');
    out.push_back('=');
}

void append_iso8601_ms(std::string& out, std::uint64_t unix_ns) {
    const auto seconds = static_cast<std::time_t>(unix_ns / 1'000'000'000u);
    const auto millis = static_cast<unsigned>((unix_ns / 1'000'000u) % 1000u);
    std::tm tm{};
    gmtime_r(&seconds, &tm);
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                tm.tm_min, tm.tm_sec, millis);
    out.append(buf, static_cast<std::size_t>(n));
}

namespace {

void append_payload(std::string& out, std::span<const std::byte> payload) {
    const std::string_view text(reinterpret_cast<const char*>(payload.data()), payload.size());
    if (!valid_utf8(text)) {
        out += "\"payload\":\"";
        append_base64(out, payload);
        out += "\",\"encoding\":\"base64\"";
    } else if (valid_json(text)) {
        out += "\"payload\":";
        if (text.find_first_of("\r\n") == std::string_view::npos) {
            out += text;
        } else {
            out += nlohmann::json::parse(text).dump();  // one line: SSE data must not break
        }
    } else {
        out += "\"payload\":";
        append_json_string(out, text);
    }
}

}  // namespace

event_ptr render_event(const client::Message& msg, std::uint64_t epoch, bool is_private) {
    return render_event(message_fields{msg.offset().value, msg.timestamp_ns(), msg.project(), msg.subject(),
                                       msg.msg_id(), msg.headers(), msg.payload()},
                        epoch, is_private);
}

event_ptr render_event(const message_fields& msg, std::uint64_t epoch, bool is_private) {
    auto e = std::make_shared<event>();
    e->offset = msg.offset;
    e->timestamp_ns = msg.timestamp_ns;
    e->subject = msg.subject;
    e->msg_id = msg.msg_id;
    e->id = format_event_id({epoch, e->offset});
    e->is_private = is_private;

    std::string& j = e->json;
    j.reserve(160 + msg.payload.size());
    j += "{\"event\":";
    append_json_string(j, msg.subject);
    j += ",\"msgId\":";
    append_json_string(j, msg.msg_id);
    j += ",\"id\":\"";
    j += e->id;
    j += "\",\"project\":";
    append_json_string(j, msg.project);
    j += ",\"timestamp\":\"";
    append_iso8601_ms(j, msg.timestamp_ns);
    j += "\",";
    append_payload(j, msg.payload);
    if (!msg.headers.empty()) {
        j += ",\"headers\":{";
        bool first = true;
        for (const auto& h : msg.headers) {
            if (!first) j.push_back(',');
            first = false;
            append_json_string(j, h.key);
            j.push_back(':');
            if (valid_utf8(h.value)) {
                append_json_string(j, h.value);
            } else {
                j += "null";
            }
        }
        j.push_back('}');
    }
    j.push_back('}');

    e->sse_named = sse_message(e->id, e->subject, j);
    e->sse_plain = sse_message(e->id, {}, j);
    return e;
}

std::string with_redelivered(const event& e, std::uint32_t n) {
    std::string out = e.json;
    out.pop_back();  // the closing brace
    out += ",\"redelivered\":";
    out += std::to_string(n);
    out.push_back('}');
    return out;
}

std::string json_array(std::span<const event_ptr> events) {
    std::size_t size = 2;
    for (const auto& e : events) size += e->json.size() + 1;
    std::string out;
    out.reserve(size);
    out.push_back('[');
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (i > 0) out.push_back(',');
        out += events[i]->json;
    }
    out.push_back(']');
    return out;
}

std::string sse_message(std::string_view id, std::string_view event_name, std::string_view data) {
    std::string out;
    out.reserve(data.size() + id.size() + event_name.size() + 24);
    if (!id.empty()) {
        out += "id: ";
        out += id;
        out.push_back('\n');
    }
    if (!event_name.empty()) {
        out += "event: ";
        out += event_name;
        out.push_back('\n');
    }
    // data never holds a raw newline: JSON escapes them inside strings, and
    // stored JSON payloads may hold whitespace newlines: one data: line each.
    std::size_t start = 0;
    while (true) {
        const auto nl = data.find('\n', start);
        out += "data: ";
        out += data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
        out.push_back('\n');
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    out.push_back('\n');
    return out;
}

}  // namespace nagare::gateway
