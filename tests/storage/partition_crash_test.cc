// What the broker promises across a SIGKILL and a full disk: every
// acknowledged record is there after a reopen, intact and in order; a full
// disk fails appends with storage_full, damages nothing, and appending works
// again once space is freed.
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/partition_log.h"
#include "tests/storage/partition_log_fixture.h"

namespace nagare::storage {
namespace {

// The record stored at offset `o` is a function of `o`, so a parent process
// can check what a killed child wrote.
struct numbered_record {
    std::string msg_id;
    std::vector<std::byte> payload;
    record_ref ref;

    // (std::string::append: g++ 12 at -O3 warns falsely on "literal" + std::string.)
    explicit numbered_record(std::uint64_t o)
        : msg_id(std::string("m-").append(std::to_string(o))), payload(o % 300) {
        for (std::size_t i = 0; i < payload.size(); ++i) {
            payload[i] = static_cast<std::byte>(o + i);
        }
        ref = {"project", "task.updated", msg_id, {}, payload};
    }
};

bool matches(const record_view& r) {
    const numbered_record want(r.record_offset.value);
    return r.project == "project" && r.subject == "task.updated" && r.msg_id == want.msg_id &&
           std::equal(r.payload.begin(), r.payload.end(), want.payload.begin(), want.payload.end());
}

std::uint64_t wall_ns() {
    return static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch() /
                                      std::chrono::nanoseconds(1));
}

// Child: append and flush forever; write every durable end to the pipe.
[[noreturn]] void run_child(const std::filesystem::path& dir, int ack_fd, std::uint64_t seed) {
    struct ack_listener final : log_listener {
        int fd = -1;
        void on_durable(offset end) noexcept override {
            if (::write(fd, &end.value, sizeof end.value) != sizeof end.value) _exit(3);
        }
        void on_write_failed(offset, errc) noexcept override { _exit(4); }
    } listener;
    listener.fd = ack_fd;
    partition_options options;
    options.durability_mode = durability::fsync;
    options.segment_bytes = 16 * 1024;
    options.index_interval_bytes = 512;
    options.preallocate_step_bytes = 8 * 1024;
    sync_file_io io;
    auto log = partition_log::open(dir, options, io);
    if (!log) _exit(2);
    (*log)->set_listener(&listener);
    std::mt19937_64 rng(seed);
    while (true) {
        const auto appends = 1 + rng() % 4;
        for (std::size_t a = 0; a < appends; ++a) {
            std::vector<numbered_record> owned;
            std::vector<record_ref> refs;
            const auto n = 1 + rng() % 5;
            owned.reserve(n);
            for (std::size_t i = 0; i < n; ++i) {
                owned.emplace_back((*log)->next_offset().value + i);
                refs.push_back(owned.back().ref);
            }
            if (!(*log)->append(refs, wall_ns())) _exit(5);
        }
        (*log)->flush();
        while (io.pending() > 0) io.poll(true);
    }
}

TEST(PartitionCrash, AcknowledgedRecordsSurviveSigkill) {
    testing::temp_dir dir;
    std::mt19937_64 rng(2024);
    std::uint64_t acked_total = 0;
    for (int round = 0; round < 20; ++round) {
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        const pid_t child = ::fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            ::close(fds[0]);
            run_child(dir.path(), fds[1], rng());
        }
        ::close(fds[1]);
        std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 40));
        ::kill(child, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(child, &status, 0), child);
        ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
        std::uint64_t acked = 0;
        std::uint64_t value = 0;
        while (::read(fds[0], &value, sizeof value) == sizeof value) acked = std::max(acked, value);
        ::close(fds[0]);
        acked_total = std::max(acked_total, acked);

        sync_file_io io;
        partition_options options;
        options.segment_bytes = 16 * 1024;
        auto log = partition_log::open(dir.path(), options, io);
        ASSERT_TRUE(log.has_value()) << "round " << round;
        ASSERT_GE((*log)->next_offset().value, acked_total) << "round " << round;
        std::uint64_t expected = 0;
        const auto end = (*log)->for_each_record(offset{0}, [&](const record_view& r) {
            EXPECT_EQ(r.record_offset.value, expected);
            EXPECT_TRUE(matches(r)) << "offset " << r.record_offset.value;
            ++expected;
            return !::testing::Test::HasFailure();
        });
        ASSERT_TRUE(end.has_value()) << to_string(end.error());
        ASSERT_EQ(expected, (*log)->next_offset().value);
        ASSERT_TRUE((*log)->close().has_value());
    }
    EXPECT_GT(acked_total, 0u);  // the child got to acknowledge something
}

// Mounts a small tmpfs at `path` for the life of the object (needs root).
class small_tmpfs {
public:
    small_tmpfs(const std::filesystem::path& path, std::size_t bytes) : _path(path) {
        std::filesystem::create_directories(path);
        const auto data = std::string("size=").append(std::to_string(bytes));
        _mounted = ::mount("tmpfs", path.c_str(), "tmpfs", 0, data.c_str()) == 0;
        _errno = errno;
    }
    ~small_tmpfs() {
        if (_mounted) ::umount2(_path.c_str(), MNT_DETACH);
    }
    [[nodiscard]] bool mounted() const { return _mounted; }
    [[nodiscard]] int error() const { return _errno; }

private:
    std::filesystem::path _path;
    bool _mounted = false;
    int _errno = 0;
};

using PartitionFullDisk = testing::partition_fixture;

TEST_F(PartitionFullDisk, AppendsFailWithStorageFullAndRecoverWhenSpaceIsFreed) {
    small_tmpfs fs(dir.path(), 512 * 1024);
    ASSERT_TRUE(fs.mounted()) << "cannot mount a tmpfs (the test needs root): "
                              << std::strerror(fs.error());
    {
        std::ofstream ballast(dir.path() / "ballast", std::ios::binary);
        const std::vector<char> bytes(128 * 1024, 'b');
        ballast.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    options.durability_mode = durability::fsync;
    options.segment_bytes = 64 * 1024;
    options.preallocate_step_bytes = 16 * 1024;
    options.write_buffer_bytes = 16 * 1024;
    open_log();
    while (listener.failed.empty()) {
        ASSERT_TRUE(append(4, 1000).has_value());
        flush_and_wait();
        ASSERT_LT(records.size(), 10'000u) << "the disk never filled";
    }
    EXPECT_EQ(listener.failed.back().second, errc::storage_full);
    const auto kept = listener.failed.back().first;
    EXPECT_EQ(log->next_offset(), kept);
    EXPECT_EQ(log->durable_end(), kept);
    model_cut(kept);
    expect_model();
    // Still full: the next write fails too, and nothing stored changes.
    const auto failures = listener.failed.size();
    ASSERT_TRUE(append(8, 1000).has_value());
    flush_and_wait();
    EXPECT_EQ(listener.failed.size(), failures + 1);
    model_cut(kept);
    expect_model();
    // Space is freed: appends work again and everything survives a reopen.
    std::filesystem::remove(dir.path() / "ballast");
    ASSERT_EQ(append(4, 1000).value(), kept);
    flush_and_wait();
    EXPECT_EQ(log->durable_end().value, records.size());
    EXPECT_EQ(listener.failed.size(), failures + 1);
    close_and_reopen();
    expect_model();
    log.reset();
}

}  // namespace
}  // namespace nagare::storage
