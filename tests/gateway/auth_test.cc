// tools/gateway/auth.h: token verification (HS256, RS256, alg pinning, time
// claims, claim parsing), key loading, token lookup, access checks.
#include "tools/gateway/auth.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <unistd.h>

namespace nagare::gateway {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::system_clock;

const std::string hs_secret = "a-test-secret-of-thirty-two-bytes!";

// ---- helpers ------------------------------------------------------------------

struct rsa_pems {
    std::string private_pem;
    std::string public_pem;
};

std::string bio_text(BIO* bio) {
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio, &data);
    return {data, static_cast<std::size_t>(size)};
}

rsa_pems generate_rsa() {
    EVP_PKEY* key = EVP_RSA_gen(2048);
    EXPECT_NE(key, nullptr);
    BIO* priv = BIO_new(BIO_s_mem());
    BIO* pub = BIO_new(BIO_s_mem());
    EXPECT_EQ(PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
    EXPECT_EQ(PEM_write_bio_PUBKEY(pub, key), 1);
    rsa_pems pems{bio_text(priv), bio_text(pub)};
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(key);
    return pems;
}

// Key generation is slow (ASan especially): two keys for the whole binary.
const rsa_pems& rsa_key() {
    static const rsa_pems pems = generate_rsa();
    return pems;
}
const rsa_pems& other_rsa_key() {
    static const rsa_pems pems = generate_rsa();
    return pems;
}

// A token over `claims_json` signed by libjwt with `alg` and `key`.
std::string make_token(jwt_alg_t alg, std::string_view key, const std::string& claims_json) {
    jwt_t* jwt = nullptr;
    EXPECT_EQ(jwt_new(&jwt), 0);
    EXPECT_EQ(jwt_add_grants_json(jwt, claims_json.c_str()), 0);
    EXPECT_EQ(
        jwt_set_alg(jwt, alg,
                    key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                    static_cast<int>(key.size())),
        0);
    char* text = jwt_encode_str(jwt);
    EXPECT_NE(text, nullptr);
    std::string token = text == nullptr ? std::string() : std::string(text);
    std::free(text);  // NOLINT(*-no-malloc)
    jwt_free(jwt);
    return token;
}

std::string hs_token(const std::string& claims_json) {
    return make_token(JWT_ALG_HS256, hs_secret, claims_json);
}
std::string rs_token(const std::string& claims_json) {
    return make_token(JWT_ALG_RS256, rsa_key().private_pem, claims_json);
}

std::string base64url(std::string_view bytes) {
    static constexpr char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const auto n = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16) |
                       (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8) |
                       static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        out += alphabet[(n >> 6) & 63];
        out += alphabet[n & 63];
    }
    const auto rest = bytes.size() - i;
    if (rest > 0) {
        unsigned n = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16;
        if (rest == 2) n |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8;
        out += alphabet[(n >> 18) & 63];
        out += alphabet[(n >> 12) & 63];
        if (rest == 2) out += alphabet[(n >> 6) & 63];
    }
    return out;
}

// The payload and signature of `token` under a hand-written header.
std::string with_header(const std::string& token, std::string_view header_json) {
    return base64url(header_json) + token.substr(token.find('.'));
}

long unix_now() {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::seconds>(clock_type::now().time_since_epoch())
            .count());
}

token_verifier hs_verifier() { return token_verifier(auth_keys{hs_secret, ""}); }
token_verifier rs_verifier() { return token_verifier(auth_keys{"", rsa_key().public_pem}); }
token_verifier both_verifier() {
    return token_verifier(auth_keys{hs_secret, rsa_key().public_pem});
}

const std::string basic_claims = R"({"sub":"alice","projects":["p1","p2"]})";

class temp_dir {
public:
    temp_dir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "nagare-auth-XXXXXX").string();
        EXPECT_NE(mkdtemp(pattern.data()), nullptr);
        _path = pattern;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(_path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    std::filesystem::path write(const std::string& name, const std::string& bytes) const {
        const auto path = _path / name;
        std::ofstream(path, std::ios::binary) << bytes;
        return path;
    }

private:
    std::filesystem::path _path;
};

// ---- signatures and algorithms -------------------------------------------------

TEST(TokenVerifier, Hs256GoodToken) {
    const auto g = hs_verifier().verify(hs_token(basic_claims), clock_type::now());
    ASSERT_TRUE(g.has_value()) << g.error();
    EXPECT_EQ(g->subject_claim, "alice");
    EXPECT_EQ(g->projects, (std::vector<std::string>{"p1", "p2"}));
    EXPECT_FALSE(g->all_projects);
    EXPECT_EQ(g->subjects, (std::vector<std::string>{">"}));
    EXPECT_FALSE(g->admin);
}

TEST(TokenVerifier, Rs256GoodToken) {
    const auto g = rs_verifier().verify(rs_token(basic_claims), clock_type::now());
    ASSERT_TRUE(g.has_value()) << g.error();
    EXPECT_EQ(g->subject_claim, "alice");
    EXPECT_EQ(g->projects.size(), 2U);
}

TEST(TokenVerifier, BothKeysAcceptBothAlgorithms) {
    const auto v = both_verifier();
    EXPECT_TRUE(v.verify(hs_token(basic_claims), clock_type::now()).has_value());
    EXPECT_TRUE(v.verify(rs_token(basic_claims), clock_type::now()).has_value());
}

TEST(TokenVerifier, BadHs256SignatureRefused) {
    const auto token = make_token(JWT_ALG_HS256, "another-secret", basic_claims);
    const auto g = hs_verifier().verify(token, clock_type::now());
    ASSERT_FALSE(g.has_value());
    EXPECT_EQ(g.error().find(token), std::string::npos) << "the error must not hold the token";
}

TEST(TokenVerifier, FlippedSignatureByteRefused) {
    auto token = hs_token(basic_claims);
    token.back() = token.back() == 'A' ? 'B' : 'A';
    EXPECT_FALSE(hs_verifier().verify(token, clock_type::now()).has_value());
}

TEST(TokenVerifier, TamperedPayloadRefused) {
    const auto token = hs_token(basic_claims);
    const auto forged_payload = base64url(R"({"sub":"alice","projects":["*"],"roles":["admin"]})");
    const auto first = token.find('.');
    const auto second = token.find('.', first + 1);
    const auto forged = token.substr(0, first + 1) + forged_payload + token.substr(second);
    EXPECT_FALSE(hs_verifier().verify(forged, clock_type::now()).has_value());
}

TEST(TokenVerifier, Rs256FromAnotherKeyRefused) {
    const auto token = make_token(JWT_ALG_RS256, other_rsa_key().private_pem, basic_claims);
    EXPECT_FALSE(rs_verifier().verify(token, clock_type::now()).has_value());
}

TEST(TokenVerifier, AlgNoneRefused) {
    const auto unsigned_token = make_token(JWT_ALG_NONE, "", basic_claims);
    for (const auto& v : {hs_verifier(), rs_verifier(), both_verifier()}) {
        EXPECT_FALSE(v.verify(unsigned_token, clock_type::now()).has_value());
        // With a made-up signature part, so the shape check is not what refuses it.
        EXPECT_FALSE(v.verify(unsigned_token + "c2ln", clock_type::now()).has_value());
        const auto relabelled = with_header(hs_token(basic_claims), R"({"alg":"none"})");
        EXPECT_FALSE(v.verify(relabelled, clock_type::now()).has_value());
    }
}

TEST(TokenVerifier, AlgConfusionHs256WithPublicKeyAsSecretRefused) {
    // The attacker knows the public key and uses its PEM as the HMAC secret.
    const auto forged = make_token(JWT_ALG_HS256, rsa_key().public_pem, basic_claims);
    const auto only_rs = rs_verifier().verify(forged, clock_type::now());
    ASSERT_FALSE(only_rs.has_value());
    EXPECT_NE(only_rs.error().find("alg"), std::string::npos) << only_rs.error();
    EXPECT_FALSE(both_verifier().verify(forged, clock_type::now()).has_value());
}

TEST(TokenVerifier, AlgWithoutConfiguredKeyRefused) {
    EXPECT_FALSE(hs_verifier().verify(rs_token(basic_claims), clock_type::now()).has_value());
    EXPECT_FALSE(rs_verifier().verify(hs_token(basic_claims), clock_type::now()).has_value());
    const auto hs384 = make_token(JWT_ALG_HS384, hs_secret, basic_claims);
    EXPECT_FALSE(both_verifier().verify(hs384, clock_type::now()).has_value());
    const token_verifier no_keys(auth_keys{});
    EXPECT_FALSE(no_keys.verify(hs_token(basic_claims), clock_type::now()).has_value());
}

TEST(TokenVerifier, HeaderAlgRelabelledRefused) {
    // An RS256 signature presented as HS256, and the reverse.
    const auto v = both_verifier();
    EXPECT_FALSE(v.verify(with_header(rs_token(basic_claims), R"({"alg":"HS256","typ":"JWT"})"),
                          clock_type::now())
                     .has_value());
    EXPECT_FALSE(v.verify(with_header(hs_token(basic_claims), R"({"alg":"RS256","typ":"JWT"})"),
                          clock_type::now())
                     .has_value());
}

TEST(TokenVerifier, CritHeaderRefused) {
    const auto token =
        with_header(hs_token(basic_claims), R"({"alg":"HS256","typ":"JWT","crit":["b64"]})");
    const auto g = hs_verifier().verify(token, clock_type::now());
    ASSERT_FALSE(g.has_value());
    EXPECT_NE(g.error().find("crit"), std::string::npos);
}

// ---- malformed tokens -----------------------------------------------------------

TEST(TokenVerifier, MalformedTokensRefused) {
    const auto good = hs_token(basic_claims);
    const auto first = good.find('.');
    const std::vector<std::string> bad = {
        "",
        "garbage",
        "a.b",
        good.substr(0, good.rfind('.')),                                   // two parts
        good + ".extra",                                                   // four parts
        "!!!." + good.substr(first + 1),                                   // header not base64url
        base64url("not json") + good.substr(first),                        // header not JSON
        base64url("[1,2]") + good.substr(first),                           // header not an object
        base64url(R"({"typ":"JWT"})") + good.substr(first),                // no alg
        base64url(R"({"alg":7})") + good.substr(first),                    // alg not a string
        good.substr(0, first + 1) + "%%%" + good.substr(good.rfind('.')),  // payload not base64url
        "..",
        std::string(1, '\0') + good,
    };
    for (const auto& token : bad) {
        EXPECT_FALSE(hs_verifier().verify(token, clock_type::now()).has_value()) << token;
    }
}

TEST(TokenVerifier, HugeTokenRefusedBeforeParsing) {
    const std::string padding(token_bytes_max, 'a');
    const auto claims = R"({"projects":["p1"],"pad":")" + padding + R"("})";
    const auto token = hs_token(claims);
    ASSERT_GT(token.size(), token_bytes_max);
    const auto g = hs_verifier().verify(token, clock_type::now());
    ASSERT_FALSE(g.has_value());
    EXPECT_NE(g.error().find("too large"), std::string::npos);
}

TEST(TokenVerifier, ClaimsOfWrongTypeRefused) {
    const std::vector<std::string> bad = {
        R"({"projects":"p1"})",
        R"({"projects":[1]})",
        R"({"projects":["p1"],"subjects":"task.*"})",
        R"({"projects":["p1"],"subjects":["task..x"]})",
        R"({"projects":["p1"],"subjects":["a.>.b"]})",
        R"({"projects":["p1"],"roles":"admin"})",
        R"({"projects":["p1"],"role":["admin"]})",
        R"({"projects":["p1"],"sub":5})",
        R"({"projects":["p1"],"exp":"tomorrow"})",
    };
    for (const auto& claims : bad) {
        EXPECT_FALSE(hs_verifier().verify(hs_token(claims), clock_type::now()).has_value())
            << claims;
    }
}

// ---- time claims ------------------------------------------------------------------

std::string timed_claims(std::string_view name, long value) {
    return R"({"projects":["p1"],")" + std::string(name) + R"(":)" + std::to_string(value) + "}";
}

TEST(TokenVerifier, ExpiredRefused) {
    const auto g =
        hs_verifier().verify(hs_token(timed_claims("exp", unix_now() - 120)), clock_type::now());
    ASSERT_FALSE(g.has_value());
    EXPECT_NE(g.error().find("expired"), std::string::npos);
}

TEST(TokenVerifier, NotBeforeInTheFutureRefused) {
    const auto g =
        hs_verifier().verify(hs_token(timed_claims("nbf", unix_now() + 120)), clock_type::now());
    ASSERT_FALSE(g.has_value());
    EXPECT_NE(g.error().find("nbf"), std::string::npos);
}

TEST(TokenVerifier, TimesWithinLeewayAccepted) {
    const auto v = hs_verifier();
    EXPECT_TRUE(v.verify(hs_token(timed_claims("exp", unix_now() - 10)), clock_type::now()));
    EXPECT_TRUE(v.verify(hs_token(timed_claims("nbf", unix_now() + 10)), clock_type::now()));
    EXPECT_TRUE(v.verify(hs_token(timed_claims("exp", unix_now() + 3600)), clock_type::now()));
}

TEST(TokenVerifier, LeewayEdgeIsThirtySeconds) {
    const auto v = hs_verifier();
    const clock_type::time_point at{std::chrono::seconds{1'700'000'000}};
    const auto exp_token = hs_token(timed_claims("exp", 1'700'000'000));
    EXPECT_TRUE(v.verify(exp_token, at + 29s).has_value());
    EXPECT_FALSE(v.verify(exp_token, at + 30s).has_value());
    const auto nbf_token = hs_token(timed_claims("nbf", 1'700'000'000));
    EXPECT_TRUE(v.verify(nbf_token, at - 30s).has_value());
    EXPECT_FALSE(v.verify(nbf_token, at - 31s).has_value());
}

TEST(TokenVerifier, FractionalExpHonoured) {
    const auto token = hs_token(R"({"projects":["p1"],"exp":1700000000.5})");
    const clock_type::time_point at{std::chrono::seconds{1'700'000'000}};
    EXPECT_TRUE(hs_verifier().verify(token, at).has_value());
    EXPECT_FALSE(hs_verifier().verify(token, at + 31s).has_value());
}

// ---- claims -----------------------------------------------------------------------

TEST(TokenVerifier, ClaimsParsed) {
    const auto g = hs_verifier().verify(
        hs_token(
            R"({"projects":["*"],"subjects":["task.*","order.>"],"roles":["viewer","admin"]})"),
        clock_type::now());
    ASSERT_TRUE(g.has_value()) << g.error();
    EXPECT_TRUE(g->all_projects);
    EXPECT_EQ(g->subjects, (std::vector<std::string>{"task.*", "order.>"}));
    EXPECT_TRUE(g->admin);
    EXPECT_TRUE(g->subject_claim.empty());
}

TEST(TokenVerifier, SingleRoleClaim) {
    const auto admin =
        hs_verifier().verify(hs_token(R"({"projects":["p"],"role":"admin"})"), clock_type::now());
    ASSERT_TRUE(admin.has_value());
    EXPECT_TRUE(admin->admin);
    const auto viewer =
        hs_verifier().verify(hs_token(R"({"projects":["p"],"role":"viewer"})"), clock_type::now());
    ASSERT_TRUE(viewer.has_value());
    EXPECT_FALSE(viewer->admin);
}

// ---- access -------------------------------------------------------------------------

std::vector<std::string> patterns(std::initializer_list<const char*> list) {
    return {list.begin(), list.end()};
}

TEST(CheckAccess, MissingProjectsClaimIsForbiddenProject) {
    const auto g = hs_verifier().verify(hs_token(R"({"sub":"bob"})"), clock_type::now());
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(check_access(*g, "p1", patterns({">"}), private_subjects()),
              access::forbidden_project);
}

TEST(CheckAccess, ProjectList) {
    grant g;
    g.projects = {"p1", "p2"};
    const private_subjects privates;
    EXPECT_EQ(check_access(g, "p1", patterns({"task.*"}), privates), access::ok);
    EXPECT_EQ(check_access(g, "p3", patterns({"task.*"}), privates), access::forbidden_project);
    EXPECT_EQ(check_access(g, "p", patterns({"task.*"}), privates), access::forbidden_project);
}

TEST(CheckAccess, StarAllowsEveryProject) {
    const auto g = hs_verifier().verify(hs_token(R"({"projects":["*"]})"), clock_type::now());
    ASSERT_TRUE(g.has_value());
    EXPECT_EQ(check_access(*g, "anything", patterns({"task.*"}), private_subjects()), access::ok);
}

TEST(CheckAccess, SubjectsMustBeCovered) {
    grant g;
    g.all_projects = true;
    g.subjects = {"task.*", "order.>"};
    const private_subjects privates;
    EXPECT_EQ(check_access(g, "p", patterns({"task.created"}), privates), access::ok);
    EXPECT_EQ(check_access(g, "p", patterns({"task.*", "order.a.b"}), privates), access::ok);
    EXPECT_EQ(check_access(g, "p", patterns({"order.*.x"}), privates), access::ok);
    EXPECT_EQ(check_access(g, "p", patterns({"task.>"}), privates), access::forbidden_subject);
    EXPECT_EQ(check_access(g, "p", patterns({">"}), privates), access::forbidden_subject);
    EXPECT_EQ(check_access(g, "p", patterns({"task.*", "user.*"}), privates),
              access::forbidden_subject);
    EXPECT_EQ(check_access(g, "p", patterns({"task..x"}), privates), access::forbidden_subject);
    EXPECT_EQ(check_access(g, "p", patterns({}), privates), access::ok);
}

TEST(CheckAccess, PrivateSubjectsNeedAdmin) {
    grant user;
    user.all_projects = true;  // subjects default {">"}
    grant admin = user;
    admin.admin = true;
    const private_subjects privates;  // {"audit.>"}
    for (const auto* p : {"audit.*", "audit.>", "audit.login", "audit.login.failed"}) {
        EXPECT_EQ(check_access(user, "p", patterns({p}), privates), access::private_needs_admin)
            << p;
        EXPECT_EQ(check_access(admin, "p", patterns({p}), privates), access::ok) << p;
    }
    // Wildcards that may reach audit.* are allowed; the gateway filters per connection.
    EXPECT_EQ(check_access(user, "p", patterns({">"}), privates), access::ok);
    EXPECT_EQ(check_access(user, "p", patterns({"*.*"}), privates), access::ok);
    EXPECT_TRUE(privates.may_reach_private(">"));
    EXPECT_TRUE(privates.may_reach_private("*.*"));
}

TEST(PrivateSubjects, Rules) {
    const private_subjects privates(patterns({"audit.>", "secret.key"}));
    EXPECT_TRUE(privates.matches_subject("audit.login"));
    EXPECT_TRUE(privates.matches_subject("audit.login.failed"));
    EXPECT_TRUE(privates.matches_subject("secret.key"));
    EXPECT_FALSE(privates.matches_subject("secret.other"));
    EXPECT_FALSE(privates.matches_subject("task.audit"));
    EXPECT_FALSE(privates.matches_subject("auditx.login"));

    EXPECT_TRUE(privates.names_private("audit.*"));
    EXPECT_TRUE(privates.names_private("audit.>"));
    EXPECT_TRUE(privates.names_private("audit.a.*"));
    EXPECT_TRUE(privates.names_private("secret.key"));
    EXPECT_FALSE(privates.names_private(">"));
    EXPECT_FALSE(privates.names_private("*.*"));
    EXPECT_FALSE(privates.names_private("*.login"));
    EXPECT_FALSE(privates.names_private("secret.*"));
    EXPECT_FALSE(privates.names_private("task.*"));

    EXPECT_TRUE(privates.may_reach_private(">"));
    EXPECT_TRUE(privates.may_reach_private("*.*"));
    EXPECT_TRUE(privates.may_reach_private("*.login"));
    EXPECT_TRUE(privates.may_reach_private("secret.*"));
    EXPECT_TRUE(privates.may_reach_private("audit.*"));
    EXPECT_FALSE(privates.may_reach_private("task.*"));
    EXPECT_TRUE(privates.may_reach_private("*.*.*.*.x"));  // audit.a.b.c.x
    EXPECT_FALSE(privates.may_reach_private("task.>"));
    EXPECT_FALSE(privates.may_reach_private("secret.key.more"));
}

TEST(PrivateSubjects, NoneConfigured) {
    const private_subjects none(std::vector<std::string>{});
    EXPECT_FALSE(none.matches_subject("audit.login"));
    EXPECT_FALSE(none.names_private("audit.*"));
    EXPECT_FALSE(none.may_reach_private(">"));
}

// ---- find_token -----------------------------------------------------------------------

TEST(FindToken, Order) {
    EXPECT_EQ(find_token("Bearer H", "nagare_token=C", "Q"), "H");
    EXPECT_EQ(find_token("", "nagare_token=C", "Q"), "C");
    EXPECT_EQ(find_token("", "", "Q"), "Q");
    EXPECT_EQ(find_token("", "", ""), "");
}

TEST(FindToken, AuthorizationHeader) {
    EXPECT_EQ(find_token("bearer  abc.def.ghi ", "", ""), "abc.def.ghi");
    EXPECT_EQ(find_token("BEARER x", "", ""), "x");
    EXPECT_EQ(find_token("Basic dXNlcjpwdw==", "nagare_token=C", ""), "C");
    EXPECT_EQ(find_token("Bearer", "", "Q"), "Q");
    EXPECT_EQ(find_token("Bearer ", "", "Q"), "Q");
    EXPECT_EQ(find_token("Bearerx", "", "Q"), "Q");
}

TEST(FindToken, CookieParsing) {
    EXPECT_EQ(find_token("", "a=1; nagare_token=T; b=2", ""), "T");
    EXPECT_EQ(find_token("", "a=1;nagare_token=T;b=2", ""), "T");
    EXPECT_EQ(find_token("", "  nagare_token = T  ;", ""), "T");
    EXPECT_EQ(find_token("", "nagare_token=\"T\"", ""), "T");
    EXPECT_EQ(find_token("", "a=1; x_nagare_token=X; nagare_token_old=O", "Q"), "Q");
    EXPECT_EQ(find_token("", "a=1; b=2", "Q"), "Q");
    EXPECT_EQ(find_token("", "nagare_token=; a=1", "Q"), "Q");
    EXPECT_EQ(find_token("", "junk; nagare_token=T", ""), "T");
    EXPECT_EQ(find_token("", "a=x=y; nagare_token=eyJ.a=.b", ""), "eyJ.a=.b");
}

// ---- load_auth_keys ---------------------------------------------------------------------

TEST(LoadAuthKeys, ReadsBothAndDropsTrailingNewline) {
    const temp_dir dir;
    const auto secret = dir.write("secret", hs_secret + "\n");
    const auto pem = dir.write("key.pem", rsa_key().public_pem);
    const auto keys = load_auth_keys(secret, pem);
    ASSERT_TRUE(keys.has_value()) << keys.error();
    EXPECT_EQ(keys->hs256_secret, hs_secret);
    EXPECT_EQ(keys->rs256_public_pem, rsa_key().public_pem);
    // The loaded keys verify tokens.
    const token_verifier v(*keys);
    EXPECT_TRUE(v.verify(hs_token(basic_claims), clock_type::now()).has_value());
    EXPECT_TRUE(v.verify(rs_token(basic_claims), clock_type::now()).has_value());
}

TEST(LoadAuthKeys, CrLfAndNoNewline) {
    const temp_dir dir;
    EXPECT_EQ(load_auth_keys(dir.write("a", "s1\r\n"), {})->hs256_secret, "s1");
    EXPECT_EQ(load_auth_keys(dir.write("b", "s2"), {})->hs256_secret, "s2");
    EXPECT_EQ(load_auth_keys(dir.write("c", "s3\n\n"), {})->hs256_secret, "s3\n");
}

TEST(LoadAuthKeys, EmptyPathsGiveEmptyKeys) {
    const auto keys = load_auth_keys({}, {});
    ASSERT_TRUE(keys.has_value());
    EXPECT_TRUE(keys->hs256_secret.empty());
    EXPECT_TRUE(keys->rs256_public_pem.empty());
}

TEST(LoadAuthKeys, Errors) {
    const temp_dir dir;
    const auto missing = load_auth_keys("/nonexistent/nagare-secret", {});
    ASSERT_FALSE(missing.has_value());
    EXPECT_NE(missing.error().find("/nonexistent/nagare-secret"), std::string::npos);

    const auto empty = load_auth_keys(dir.write("empty", "\n"), {});
    ASSERT_FALSE(empty.has_value());
    EXPECT_NE(empty.error().find("empty"), std::string::npos);

    const auto not_pem = load_auth_keys({}, dir.write("junk.pem", "hello"));
    ASSERT_FALSE(not_pem.has_value());
    EXPECT_NE(not_pem.error().find("PEM"), std::string::npos);

    // A private key where the public one belongs is refused, not half-used.
    EXPECT_FALSE(load_auth_keys({}, dir.write("priv.pem", rsa_key().private_pem)).has_value());

    const auto too_big = load_auth_keys(dir.write("big", std::string(100'000, 'x')), {});
    ASSERT_FALSE(too_big.has_value());
    EXPECT_NE(too_big.error().find("larger"), std::string::npos);
}

}  // namespace
}  // namespace nagare::gateway
