#include "protocol/errc.h"

#include <gtest/gtest.h>

#include "protocol/frame.h"

namespace nagare::protocol {
namespace {

TEST(Errc, NamesMatchTheWireEnum) {
    for (std::uint16_t i = 0; i < errc_count; ++i) {
        EXPECT_EQ(to_string(static_cast<errc>(i)),
                  fb::EnumNameErrorCode(static_cast<fb::ErrorCode>(i)));
    }
}

TEST(Errc, UnknownWireCodesBecomeInternal) {
    EXPECT_EQ(errc_from_wire(4), errc::bad_subject);
    EXPECT_EQ(errc_from_wire(errc_count), errc::internal);
    EXPECT_EQ(errc_from_wire(0xffff), errc::internal);
    EXPECT_EQ(to_string(static_cast<errc>(999)), "UNKNOWN");
}

}  // namespace
}  // namespace nagare::protocol
