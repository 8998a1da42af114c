#include "broker/io/uring_file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/storage/file_io_contract.h"

namespace nagare::broker::io {
namespace {

namespace fs = std::filesystem;

struct recorder final : storage::io_completion {
    std::vector<int> results;
    void io_done(int result) noexcept override { results.push_back(result); }
};

class UringFileIo : public ::testing::Test {
protected:
    void SetUp() override {
        _dir = fs::temp_directory_path() /
               ("nagare-uring-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(_dir);
        auto r = ring::create(64);
        ASSERT_TRUE(r.has_value()) << "io_uring_queue_init: errno " << r.error();
        _ring = std::move(*r);
    }
    void TearDown() override {
        if (_mounted) ::umount2(_dir.c_str(), MNT_DETACH);
        fs::remove_all(_dir);
    }
    int open_file(const std::string& name, int flags = O_RDWR | O_CREAT) {
        const int fd = ::open((_dir / name).c_str(), flags, 0644);
        EXPECT_GE(fd, 0) << std::strerror(errno);
        return fd;
    }
    void drain(uring_file_io& io) {
        for (int i = 0; i < 1000 && io.pending() > 0; ++i) io.poll(true);
        ASSERT_EQ(io.pending(), 0u);
    }

    fs::path _dir;
    std::unique_ptr<ring> _ring;
    bool _mounted = false;
};

TEST_F(UringFileIo, WriteWithDatasyncCompletesOnceWithAllBytes) {
    uring_file_io io(*_ring);
    const int fd = open_file("a");
    const std::string text = "hello, durable world";
    recorder done;
    io.write(fd, std::as_bytes(std::span{text}), 0, true, done);
    EXPECT_EQ(io.pending(), 1u);
    drain(io);
    ASSERT_EQ(done.results, std::vector<int>{static_cast<int>(text.size())});
    std::string back(text.size(), '\0');
    ASSERT_EQ(::pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(text.size()));
    EXPECT_EQ(back, text);
    ::close(fd);
}

TEST_F(UringFileIo, ManyQueuedWritesAllCompleteAtTheirPositions) {
    uring_file_io io(*_ring, 256);
    const int fd = open_file("b");
    std::vector<std::string> blocks;
    for (int i = 0; i < 200; ++i) blocks.push_back(std::string(100, static_cast<char>('a' + i % 26)));
    recorder done;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        io.write(fd, std::as_bytes(std::span{blocks[i]}), i * 100, i % 10 == 9, done);
    }
    recorder synced;
    io.datasync(fd, synced);
    drain(io);
    EXPECT_EQ(done.results.size(), blocks.size());
    for (const int r : done.results) EXPECT_EQ(r, 100);
    EXPECT_EQ(synced.results, std::vector<int>{0});
    std::string back(20'000, '\0');
    ASSERT_EQ(::pread(fd, back.data(), back.size(), 0), 20'000);
    for (std::size_t i = 0; i < blocks.size(); ++i) EXPECT_EQ(back.substr(i * 100, 100), blocks[i]);
    ::close(fd);
}

TEST_F(UringFileIo, FailedWriteReportsErrno) {
    uring_file_io io(*_ring);
    open_file("c");
    const int fd = open_file("c", O_RDONLY);
    const std::string text = "x";
    recorder done;
    io.write(fd, std::as_bytes(std::span{text}), 0, true, done);
    drain(io);
    ASSERT_EQ(done.results.size(), 1u);
    EXPECT_EQ(done.results[0], -EBADF);
    ::close(fd);
}

TEST_F(UringFileIo, FullDiskReportsEnospcAndLaterWritesSucceed) {
    ASSERT_EQ(::mount("tmpfs", _dir.c_str(), "tmpfs", 0, "size=256k"), 0)
        << "mounting a tmpfs needs root: " << std::strerror(errno);
    _mounted = true;
    uring_file_io io(*_ring);
    const int fd = open_file("full");
    const std::vector<std::byte> block(64u << 10, std::byte{'z'});
    recorder done;
    for (int i = 0; i < 8; ++i) {
        io.write(fd, block, static_cast<std::uint64_t>(i) * block.size(), true, done);
        drain(io);
    }
    ASSERT_EQ(done.results.size(), 8u);
    EXPECT_EQ(done.results.front(), static_cast<int>(block.size()));
    EXPECT_EQ(done.results.back(), -ENOSPC);
    // Free space, then a write succeeds again.
    ASSERT_EQ(::ftruncate(fd, 0), 0);
    recorder again;
    io.write(fd, block, 0, true, again);
    drain(io);
    EXPECT_EQ(again.results, std::vector<int>{static_cast<int>(block.size())});
    ::close(fd);
}

TEST_F(UringFileIo, OpenWriteCloseRenameAndSyncADirectory) {
    ASSERT_TRUE(uring_file_io::supported(*_ring)) << "kernel without IORING_OP_RENAMEAT and co.";
    uring_file_io io(*_ring, 1);  // one op at a time: each returns its slot to the pool
    storage::testing::check_file_operations(io, _dir);
}

TEST_F(UringFileIo, SingleOperationsGoOutTogetherInOneSubmit) {
    uring_file_io io(*_ring, 8);
    const int dir_fd = ::open(_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd, 0);
    recorder done;
    const char* names[] = {"x0", "x1", "x2", "x3"};
    for (const char* name : names) {
        io.open_at(dir_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644, done);
    }
    io.fsync(dir_fd, done);
    EXPECT_EQ(io.pending(), 5u);
    drain(io);
    ASSERT_EQ(done.results.size(), 5u);
    int zeros = 0;
    for (const int r : done.results) {
        EXPECT_GE(r, 0);
        if (r > 0) {
            recorder closed;
            io.close(r, closed);
            drain(io);
            EXPECT_EQ(closed.results, std::vector<int>{0});
        } else {
            ++zeros;  // the fsync (descriptor 0 is stdin, never a new file)
        }
    }
    EXPECT_EQ(zeros, 1);
    for (const char* name : names) EXPECT_TRUE(fs::exists(_dir / name)) << name;
    ::close(dir_fd);
}

}  // namespace
}  // namespace nagare::broker::io
