// What every file_io backend must do with the operations beyond write and
// datasync (open_at, close, fsync, rename_at): one scenario, run by the
// sync_file_io test (tests/storage) and the io_uring one (tests/broker).
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "storage/file_io.h"

namespace nagare::storage::testing {

struct result_recorder final : io_completion {
    std::vector<int> results;
    void io_done(int result) noexcept override { results.push_back(result); }
};

// Runs one queued operation to its completion; its result.
inline int complete_one(file_io& io, result_recorder& done) {
    const auto before = done.results.size();
    for (int i = 0; i < 1000 && done.results.size() == before; ++i) io.poll(true);
    EXPECT_EQ(done.results.size(), before + 1);
    EXPECT_EQ(io.pending(), 0u);
    return done.results.empty() ? -EINVAL : done.results.back();
}

inline std::string file_text(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// `dir` exists and is empty.
inline void check_file_operations(file_io& io, const std::filesystem::path& dir) {
    const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir_fd, 0) << std::strerror(errno);
    result_recorder done;
    const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;

    // open_at creates; the descriptor writes; close gives 0.
    io.open_at(dir_fd, "a.tmp", flags, 0640, done);
    EXPECT_FALSE(std::filesystem::exists(dir / "a.tmp")) << "an operation runs only in poll";
    const int fd = complete_one(io, done);
    ASSERT_GE(fd, 0) << std::strerror(-fd);
    EXPECT_EQ(std::filesystem::status(dir / "a.tmp").permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                  std::filesystem::perms::group_read);
    const std::string text = "new state";
    io.write(fd, std::as_bytes(std::span{text}), 0, true, done);
    EXPECT_EQ(complete_one(io, done), static_cast<int>(text.size()));
    io.fsync(fd, done);
    EXPECT_EQ(complete_one(io, done), 0);
    io.close(fd, done);
    EXPECT_EQ(complete_one(io, done), 0);
    EXPECT_EQ(::fcntl(fd, F_GETFD), -1) << "closed";

    // rename_at replaces the target atomically; then the directory syncs.
    { std::ofstream(dir / "a") << "old state"; }
    io.rename_at(dir_fd, "a", "a.prev", done);
    EXPECT_EQ(complete_one(io, done), 0);
    io.rename_at(dir_fd, "a.tmp", "a", done);
    EXPECT_EQ(complete_one(io, done), 0);
    io.fsync(dir_fd, done);
    EXPECT_EQ(complete_one(io, done), 0);
    EXPECT_EQ(file_text(dir / "a"), text);
    EXPECT_EQ(file_text(dir / "a.prev"), "old state");
    EXPECT_FALSE(std::filesystem::exists(dir / "a.tmp"));

    // Failures come back as -errno and change nothing.
    io.rename_at(dir_fd, "missing", "a", done);
    EXPECT_EQ(complete_one(io, done), -ENOENT);
    EXPECT_EQ(file_text(dir / "a"), text);
    io.open_at(dir_fd, "no/such/dir", flags, 0644, done);
    EXPECT_EQ(complete_one(io, done), -ENOENT);
    io.open_at(dir_fd, "a", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644, done);
    EXPECT_EQ(complete_one(io, done), -EEXIST);
    io.close(fd, done);  // closed above
    EXPECT_EQ(complete_one(io, done), -EBADF);
    io.fsync(fd, done);
    EXPECT_EQ(complete_one(io, done), -EBADF);
    ::close(dir_fd);
}

}  // namespace nagare::storage::testing
