#include "client/url.h"

#include <string>

#include <gtest/gtest.h>

namespace nagare::client {
namespace {

TEST(Url, HostAndPort) {
    const auto e = parse_url("nagare://127.0.0.1:4150");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "127.0.0.1");
    EXPECT_EQ(e->port, 4150);
}

TEST(Url, NameWithoutPortGetsTheDefaultPort) {
    const auto e = parse_url("nagare://broker-1.internal");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "broker-1.internal");
    EXPECT_EQ(e->port, 4150);
}

TEST(Url, BracketedIpv6) {
    const auto e = parse_url("nagare://[::1]:9000");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "::1");
    EXPECT_EQ(e->port, 9000);
    EXPECT_EQ(parse_url("nagare://[::1]")->port, 4150);
}

TEST(Url, PortBounds) {
    EXPECT_EQ(parse_url("nagare://h:1")->port, 1);
    EXPECT_EQ(parse_url("nagare://h:65535")->port, 65535);
    EXPECT_FALSE(parse_url("nagare://h:0"));
    EXPECT_FALSE(parse_url("nagare://h:65536"));
    EXPECT_FALSE(parse_url("nagare://h:000001"));
}

TEST(Url, RejectsEverythingElse) {
    for (const char* bad : {"",
                            "nagare:/h:1",
                            "http://h:1",
                            "NAGARE://h:1",
                            "nagare://",
                            "nagare://:4150",
                            "nagare://h:",
                            "nagare://h:12ab",
                            "nagare://h:+1",
                            "nagare://h:-1",
                            "nagare://h:1/",
                            "nagare://h:1/path",
                            "nagare://h:1?x=1",
                            "nagare://user@h:1",
                            "nagare://h_1:1",
                            "nagare://ho st:1",
                            "nagare://[::1",
                            "nagare://[]:1",
                            "nagare://[zz]:1",
                            "nagare://[::1]x",
                            "nagare://h:1:2",
                            " nagare://h:1"}) {
        const auto e = parse_url(bad);
        EXPECT_FALSE(e.has_value()) << bad;
        if (!e) {
            EXPECT_FALSE(e.error().empty()) << bad;
        }
    }
    EXPECT_FALSE(parse_url("nagare://" + std::string(254, 'a') + ":1"));
    EXPECT_FALSE(parse_url("nagare://h:1" + std::string(2000, '0')));
}

}  // namespace
}  // namespace nagare::client
