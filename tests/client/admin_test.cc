// nagare/admin.h: the consumer admin calls against the fake node.
#include "nagare/admin.h"

#include <gtest/gtest.h>

#include "fake_server.h"

namespace nagare::client::testing {
namespace {

namespace fb = protocol::fb;

fake_options with_consumers() {
    fake_options fo;
    fo.streams = {{"events", {}, 2}, {"audit", {"audit.>"}, 1}};
    auto writer = sample_consumer("writer");
    writer.stream = "audit";
    fo.consumers = {sample_consumer("projector"), sample_consumer("mailer"), writer};
    return fo;
}

TEST(AdminConsumers, ListInfoAndDelete) {
    fake_server server(with_consumers());
    auto session = admin_session::connect(server.url(), "");
    ASSERT_TRUE(session.has_value()) << session.error().message;
    auto& admin = **session;

    const auto listed = admin.consumer_list("events");
    ASSERT_TRUE(listed.has_value()) << listed.error().message;
    ASSERT_EQ(listed->size(), 2u);
    EXPECT_EQ((*listed)[0].name, "projector");
    EXPECT_EQ((*listed)[1].name, "mailer");

    const auto info = admin.consumer_info("events", "projector");
    ASSERT_TRUE(info.has_value()) << info.error().message;
    EXPECT_EQ(info->stream, "events");
    EXPECT_EQ(info->project, "proj-1");
    EXPECT_EQ(info->subjects, (std::vector<std::string>{"task.*", "order.>"}));
    EXPECT_EQ(info->ack, ack_policy::explicit_ack);
    EXPECT_EQ(info->ack_wait_ms, 30000u);
    EXPECT_EQ(info->max_deliver, 5u);
    EXPECT_EQ(info->max_inflight, 1024u);
    EXPECT_TRUE(info->ordered);
    EXPECT_EQ(info->ack_floors,
              (std::vector<std::pair<partition_id, nagare::offset>>{
                  {partition_id{0}, nagare::offset{12}}, {partition_id{1}, nagare::offset{7}}}));
    EXPECT_EQ(info->pending, 3u);
    EXPECT_EQ(info->redelivered, 4u);
    EXPECT_EQ(info->dead_lettered, 1u);
    EXPECT_EQ(info->terminated, 2u);

    ASSERT_TRUE(admin.consumer_delete("events", "projector").has_value());
    const auto gone = admin.consumer_info("events", "projector");
    ASSERT_FALSE(gone.has_value());
    EXPECT_EQ(gone.error().code, errc::no_such_consumer);
    EXPECT_EQ(admin.consumer_list("events")->size(), 1u);
    EXPECT_EQ(admin.consumer_list("audit")->size(), 1u);
}

TEST(AdminConsumers, UnknownStreamOrConsumerAreTheBrokersCodes) {
    fake_server server(with_consumers());
    auto session = admin_session::connect(server.url(), "");
    ASSERT_TRUE(session.has_value());
    auto& admin = **session;
    EXPECT_EQ(admin.consumer_list("nope").error().code, errc::no_such_stream);
    EXPECT_EQ(admin.consumer_info("events", "nope").error().code, errc::no_such_consumer);
    const auto removed = admin.consumer_delete("events", "nope");
    ASSERT_FALSE(removed.has_value());
    EXPECT_EQ(removed.error().code, errc::no_such_consumer);
    EXPECT_NE(removed.error().message.find("no consumer nope"), std::string::npos);
}

}  // namespace
}  // namespace nagare::client::testing
