// Bad input on one connection gets the right Error code; framing errors
// close that connection only; another client publishing at the same time
// is unaffected; the broker's memory does not grow.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "tests/system/nagared_process.h"

namespace nagare::testing {
namespace {

namespace fb = protocol::fb;

std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

fb::ErrorCode error_code(const std::unique_ptr<fb::FrameT>& f) {
    return f->body.type == fb::Body::Error ? f->body.AsError()->code : fb::ErrorCode::NONE;
}

class BadInput : public ::testing::Test {
protected:
    void SetUp() override {
        _dir = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
        _broker = std::make_unique<nagared_process>(_dir / "data");
        ASSERT_TRUE(_broker->start());
    }
    void TearDown() override {
        EXPECT_EQ(_broker->stop(), 0);
        std::filesystem::remove_all(_dir);
    }
    std::filesystem::path _dir;
    std::unique_ptr<nagared_process> _broker;
};

TEST_F(BadInput, FramingErrorsGetTheirCodeAndCloseOnlyThatConnection) {
    // A well-behaved producer publishes throughout.
    std::atomic<bool> stop{false};
    std::atomic<int> acked{0};
    std::atomic<bool> producer_failed{false};
    std::thread producer([&] {
        raw_client c(_broker->port());
        if (!c.hello()) {
            producer_failed = true;
            return;
        }
        const std::string payload(64, 'p');
        for (int i = 0; !stop && i < 100'000; ++i) {
            const std::string id = "good-" + std::to_string(i);
            const protocol::message_ref m{"proj-good", "task.updated", id, {}, std::as_bytes(std::span{payload})};
            if (!c.send_bytes(c.encoder().publish(static_cast<std::uint64_t>(i), {&m, 1}))) break;
            auto ack = c.next();
            if (!ack || (*ack)->body.type != fb::Body::PubAck ||
                (*ack)->body.AsPubAck()->entries[0].error() != fb::ErrorCode::NONE) {
                producer_failed = true;
                return;
            }
            ++acked;
        }
    });
    struct bad_case {
        const char* what;
        std::vector<std::byte> bytes;
        fb::ErrorCode expected;
    };
    std::mt19937 rng(42);
    std::vector<std::byte> random_bytes(4096);
    for (auto& b : random_bytes) b = static_cast<std::byte>(rng());
    random_bytes[0] = std::byte{0x40};  // a length below the limit, then garbage
    random_bytes[1] = random_bytes[2] = random_bytes[3] = std::byte{0};
    auto bad_flatbuffer = bytes_of({16, 0, 0, 0});
    for (int i = 0; i < 16; ++i) bad_flatbuffer.push_back(static_cast<std::byte>(0xAB));
    const std::vector<bad_case> cases = {
        {"4 GiB length prefix", bytes_of({0xff, 0xff, 0xff, 0xff}), fb::ErrorCode::FRAME_TOO_LARGE},
        {"random bytes", random_bytes, fb::ErrorCode::BAD_FRAME},
        {"valid prefix around an invalid FlatBuffer", bad_flatbuffer, fb::ErrorCode::BAD_FRAME},
    };
    for (const auto& c : cases) {
        raw_client bad(_broker->port());
        ASSERT_TRUE(bad.hello()) << c.what;
        ASSERT_TRUE(bad.send_bytes(c.bytes)) << c.what;
        auto reply = bad.next();
        ASSERT_TRUE(reply.has_value()) << c.what;
        EXPECT_EQ(error_code(*reply), c.expected) << c.what;
        EXPECT_TRUE(bad.closed_by_peer()) << c.what;
    }
    // Before Hello, anything else is refused and the connection closed.
    raw_client early(_broker->port());
    ASSERT_TRUE(early.send_bytes(early.encoder().ping(1)));
    auto refused = early.next();
    ASSERT_TRUE(refused.has_value());
    EXPECT_EQ(error_code(*refused), fb::ErrorCode::BAD_REQUEST);
    EXPECT_TRUE(early.closed_by_peer());
    // The producer kept going.
    const int before = acked.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    producer.join();
    EXPECT_FALSE(producer_failed.load());
    EXPECT_GT(acked.load(), before);
}

TEST_F(BadInput, InvalidFieldsAreAnsweredPerMessageAndTheConnectionStays) {
    raw_client c(_broker->port());
    ASSERT_TRUE(c.hello());
    const std::string big(protocol::payload_bytes_max_default + 1, 'x');
    const std::string ok_payload = "{}";
    const auto ok = std::as_bytes(std::span{ok_payload});
    const std::vector<std::pair<protocol::message_ref, fb::ErrorCode>> cases = {
        {{"proj", "task", "id-1", {}, ok}, fb::ErrorCode::BAD_SUBJECT},
        {{"proj", "task..x", "id-2", {}, ok}, fb::ErrorCode::BAD_SUBJECT},
        {{"bad project", "task.updated", "id-3", {}, ok}, fb::ErrorCode::BAD_PROJECT},
        {{"proj", "task.updated", "", {}, ok}, fb::ErrorCode::BAD_MSG_ID},
        {{"proj", "task.updated", "has space", {}, ok}, fb::ErrorCode::BAD_MSG_ID},
        {{"proj", "task.updated", "id-6", {}, std::as_bytes(std::span{big})},
         fb::ErrorCode::PAYLOAD_TOO_LARGE},
        {{"proj", "task.updated", "id-7", {}, ok}, fb::ErrorCode::NONE},
    };
    std::vector<protocol::message_ref> messages;
    for (const auto& [m, code] : cases) messages.push_back(m);
    ASSERT_TRUE(c.send_bytes(c.encoder().publish(1, messages)));
    auto ack = c.next();
    ASSERT_TRUE(ack.has_value());
    ASSERT_EQ((*ack)->body.type, fb::Body::PubAck);
    const auto& entries = (*ack)->body.AsPubAck()->entries;
    ASSERT_EQ(entries.size(), cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
        EXPECT_EQ(entries[i].error(), cases[i].second) << "message " << i;
    }
    EXPECT_EQ(entries.back().offset(), 0u);  // only the valid one was stored
    // The connection is still usable.
    ASSERT_TRUE(c.send_bytes(c.encoder().ping(9)));
    auto pong = c.next();
    ASSERT_TRUE(pong.has_value());
    EXPECT_EQ((*pong)->body.type, fb::Body::Pong);
}

TEST_F(BadInput, ManyBadConnectionsDoNotGrowTheBrokersMemory) {
    auto storm = [&](int connections) {
        std::mt19937 rng(7);
        for (int i = 0; i < connections; ++i) {
            raw_client bad(_broker->port());
            if (!bad.connected()) continue;
            (void)bad.hello();
            std::vector<std::byte> junk(256 + rng() % 4096);
            for (auto& b : junk) b = static_cast<std::byte>(rng());
            (void)bad.send_bytes(junk);
            (void)bad.closed_by_peer(std::chrono::milliseconds(500));
        }
    };
    storm(200);  // warm up: pools and buffers reach their working size
    const auto before_kib = _broker->rss_kib();
    storm(1000);
    const auto after_kib = _broker->rss_kib();
    EXPECT_LT(after_kib, before_kib + 4096) << "RSS grew from " << before_kib << " KiB to "
                                            << after_kib << " KiB";
}

}  // namespace
}  // namespace nagare::testing
