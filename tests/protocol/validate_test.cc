#include "protocol/validate.h"

#include <gtest/gtest.h>

#include <string>

#include "protocol/limits.h"

namespace nagare::protocol {
namespace {

TEST(Validate, Project) {
    EXPECT_EQ(validate_project("proj-1"), errc::none);
    EXPECT_EQ(validate_project("org:acme.team_1-x"), errc::none);
    EXPECT_EQ(validate_project(std::string(project_bytes_max, 'p')), errc::none);
    EXPECT_EQ(validate_project(std::string(project_bytes_max + 1, 'p')), errc::bad_project);
    EXPECT_EQ(validate_project(""), errc::bad_project);
    EXPECT_EQ(validate_project("a b"), errc::bad_project);
    EXPECT_EQ(validate_project("a/b"), errc::bad_project);
    EXPECT_EQ(validate_project(std::string("a\0b", 3)), errc::bad_project);
}

TEST(Validate, MsgId) {
    EXPECT_EQ(validate_msg_id("01JABCDEF0123456789ABCDEFG"), errc::none);
    EXPECT_EQ(validate_msg_id("order-42/retry#1"), errc::none);
    EXPECT_EQ(validate_msg_id(std::string(msg_id_bytes_max, 'm')), errc::none);
    EXPECT_EQ(validate_msg_id(std::string(msg_id_bytes_max + 1, 'm')), errc::bad_msg_id);
    EXPECT_EQ(validate_msg_id(""), errc::bad_msg_id);
    EXPECT_EQ(validate_msg_id("has space"), errc::bad_msg_id);
    EXPECT_EQ(validate_msg_id("tab\there"), errc::bad_msg_id);
    EXPECT_EQ(validate_msg_id("\x7f"), errc::bad_msg_id);
}

TEST(Validate, StreamName) {
    EXPECT_EQ(validate_stream_name("events"), errc::none);
    EXPECT_EQ(validate_stream_name("audit_log-2"), errc::none);
    EXPECT_EQ(validate_stream_name("$dlq.events.projector"), errc::none);
    EXPECT_EQ(validate_stream_name("$dlq.events"), errc::bad_request);
    EXPECT_EQ(validate_stream_name("$dlq..x"), errc::bad_request);
    EXPECT_EQ(validate_stream_name("a.b"), errc::bad_request);
    EXPECT_EQ(validate_stream_name(""), errc::bad_request);
    EXPECT_EQ(validate_stream_name(std::string(stream_name_bytes_max + 1, 's')),
              errc::bad_request);
}

TEST(Validate, Header) {
    EXPECT_EQ(validate_header("trace_id", "abc"), errc::none);
    EXPECT_EQ(validate_header("", "abc"), errc::bad_headers);
    EXPECT_EQ(validate_header("a b", "abc"), errc::bad_headers);
    EXPECT_EQ(validate_header("k", std::string(header_value_bytes_max, 'v')), errc::none);
    EXPECT_EQ(validate_header("k", std::string(header_value_bytes_max + 1, 'v')),
              errc::bad_headers);
}

const fb::PublishMessage* first_message(frame_encoder& enc, const message_ref& m,
                                        frame_decoder& dec) {
    const fb::PublishMessage* out = nullptr;
    EXPECT_TRUE(dec.feed(enc.publish(1, {&m, 1}), [&](const frame_view& f) {
        out = f.as<fb::Publish>()->messages()->Get(0);
    }));
    return out;
}

TEST(Validate, MessageReportsTheFirstFault) {
    frame_encoder enc;
    frame_decoder dec;
    const std::string payload(100, 'x');
    const auto bytes = std::as_bytes(std::span{payload});
    const header_ref bad_header[] = {{"bad key", "v"}};
    std::vector<header_ref> too_many(headers_max + 1, header_ref{"k", "v"});
    struct {
        message_ref message;
        errc expected;
    } cases[] = {
        {{"p", "task.updated", "id", {}, bytes}, errc::none},
        {{"", "task.updated", "id", {}, bytes}, errc::bad_project},
        {{"p", "task", "id", {}, bytes}, errc::bad_subject},
        {{"p", "task.updated", "", {}, bytes}, errc::bad_msg_id},
        {{"p", "task.updated", "id", bad_header, bytes}, errc::bad_headers},
        {{"p", "task.updated", "id", too_many, bytes}, errc::bad_headers},
    };
    for (const auto& c : cases) {
        const auto* m = first_message(enc, c.message, dec);
        ASSERT_NE(m, nullptr);
        EXPECT_EQ(validate_message(*m, payload_bytes_max_default), c.expected)
            << to_string(c.expected);
    }
    const auto* m = first_message(enc, cases[0].message, dec);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(validate_message(*m, 100), errc::none);
    EXPECT_EQ(validate_message(*m, 99), errc::payload_too_large);
}

}  // namespace
}  // namespace nagare::protocol
