#include "tools/gateway/auth.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "protocol/assert.h"
#include "protocol/subject.h"

namespace nagare::gateway {
namespace {

using json = nlohmann::json;

// Key files are small; a bigger one is a mistake (a wrong path).
constexpr std::uintmax_t key_file_bytes_max = 64 * 1024;

// ---- key files ----------------------------------------------------------

std::expected<std::string, std::string> read_key_file(const std::filesystem::path& path,
                                                      std::string_view what) {
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    if (ec) {
        return std::unexpected(std::string(what) + " " + path.string() + ": " + ec.message());
    }
    if (bytes > key_file_bytes_max) {
        return std::unexpected(std::string(what) + " " + path.string() + ": larger than " +
                               std::to_string(key_file_bytes_max) + " bytes");
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::unexpected(std::string(what) + " " + path.string() + ": cannot open");
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (in.bad()) return std::unexpected(std::string(what) + " " + path.string() + ": read error");
    return text;
}

// One trailing "\n" (or "\r\n") is the editor's, not the secret's.
void drop_trailing_newline(std::string& text) {
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
}

struct bio_deleter {
    void operator()(BIO* bio) const noexcept { BIO_free(bio); }
};
struct pkey_deleter {
    void operator()(EVP_PKEY* key) const noexcept { EVP_PKEY_free(key); }
};

// The same parse libjwt does when it verifies RS256 (PEM "PUBLIC KEY").
bool is_rsa_public_pem(const std::string& pem) {
    if (pem.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
    const std::unique_ptr<BIO, bio_deleter> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return false;
    const std::unique_ptr<EVP_PKEY, pkey_deleter> key(
        PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    return key && EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA;
}

// ---- token shape ----------------------------------------------------------

constexpr std::array<std::int8_t, 256> base64url_values = [] {
    std::array<std::int8_t, 256> table{};
    table.fill(-1);
    std::int8_t v = 0;
    for (char c = 'A'; c <= 'Z'; ++c) table[static_cast<unsigned char>(c)] = v++;
    for (char c = 'a'; c <= 'z'; ++c) table[static_cast<unsigned char>(c)] = v++;
    for (char c = '0'; c <= '9'; ++c) table[static_cast<unsigned char>(c)] = v++;
    table['-'] = v++;
    table['_'] = v++;
    return table;
}();

// Unpadded base64url (RFC 7515 section 2); nullopt on any other character
// or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t bits = 0;
    int bit_count = 0;
    for (const char c : text) {
        const auto v = base64url_values[static_cast<unsigned char>(c)];
        if (v < 0) return std::nullopt;
        bits = (bits << 6) | static_cast<std::uint32_t>(v);
        bit_count += 6;
        if (bit_count >= 8) {
            bit_count -= 8;
            out.push_back(static_cast<char>((bits >> bit_count) & 0xffU));
        }
    }
    return out;
}

struct token_parts {
    std::string_view header;
    std::string_view payload;
    std::string_view signature;
};

std::optional<token_parts> split_token(std::string_view token) {
    const auto first = token.find('.');
    if (first == std::string_view::npos) return std::nullopt;
    const auto second = token.find('.', first + 1);
    if (second == std::string_view::npos) return std::nullopt;
    if (token.find('.', second + 1) != std::string_view::npos) return std::nullopt;
    token_parts parts{token.substr(0, first), token.substr(first + 1, second - first - 1),
                      token.substr(second + 1)};
    if (parts.header.empty() || parts.payload.empty() || parts.signature.empty()) {
        return std::nullopt;  // an unsigned token has no signature part
    }
    return parts;
}

// ---- algorithm pinning ----------------------------------------------------

struct pinned_alg {
    jwt_alg_t alg;
    const std::string* key;
};

// Reads `alg` from the (not yet verified) header and picks the one key that
// may verify it: HS256 only with the HS256 secret, RS256 only with the RSA
// public key. So an HS256 token "signed" with the public PEM as secret
// (alg confusion) meets the HS256 secret or nothing.
std::expected<pinned_alg, std::string> pin_alg(std::string_view header_b64, const auth_keys& keys) {
    const auto header_text = base64url_decode(header_b64);
    if (!header_text) return std::unexpected("malformed token: header is not base64url");
    const auto header = json::parse(*header_text, nullptr, false);
    if (header.is_discarded() || !header.is_object()) {
        return std::unexpected("malformed token: header is not a JSON object");
    }
    if (header.contains("crit")) return std::unexpected("token header has crit: not supported");
    const auto alg = header.find("alg");
    if (alg == header.end() || !alg->is_string()) {
        return std::unexpected("malformed token: header has no alg");
    }
    const auto& name = alg->get_ref<const std::string&>();
    if (name == "HS256" && !keys.hs256_secret.empty()) {
        return pinned_alg{JWT_ALG_HS256, &keys.hs256_secret};
    }
    if (name == "RS256" && !keys.rs256_public_pem.empty()) {
        return pinned_alg{JWT_ALG_RS256, &keys.rs256_public_pem};
    }
    return std::unexpected("token alg not accepted (accepted: " +
                           std::string(keys.hs256_secret.empty() ? "" : "HS256 ") +
                           std::string(keys.rs256_public_pem.empty() ? "" : "RS256") + ")");
}

struct jwt_deleter {
    void operator()(jwt_t* jwt) const noexcept { jwt_free(jwt); }
};
using jwt_ptr = std::unique_ptr<jwt_t, jwt_deleter>;

struct malloc_deleter {
    void operator()(char* text) const noexcept { std::free(text); }  // NOLINT(*-no-malloc)
};

// Verifies the signature with the pinned key; the claims as JSON.
std::expected<json, std::string> verified_claims(std::string_view token, const pinned_alg& pin) {
    const std::string token_text(token);  // libjwt wants a C string
    jwt_t* raw = nullptr;
    const int rc = jwt_decode(&raw, token_text.c_str(),
                              reinterpret_cast<const unsigned char*>(pin.key->data()),
                              static_cast<int>(pin.key->size()));
    const jwt_ptr jwt(raw);
    if (rc != 0 || !jwt) return std::unexpected("bad token signature or encoding");
    // libjwt 1.10 verifies with whatever alg the header names: make sure it
    // is the one pinned above.
    if (jwt_get_alg(jwt.get()) != pin.alg) return std::unexpected("token alg mismatch");
    const std::unique_ptr<char, malloc_deleter> text(jwt_get_grants_json(jwt.get(), nullptr));
    if (!text) return std::unexpected("malformed token: no claims");
    auto claims = json::parse(text.get(), nullptr, false);
    if (claims.is_discarded() || !claims.is_object()) {
        return std::unexpected("malformed token: claims are not a JSON object");
    }
    return claims;
}

// ---- claims -----------------------------------------------------------------

double seconds_since_epoch(std::chrono::system_clock::time_point t) {
    return std::chrono::duration<double>(t.time_since_epoch()).count();
}

// nullopt: fine; else why the token is refused.
std::optional<std::string> check_times(const json& claims,
                                       std::chrono::system_clock::time_point now) {
    const double now_s = seconds_since_epoch(now);
    const auto leeway_s = static_cast<double>(clock_leeway.count());
    if (const auto exp = claims.find("exp"); exp != claims.end()) {
        if (!exp->is_number()) return "malformed token: exp is not a number";
        if (!(now_s < exp->get<double>() + leeway_s)) return "token expired";
    }
    if (const auto nbf = claims.find("nbf"); nbf != claims.end()) {
        if (!nbf->is_number()) return "malformed token: nbf is not a number";
        if (now_s + leeway_s < nbf->get<double>()) return "token not yet valid (nbf)";
    }
    return std::nullopt;
}

std::expected<std::vector<std::string>, std::string> string_array(const json& value,
                                                                  std::string_view name) {
    if (!value.is_array()) {
        return std::unexpected("malformed token: " + std::string(name) + " is not an array");
    }
    if (value.size() > claim_entries_max) {
        return std::unexpected("malformed token: " + std::string(name) + " has too many entries");
    }
    std::vector<std::string> out;
    out.reserve(value.size());
    for (const auto& item : value) {
        if (!item.is_string()) {
            return std::unexpected("malformed token: " + std::string(name) +
                                   " has an entry that is not a string");
        }
        out.push_back(item.get<std::string>());
    }
    return out;
}

std::optional<std::string> read_projects(const json& claims, grant& g) {
    const auto it = claims.find("projects");
    if (it == claims.end()) return std::nullopt;  // no project allowed
    auto projects = string_array(*it, "projects");
    if (!projects) return std::move(projects.error());
    g.all_projects = std::ranges::find(*projects, "*") != projects->end();
    std::erase(*projects, "*");
    g.projects = std::move(*projects);
    return std::nullopt;
}

std::optional<std::string> read_subjects(const json& claims, grant& g) {
    const auto it = claims.find("subjects");
    if (it == claims.end()) return std::nullopt;  // the default {">"}
    auto subjects = string_array(*it, "subjects");
    if (!subjects) return std::move(subjects.error());
    for (const auto& pattern : *subjects) {
        if (protocol::validate_pattern(pattern) != protocol::errc::none) {
            return "malformed token: subjects has an invalid pattern";
        }
    }
    g.subjects = std::move(*subjects);
    return std::nullopt;
}

std::optional<std::string> read_roles(const json& claims, grant& g) {
    std::vector<std::string> roles;
    if (const auto it = claims.find("roles"); it != claims.end()) {
        auto list = string_array(*it, "roles");
        if (!list) return std::move(list.error());
        roles = std::move(*list);
    }
    if (const auto it = claims.find("role"); it != claims.end()) {
        if (!it->is_string()) return "malformed token: role is not a string";
        roles.push_back(it->get<std::string>());
    }
    g.admin = std::ranges::find(roles, "admin") != roles.end();
    return std::nullopt;
}

std::expected<grant, std::string> read_grant(const json& claims) {
    grant g;
    if (auto error = read_projects(claims, g)) return std::unexpected(std::move(*error));
    if (auto error = read_subjects(claims, g)) return std::unexpected(std::move(*error));
    if (auto error = read_roles(claims, g)) return std::unexpected(std::move(*error));
    if (const auto sub = claims.find("sub"); sub != claims.end()) {
        if (!sub->is_string()) return std::unexpected("malformed token: sub is not a string");
        g.subject_claim = sub->get<std::string>();
    }
    return g;
}

// ---- find_token ---------------------------------------------------------------

std::string_view trim(std::string_view text) noexcept {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
    return text;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return std::ranges::equal(a, b, [](char x, char y) {
        const auto lower = [](char c) {
            return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
        };
        return lower(x) == lower(y);
    });
}

// "Bearer T" (scheme case-insensitive, RFC 7235); empty for another scheme.
std::string_view bearer_token(std::string_view header) noexcept {
    header = trim(header);
    constexpr std::string_view scheme = "bearer";
    if (header.size() <= scheme.size() || !iequals(header.substr(0, scheme.size()), scheme))
        return {};
    if (header[scheme.size()] != ' ' && header[scheme.size()] != '\t') return {};
    return trim(header.substr(scheme.size()));
}

// The value of cookie `name` in a Cookie header ("a=1; b=2"), without quotes.
std::string_view cookie_value(std::string_view header, std::string_view name) noexcept {
    while (!header.empty()) {
        const auto end = header.find(';');
        const auto pair = trim(header.substr(0, end));
        header = end == std::string_view::npos ? std::string_view{} : header.substr(end + 1);
        const auto eq = pair.find('=');
        if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
        auto value = trim(pair.substr(eq + 1));
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        return value;
    }
    return {};
}

}  // namespace

std::expected<auth_keys, std::string> load_auth_keys(const std::filesystem::path& hs256_secret_file,
                                                     const std::filesystem::path& rs256_pem_file) {
    auth_keys keys;
    if (!hs256_secret_file.empty()) {
        auto secret = read_key_file(hs256_secret_file, "HS256 secret file");
        if (!secret) return std::unexpected(std::move(secret.error()));
        drop_trailing_newline(*secret);
        if (secret->empty()) {
            return std::unexpected("HS256 secret file " + hs256_secret_file.string() + ": empty");
        }
        keys.hs256_secret = std::move(*secret);
    }
    if (!rs256_pem_file.empty()) {
        auto pem = read_key_file(rs256_pem_file, "RS256 public key file");
        if (!pem) return std::unexpected(std::move(pem.error()));
        if (!is_rsa_public_pem(*pem)) {
            return std::unexpected("RS256 public key file " + rs256_pem_file.string() +
                                   ": not a PEM RSA public key (-----BEGIN PUBLIC KEY-----)");
        }
        keys.rs256_public_pem = std::move(*pem);
    }
    return keys;
}

token_verifier::token_verifier(auth_keys keys) : _keys(std::move(keys)) {}

std::expected<grant, std::string> token_verifier::verify(
    std::string_view token, std::chrono::system_clock::time_point now) const {
    if (token.empty()) return std::unexpected("no token");
    if (token.size() > token_bytes_max) return std::unexpected("token too large");
    const auto parts = split_token(token);
    if (!parts) return std::unexpected("malformed token: not three non-empty parts");
    const auto pin = pin_alg(parts->header, _keys);
    if (!pin) return std::unexpected(pin.error());
    const auto claims = verified_claims(token, *pin);
    if (!claims) return std::unexpected(claims.error());
    if (auto error = check_times(*claims, now)) return std::unexpected(std::move(*error));
    return read_grant(*claims);
}

std::string_view find_token(std::string_view authorization_header, std::string_view cookie_header,
                            std::string_view query_token) noexcept {
    if (const auto bearer = bearer_token(authorization_header); !bearer.empty()) return bearer;
    if (const auto cookie = cookie_value(cookie_header, token_cookie_name); !cookie.empty()) {
        return cookie;
    }
    return query_token;
}

private_subjects::private_subjects(std::vector<std::string> patterns)
    : _patterns(std::move(patterns)) {
    for (const auto& pattern : _patterns) {
        NG_ASSERT(protocol::validate_pattern(pattern) == protocol::errc::none,
                  "private subject patterns must be valid");
    }
}

bool private_subjects::matches_subject(std::string_view subject) const noexcept {
    return std::ranges::any_of(
        _patterns, [&](const std::string& p) { return protocol::subject_matches(p, subject); });
}

bool private_subjects::names_private(std::string_view pattern) const noexcept {
    return std::ranges::any_of(
        _patterns, [&](const std::string& p) { return protocol::pattern_covers(p, pattern); });
}

bool private_subjects::may_reach_private(std::string_view pattern) const noexcept {
    return std::ranges::any_of(
        _patterns, [&](const std::string& p) { return protocol::patterns_overlap(p, pattern); });
}

access check_access(const grant& g, std::string_view project,
                    std::span<const std::string> requested_patterns,
                    const private_subjects& privates) noexcept {
    if (!g.all_projects && std::ranges::find(g.projects, project) == g.projects.end()) {
        return access::forbidden_project;
    }
    for (const auto& requested : requested_patterns) {
        if (protocol::validate_pattern(requested) != protocol::errc::none) {
            return access::forbidden_subject;
        }
        const bool covered = std::ranges::any_of(g.subjects, [&](const std::string& allowed) {
            return protocol::pattern_covers(allowed, requested);
        });
        if (!covered) return access::forbidden_subject;
        if (!g.admin && privates.names_private(requested)) return access::private_needs_admin;
    }
    return access::ok;
}

std::string_view to_string(access a) noexcept {
    switch (a) {
        case access::ok:
            return "ok";
        case access::forbidden_project:
            return "forbidden_project";
        case access::forbidden_subject:
            return "forbidden_subject";
        case access::private_needs_admin:
            return "private_needs_admin";
    }
    return "unknown";
}

}  // namespace nagare::gateway
