// NG_ASSERT: an assertion that stays on in every build type (release too).
// It prints the condition, the message and the location, then aborts.
// NG_DEBUG_ASSERT is for expensive checks; it compiles away under NDEBUG.
#pragma once

namespace nagare::detail {
[[noreturn]] void assert_failed(const char* condition, const char* message, const char* file,
                                int line) noexcept;
}  // namespace nagare::detail

#define NG_ASSERT(cond, msg)                                                      \
    do {                                                                          \
        if (!(cond)) [[unlikely]] {                                               \
            ::nagare::detail::assert_failed(#cond, (msg), __FILE__, __LINE__);    \
        }                                                                         \
    } while (false)

#ifdef NDEBUG
#define NG_DEBUG_ASSERT(cond, msg) \
    do {                           \
    } while (false && (cond))
#else
#define NG_DEBUG_ASSERT(cond, msg) NG_ASSERT(cond, msg)
#endif
