// Connection-level behaviour of the real nagared: pings, auth, the data
// directory lock, stream admin over the wire.
#include <gtest/gtest.h>

#include "tests/system/nagared_process.h"

namespace nagare::testing {
namespace {

namespace fb = protocol::fb;

TEST(Session, SilentPeerIsPingedTwiceThenClosed) {
    const auto dir = temp_dir("session-ping");
    nagared_process::options o;
    o.config_toml = "ping_interval = \"300ms\"\n";
    nagared_process broker(dir / "data", o);
    ASSERT_TRUE(broker.start());
    raw_client c(broker.port());
    ASSERT_TRUE(c.hello());
    const auto t0 = std::chrono::steady_clock::now();
    int pings = 0;
    while (auto f = c.next(std::chrono::seconds(5))) {
        if ((*f)->body.type == fb::Body::Ping) ++pings;
    }
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(pings, 2);
    EXPECT_TRUE(c.closed_by_peer(std::chrono::milliseconds(100)));
    EXPECT_GE(waited, std::chrono::milliseconds(600));
    EXPECT_LT(waited, std::chrono::seconds(4));
    // A peer that answers stays connected.
    raw_client polite(broker.port());
    ASSERT_TRUE(polite.hello());
    for (int i = 0; i < 3; ++i) {
        auto f = polite.next(std::chrono::seconds(3));
        ASSERT_TRUE(f.has_value());
        ASSERT_EQ((*f)->body.type, fb::Body::Ping);
        ASSERT_TRUE(polite.send_bytes(polite.encoder().pong((*f)->body.AsPing()->nonce)));
    }
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

TEST(Session, TokensGateHelloAndSubjects) {
    const auto dir = temp_dir("session-auth");
    nagared_process::options o;
    o.config_toml =
        "[[tokens]]\ntoken = \"backend\"\npublish = [\"task.>\"]\n"
        "[[tokens]]\ntoken = \"ops\"\nadmin = true\n";
    nagared_process broker(dir / "data", o);
    ASSERT_TRUE(broker.start());
    {
        raw_client c(broker.port());
        ASSERT_TRUE(c.send_bytes(c.encoder().hello("t", "wrong")));
        auto f = c.next();
        ASSERT_TRUE(f.has_value());
        ASSERT_EQ((*f)->body.type, fb::Body::Error);
        EXPECT_EQ((*f)->body.AsError()->code, fb::ErrorCode::NOT_AUTHORIZED);
        EXPECT_TRUE(c.closed_by_peer());
    }
    {
        raw_client c(broker.port());
        ASSERT_TRUE(c.hello("backend"));
        const std::string payload = "{}";
        const protocol::message_ref messages[] = {
            {"p", "task.updated", "a", {}, std::as_bytes(std::span{payload})},
            {"p", "order.created", "b", {}, std::as_bytes(std::span{payload})},
        };
        ASSERT_TRUE(c.send_bytes(c.encoder().publish(1, messages)));
        auto f = c.next();
        ASSERT_TRUE(f.has_value());
        ASSERT_EQ((*f)->body.type, fb::Body::PubAck);
        EXPECT_EQ((*f)->body.AsPubAck()->entries[0].error(), fb::ErrorCode::NONE);
        EXPECT_EQ((*f)->body.AsPubAck()->entries[1].error(), fb::ErrorCode::NOT_AUTHORIZED);
        // Stream admin needs an admin token.
        fb::FrameT frame;
        fb::AdminT admin;
        admin.request_id = 5;
        admin.op = fb::AdminOp::STREAM_DELETE;
        admin.stream = "events";
        frame.body.Set(std::move(admin));
        flatbuffers::FlatBufferBuilder b;
        b.FinishSizePrefixed(fb::Frame::Pack(b, &frame), fb::FrameIdentifier());
        ASSERT_TRUE(c.send_bytes({reinterpret_cast<const std::byte*>(b.GetBufferPointer()), b.GetSize()}));
        auto r = c.next();
        ASSERT_TRUE(r.has_value());
        ASSERT_EQ((*r)->body.type, fb::Body::AdminResult);
        EXPECT_EQ((*r)->body.AsAdminResult()->error, fb::ErrorCode::NOT_AUTHORIZED);
    }
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

TEST(Session, SecondBrokerOnTheSameDataDirectoryIsRefused) {
    const auto dir = temp_dir("session-lock");
    nagared_process first(dir / "data");
    ASSERT_TRUE(first.start());
    nagared_process second(dir / "data");
    EXPECT_FALSE(second.start());
    EXPECT_EQ(second.exit_status(), 1);
    EXPECT_EQ(first.stop(), 0);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::testing
