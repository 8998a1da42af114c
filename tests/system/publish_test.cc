#include <gtest/gtest.h>

#include "tests/system/nagared_process.h"

namespace nagare::testing {
namespace {

namespace fb = protocol::fb;

TEST(Publish, HelloThenPublishIsAcknowledgedWithDenseOffsets) {
    const auto dir = temp_dir("publish-basic");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    raw_client c(broker.port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.hello());
    const std::string payload = R"({"event":"task.updated"})";
    std::vector<std::string> ids;
    for (int i = 0; i < 10; ++i) ids.push_back("id-" + std::to_string(i));
    std::vector<protocol::message_ref> messages;
    for (const auto& id : ids) {
        messages.push_back({"proj-1", "task.updated", id, {}, std::as_bytes(std::span{payload})});
    }
    ASSERT_TRUE(c.send_bytes(c.encoder().publish(7, messages)));
    auto ack = c.next();
    ASSERT_TRUE(ack.has_value());
    ASSERT_EQ((*ack)->body.type, fb::Body::PubAck);
    const auto* p = (*ack)->body.AsPubAck();
    EXPECT_EQ(p->request_id, 7u);
    ASSERT_EQ(p->entries.size(), 10u);
    for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(p->entries[i].error(), fb::ErrorCode::NONE);
        EXPECT_EQ(p->entries[i].offset(), i);
        EXPECT_FALSE(p->entries[i].duplicate());
        EXPECT_EQ(p->streams[p->entries[i].stream_index()], "events");
    }
    // The same ids again: duplicates with the first offsets.
    ASSERT_TRUE(c.send_bytes(c.encoder().publish(8, messages)));
    auto again = c.next();
    ASSERT_TRUE(again.has_value());
    const auto* q = (*again)->body.AsPubAck();
    ASSERT_EQ(q->entries.size(), 10u);
    for (std::size_t i = 0; i < 10; ++i) {
        EXPECT_TRUE(q->entries[i].duplicate());
        EXPECT_EQ(q->entries[i].offset(), i);
    }
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::testing
