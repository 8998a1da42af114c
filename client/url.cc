#include "client/url.h"

#include <algorithm>
#include <charconv>

#include "client/limits.h"

namespace nagare::client {
namespace {

constexpr std::string_view scheme = "nagare://";
constexpr std::size_t host_bytes_max = 253;

bool host_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

bool ipv6_char(char c) noexcept {
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

std::expected<std::uint16_t, std::string> parse_port(std::string_view text) {
    if (text.empty()) return std::unexpected("empty port");
    if (text.size() > 5 ||
        !std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; })) {
        return std::unexpected("port is not a number in 1..65535");
    }
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value == 0 || value > 65535) return std::unexpected("port is not a number in 1..65535");
    return static_cast<std::uint16_t>(value);
}

}  // namespace

std::expected<endpoint, std::string> parse_url(std::string_view url) {
    if (url.size() > url_bytes_max) return std::unexpected("url too long");
    if (!url.starts_with(scheme)) return std::unexpected("url must start with nagare://");
    auto rest = url.substr(scheme.size());
    endpoint out;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) return std::unexpected("unterminated [ in host");
        const auto host = rest.substr(1, close - 1);
        if (host.empty() || !std::ranges::all_of(host, ipv6_char) ||
            host.find(':') == std::string_view::npos) {
            return std::unexpected("bad IPv6 address in brackets");
        }
        out.host = host;
        rest = rest.substr(close + 1);
    } else {
        const auto colon = rest.find(':');
        const auto host = rest.substr(0, colon);
        if (host.empty()) return std::unexpected("empty host");
        if (host.size() > host_bytes_max || !std::ranges::all_of(host, host_char)) {
            return std::unexpected("host may hold only letters, digits, '.' and '-'");
        }
        out.host = host;
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon);
    }
    if (rest.empty()) {
        out.port = default_port;
        return out;
    }
    if (rest.front() != ':') return std::unexpected("unexpected bytes after the host");
    auto port = parse_port(rest.substr(1));
    if (!port) return std::unexpected(port.error());
    out.port = *port;
    return out;
}

}  // namespace nagare::client
