#include "protocol/errc.h"

#include <array>
#include <cstdio>
#include <cstdlib>

#include "protocol/assert.h"
#include "protocol/nagare_generated.h"

namespace nagare::detail {

void assert_failed(const char* condition, const char* message, const char* file,
                   int line) noexcept {
    std::fprintf(stderr, "nagare: assertion failed: %s (%s) at %s:%d\n", condition, message, file,
                 line);
    std::fflush(stderr);
    std::abort();
}

}  // namespace nagare::detail

namespace nagare::protocol {
namespace {

namespace fb = nagare::protocol::fb;

constexpr std::array<std::string_view, errc_count> names = {
    "NONE",           "BAD_FRAME",        "FRAME_TOO_LARGE",      "UNSUPPORTED_VERSION",
    "BAD_SUBJECT",    "BAD_PATTERN",      "BAD_PROJECT",          "BAD_MSG_ID",
    "BAD_HEADERS",    "PAYLOAD_TOO_LARGE", "BAD_REQUEST",         "NOT_AUTHORIZED",
    "NO_SUCH_STREAM", "NO_SUCH_CONSUMER", "NO_SUCH_SUBSCRIPTION", "UNKNOWN_POSITION",
    "STREAM_EXISTS",  "CONSUMER_EXISTS",  "STORAGE_FULL",         "STORAGE_ERROR",
    "OVERLOADED",     "SHUTTING_DOWN",    "INTERNAL",
};

static_assert(static_cast<std::uint16_t>(fb::ErrorCode::MAX) + 1 == errc_count,
              "errc and the wire ErrorCode must have the same members");
static_assert(static_cast<std::uint16_t>(errc::bad_subject) ==
              static_cast<std::uint16_t>(fb::ErrorCode::BAD_SUBJECT));
static_assert(static_cast<std::uint16_t>(errc::storage_full) ==
              static_cast<std::uint16_t>(fb::ErrorCode::STORAGE_FULL));
static_assert(static_cast<std::uint16_t>(errc::internal) ==
              static_cast<std::uint16_t>(fb::ErrorCode::INTERNAL));

}  // namespace

std::string_view to_string(errc code) noexcept {
    const auto index = static_cast<std::uint16_t>(code);
    return index < errc_count ? names[index] : std::string_view{"UNKNOWN"};
}

errc errc_from_wire(std::uint16_t code) noexcept {
    return code < errc_count ? static_cast<errc>(code) : errc::internal;
}

}  // namespace nagare::protocol
