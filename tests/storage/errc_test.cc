#include "storage/errc.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace nagare::storage {
namespace {

TEST(StorageErrc, ErrnoMapping) {
    EXPECT_EQ(from_errno(ENOSPC), errc::storage_full);
    EXPECT_EQ(from_errno(EDQUOT), errc::storage_full);
    EXPECT_EQ(from_errno(ENOENT), errc::not_found);
    EXPECT_EQ(from_errno(EIO), errc::io_error);
    EXPECT_EQ(to_protocol(errc::storage_full), protocol::errc::storage_full);
    EXPECT_EQ(to_protocol(errc::corrupt), protocol::errc::storage_error);
    EXPECT_EQ(to_string(errc::corrupt), "corrupt");
    EXPECT_EQ(to_protocol(errc::busy), protocol::errc::overloaded);
    EXPECT_EQ(to_string(errc::busy), "busy");
}

}  // namespace
}  // namespace nagare::storage
