// Parsing of broker urls: `nagare://host[:port]`.
//
// host: a DNS name or IPv4 address ([A-Za-z0-9.-], 1..253 bytes), or an
// IPv6 address in brackets ([::1]); port: 1..65535 in decimal, default 4150.
// Nothing else is accepted: no user info, path, query, or trailing bytes.
// Pure functions, callable from any thread.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace nagare::client {

struct endpoint {
    std::string host;  // without brackets
    std::uint16_t port = 0;
};

// The endpoint, or a one-line reason.
[[nodiscard]] std::expected<endpoint, std::string> parse_url(std::string_view url);

}  // namespace nagare::client
