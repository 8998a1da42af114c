#include <gtest/gtest.h>
TEST(GatewayPlaceholder, Builds) { EXPECT_EQ(1 + 1, 2); }
