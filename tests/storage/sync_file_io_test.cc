#include "storage/sync_file_io.h"

#include <cerrno>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "storage/posix_file.h"
#include "tests/storage/file_io_contract.h"
#include "tests/storage/test_records.h"

namespace nagare::storage {
namespace {

struct recorder final : io_completion {
    std::vector<int> results;
    void io_done(int result) noexcept override { results.push_back(result); }
};

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

TEST(SyncFileIo, WritesOnlyInPollAndInOrder) {
    testing::temp_dir dir;
    auto file = posix_file::open(dir.path() / "f", true);
    ASSERT_TRUE(file.has_value());
    sync_file_io io(4);
    recorder done;
    const auto a = bytes_of("hello ");
    const auto b = bytes_of("world");
    io.write(file->fd(), a, 0, false, done);
    io.write(file->fd(), b, a.size(), true, done);
    io.datasync(file->fd(), done);
    EXPECT_EQ(io.pending(), 3u);
    EXPECT_EQ(file->size_bytes().value(), 0u);
    EXPECT_EQ(io.poll(false), 3u);
    EXPECT_EQ(io.pending(), 0u);
    EXPECT_EQ(done.results, (std::vector<int>{6, 5, 0}));
    std::vector<std::byte> back(11);
    ASSERT_EQ(file->read_at(back, 0).value(), 11u);
    EXPECT_EQ(back, bytes_of("hello world"));
}

TEST(SyncFileIo, ReportsErrnoOfAFailedOperation) {
    sync_file_io io;
    recorder done;
    const auto a = bytes_of("x");
    io.write(-1, a, 0, true, done);
    io.datasync(-1, done);
    EXPECT_EQ(io.poll(true), 2u);
    EXPECT_EQ(done.results, (std::vector<int>{-EBADF, -EBADF}));
}

TEST(SyncFileIo, OperationsQueuedByACompletionWaitForTheNextPoll) {
    testing::temp_dir dir;
    auto file = posix_file::open(dir.path() / "f", true);
    ASSERT_TRUE(file.has_value());
    sync_file_io io(2);
    struct chain final : io_completion {
        sync_file_io* io = nullptr;
        int fd = -1;
        int calls = 0;
        void io_done(int) noexcept override {
            if (++calls < 3) io->datasync(fd, *this);
        }
    } c;
    c.io = &io;
    c.fd = file->fd();
    io.datasync(file->fd(), c);
    EXPECT_EQ(io.poll(false), 1u);
    EXPECT_EQ(io.pending(), 1u);
    EXPECT_EQ(io.poll(false), 1u);
    EXPECT_EQ(io.poll(false), 1u);
    EXPECT_EQ(io.poll(false), 0u);
    EXPECT_EQ(c.calls, 3);
}

TEST(SyncFileIo, OpenWriteCloseRenameAndSyncADirectory) {
    testing::temp_dir dir;
    sync_file_io io(1);
    testing::check_file_operations(io, dir.path());
}

}  // namespace
}  // namespace nagare::storage
