// The C API (nagare/nagare_c.h) against the fake node: from C (c_api_round_trip.c)
// and from C++ through the extern "C" header.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "fake_server.h"
#include "nagare/nagare_c.h"

extern "C" int c_api_round_trip(const char* url);

namespace nagare::client::testing {
namespace {

TEST(CApi, RoundTripFromC) {
    fake_server server;
    EXPECT_EQ(c_api_round_trip(server.url().c_str()), 0)
        << "failed check at that line of c_api_round_trip.c";
    const auto store = server.store();
    ASSERT_EQ(store.size(), 2u);
    EXPECT_EQ(store[0].msg_id, "c-1");
    EXPECT_EQ(store[0].payload, "{\"event\":\"task.updated\"}");
    EXPECT_EQ(store[1].msg_id.size(), 26u);
    EXPECT_EQ(server.duplicates(), 1u);
}

TEST(CApi, ConnectFailuresReturnProtocolNumbers) {
    nagare_client* client = reinterpret_cast<nagare_client*>(0x1);
    EXPECT_EQ(nagare_connect("http://nope", nullptr, &client), NAGARE_BAD_REQUEST);
    EXPECT_EQ(client, nullptr);
    EXPECT_NE(std::string(nagare_last_error_message()).find("bad url"), std::string::npos);
    EXPECT_EQ(nagare_connect(nullptr, nullptr, &client), NAGARE_BAD_REQUEST);

    fake_options fo;
    fo.token = "secret";
    fake_server server(fo);
    EXPECT_EQ(nagare_connect(server.url().c_str(), "wrong", &client), NAGARE_NOT_AUTHORIZED);
    EXPECT_EQ(nagare_connect(server.url().c_str(), nullptr, &client), NAGARE_NOT_AUTHORIZED);
    ASSERT_EQ(nagare_connect(server.url().c_str(), "secret", &client), NAGARE_OK);
    EXPECT_STREQ(nagare_last_error_message(), "");
    nagare_close(client);
}

TEST(CApi, ErrorStrings) {
    EXPECT_STREQ(nagare_error_string(NAGARE_OK), "NONE");
    EXPECT_STREQ(nagare_error_string(NAGARE_BAD_SUBJECT), "BAD_SUBJECT");
    EXPECT_STREQ(nagare_error_string(NAGARE_INTERNAL), "INTERNAL");
    EXPECT_STREQ(nagare_error_string(NAGARE_UNAVAILABLE), "UNAVAILABLE");
    EXPECT_STREQ(nagare_error_string(NAGARE_CLOSED), "CLOSED");
    EXPECT_STREQ(nagare_error_string(77), "UNKNOWN");
    EXPECT_STREQ(nagare_error_string(-1), "UNKNOWN");
}

}  // namespace
}  // namespace nagare::client::testing
