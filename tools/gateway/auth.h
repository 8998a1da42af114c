// Browser authentication for the gateway (docs/gateway.md, "Auth (JWT)").
//
// - load_auth_keys reads the key files once at start-up.
// - token_verifier checks a JWT (HS256 or RS256, the algorithm pinned to the
//   keys configured), its time claims, and turns its claims into a `grant`.
// - find_token picks the token out of a request (header, cookie, query).
// - private_subjects and check_access decide what a grant may subscribe to.
//
// Invariants: a token is accepted only when its header's `alg` is HS256 and
// an HS256 secret is configured, or RS256 and an RS256 public key is; the
// signature is checked with that key alone (no `none`, no alg confusion).
// Error texts never contain the token.
//
// Everything here is immutable after construction: callable from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nagare::gateway {

// A longer token is refused before it is parsed (cookies are <= 4 KiB anyway).
inline constexpr std::size_t token_bytes_max = 8192;
// Claims with more entries are refused.
inline constexpr std::size_t claim_entries_max = 1024;
// Timestamps (`exp`, `nbf`) are honoured with this much clock skew.
inline constexpr std::chrono::seconds clock_leeway{30};
// The cookie find_token reads.
inline constexpr std::string_view token_cookie_name = "nagare_token";

// What a verified token allows.
struct grant {
    bool all_projects = false;               // "projects": ["*"]
    std::vector<std::string> projects;       // allowed project names (absent claim: none)
    std::vector<std::string> subjects{">"};  // valid patterns (absent claim: {">"})
    bool admin = false;                      // "admin" in "roles" (or "role")
    std::string subject_claim;               // JWT "sub", for logs; may be empty
};

// Key material; an empty string means that algorithm is not configured.
struct auth_keys {
    std::string hs256_secret;      // the secret file's bytes, trailing newline removed
    std::string rs256_public_pem;  // a PEM "PUBLIC KEY" holding an RSA key
};

// Reads the key files; an empty path leaves that key empty (both empty: an
// empty auth_keys, the caller decides whether that is allowed). An
// unreadable or empty file, or a PEM that is not an RSA public key, is an
// error with a clear one-line text.
[[nodiscard]] std::expected<auth_keys, std::string> load_auth_keys(
    const std::filesystem::path& hs256_secret_file, const std::filesystem::path& rs256_pem_file);

class token_verifier {
public:
    explicit token_verifier(auth_keys keys);

    // The grant of a valid token, else why it is refused (for a 401 and the
    // log; never contains the token). Checks, in order: size and shape,
    // header `alg` (HS256/RS256 with its key configured; `crit` refused),
    // the signature with that key, `exp` / `nbf` against `now` with
    // clock_leeway, then the claims: "projects" (array of strings, "*" = all),
    // "subjects" (array of valid patterns), "roles" (array of strings) or
    // "role" (string), "sub" (string). A claim of the wrong type refuses the
    // token.
    [[nodiscard]] std::expected<grant, std::string> verify(
        std::string_view token, std::chrono::system_clock::time_point now) const;

private:
    auth_keys _keys;
};

// The token of a request: the `Authorization: Bearer T` header value, else
// the `nagare_token` cookie from the Cookie header value, else the query
// token. Empty if none. The result views one of the arguments.
[[nodiscard]] std::string_view find_token(std::string_view authorization_header,
                                          std::string_view cookie_header,
                                          std::string_view query_token) noexcept;

// The subjects only the `admin` role may receive (`--private`, default `audit.>`).
class private_subjects {
public:
    // REQUIRES: every pattern is valid (protocol::validate_pattern).
    explicit private_subjects(std::vector<std::string> patterns = {"audit.>"});

    // `subject` (a valid subject) is private: deliver it to admins only.
    [[nodiscard]] bool matches_subject(std::string_view subject) const noexcept;
    // `pattern` (valid) can only match private subjects (covered by one
    // private pattern): subscribing to it needs admin.
    [[nodiscard]] bool names_private(std::string_view pattern) const noexcept;
    // `pattern` (valid) could match some private subject: a non-admin
    // connection on it must have private events filtered out.
    [[nodiscard]] bool may_reach_private(std::string_view pattern) const noexcept;

    [[nodiscard]] std::span<const std::string> patterns() const noexcept { return _patterns; }

private:
    std::vector<std::string> _patterns;
};

enum class access { ok, forbidden_project, forbidden_subject, private_needs_admin };

// Whether `g` may subscribe to `requested_patterns` on `project`: the project
// must be allowed, every pattern covered by one of the grant's patterns
// (an invalid pattern is never covered), and a pattern that names_private
// needs admin. The first failure found, checked in that order.
[[nodiscard]] access check_access(const grant& g, std::string_view project,
                                  std::span<const std::string> requested_patterns,
                                  const private_subjects& privates) noexcept;

[[nodiscard]] std::string_view to_string(access a) noexcept;

}  // namespace nagare::gateway
