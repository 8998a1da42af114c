// The browser-facing rendering of a broker message (docs/gateway.md).
#include "tools/gateway/event.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nagare::gateway {
namespace {

std::span<const std::byte> bytes(std::string_view s) {
    return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

message_fields fields(std::string_view payload) {
    message_fields m;
    m.offset = 42;
    m.timestamp_ns = 1'764'075'600'123'456'789ull;  // 2025-11-25T13:00:00.123Z
    m.project = "acme";
    m.subject = "task.updated";
    m.msg_id = "m-1";
    m.payload = bytes(payload);
    return m;
}

TEST(EventId, ParsesAndFormats) {
    const auto id = parse_event_id("8391220391:42");
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(id->epoch, 8391220391u);
    EXPECT_EQ(id->offset, 42u);
    EXPECT_EQ(format_event_id(*id), "8391220391:42");
    for (const char* bad : {"", ":", "1:", ":1", "1", "a:1", "1:b", "1:2:3", "1 :2", "-1:2",
                            "99999999999999999999:1"}) {
        EXPECT_FALSE(parse_event_id(bad).has_value()) << bad;
    }
}

TEST(RenderEvent, JsonPayloadIsEmbeddedAsIs) {
    const auto e = render_event(fields(R"({"title":"a","n":[1,2]})"), 7, false);
    const auto j = nlohmann::json::parse(e->json);
    EXPECT_EQ(j["event"], "task.updated");
    EXPECT_EQ(j["msgId"], "m-1");
    EXPECT_EQ(j["id"], "7:42");
    EXPECT_EQ(j["project"], "acme");
    EXPECT_EQ(j["timestamp"], "2025-11-25T13:00:00.123Z");
    EXPECT_EQ(j["payload"]["title"], "a");
    EXPECT_EQ(j["payload"]["n"][1], 2);
    EXPECT_FALSE(j.contains("encoding"));
    EXPECT_EQ(e->id, "7:42");
    EXPECT_EQ(e->offset, 42u);
}

TEST(RenderEvent, TextAndBinaryPayloads) {
    const auto text = nlohmann::json::parse(render_event(fields("plain \"text\" ü"), 1, false)->json);
    EXPECT_EQ(text["payload"], "plain \"text\" ü");
    const std::string binary("\xff\x00\x01", 3);
    const auto bin = nlohmann::json::parse(render_event(fields(binary), 1, false)->json);
    EXPECT_EQ(bin["payload"], "/wAB");
    EXPECT_EQ(bin["encoding"], "base64");
}

TEST(RenderEvent, MultiLineJsonBecomesOneSseDataLine) {
    const auto e = render_event(fields("{\n  \"a\": 1\r\n}"), 1, false);
    EXPECT_EQ(e->json.find('\n'), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(e->json)["payload"]["a"], 1);
    EXPECT_EQ(e->sse_named, "id: 1:42\nevent: task.updated\ndata: " + e->json + "\n\n");
    EXPECT_EQ(e->sse_plain, "id: 1:42\ndata: " + e->json + "\n\n");
}

TEST(RenderEvent, HeadersAndRedelivery) {
    auto m = fields("{}");
    const client::received_header h[] = {{"trace_id", "t-1"}, {"bin", std::string_view("\xff", 1)}};
    m.headers = h;
    const auto e = render_event(m, 3, true);
    EXPECT_TRUE(e->is_private);
    const auto j = nlohmann::json::parse(e->json);
    EXPECT_EQ(j["headers"]["trace_id"], "t-1");
    EXPECT_TRUE(j["headers"]["bin"].is_null());
    const auto again = nlohmann::json::parse(with_redelivered(*e, 2));
    EXPECT_EQ(again["redelivered"], 2);
    EXPECT_EQ(again["id"], "3:42");
}

TEST(RenderEvent, BatchIsAnArrayInOrder) {
    auto a = fields("1");
    auto b = fields("2");
    b.offset = 43;
    const event_ptr events[] = {render_event(a, 1, false), render_event(b, 1, false)};
    const auto j = nlohmann::json::parse(json_array(events));
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["id"], "1:42");
    EXPECT_EQ(j[1]["id"], "1:43");
}

TEST(JsonText, EscapesControlCharacters) {
    std::string out;
    append_json_string(out, std::string_view("a\"b\\c\n\x01", 7));
    EXPECT_EQ(out, R"("a\"b\\c\n\u0001")");
    EXPECT_EQ(nlohmann::json::parse(out), std::string("a\"b\\c\n\x01"));
}

TEST(JsonText, Utf8Validation) {
    EXPECT_TRUE(valid_utf8("plain"));
    EXPECT_TRUE(valid_utf8("\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80"));
    EXPECT_FALSE(valid_utf8("\xc3"));              // truncated
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
    EXPECT_FALSE(valid_utf8("\x80"));
}

TEST(JsonText, Base64) {
    for (const auto& [in, out] : std::vector<std::pair<std::string, std::string>>{
             {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foobar", "Zm9vYmFy"}}) {
        std::string s;
        append_base64(s, bytes(in));
        EXPECT_EQ(s, out) << in;
    }
}

}  // namespace
}  // namespace nagare::gateway
