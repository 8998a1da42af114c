// Full disk: a partition_log (durability=fsync, io_uring backend) on a small
// tmpfs mounted by the test. Appends fail with errc::storage_full once the
// file system is full, nothing stored before is damaged, further appends fail
// the same way, a reopen on the full disk recovers exactly what was stored,
// and appends succeed again, with dense offsets, once space is freed.
// Mounting needs root (CI runs as root); every test unmounts (MNT_DETACH) in
// TearDown, also when it fails.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "broker/io/ring.h"
#include "broker/io/uring_file_io.h"
#include "storage/partition_log.h"
#include "tests/broker/storage_system_support.h"

namespace nagare::broker {
namespace {

namespace fs = std::filesystem;
using namespace storage_testing;
using storage::errc;
using storage::kib;
using steady = std::chrono::steady_clock;

constexpr int fill_turns_max = 20'000;
constexpr auto fill_time_max = std::chrono::seconds(20);
constexpr int further_appends = 3;
constexpr int refill_turns = 20;
constexpr std::uint64_t filler_bytes = 1024 * kib;
constexpr std::uint64_t page_bytes = 4 * kib;
constexpr unsigned ring_entries = 64;
constexpr int inode_fillers_max = 1'000;
constexpr int take_pages_max = 1'024;  // 4 MiB of pages

// What the log reported, and the log's state at the moment of a failure.
struct full_disk_listener final : storage::log_listener {
    storage::partition_log* log = nullptr;
    std::vector<offset> durable;
    struct failure {
        offset from;
        errc error;
        offset next_offset;  // at the call
        offset durable_end;  // at the call
    };
    std::vector<failure> failed;

    void on_durable(offset end) noexcept override { durable.push_back(end); }
    void on_write_failed(offset from, errc error) noexcept override {
        failed.push_back({from, error, log->next_offset(), log->durable_end()});
    }
};

class StorageFullDisk : public ::testing::Test {
protected:
    void SetUp() override {
        _mount = fs::temp_directory_path() /
                 ("nagare-full-" + std::to_string(::getpid()) + "-" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::create_directories(_mount);
        auto r = io::ring::create(ring_entries);
        ASSERT_TRUE(r.has_value()) << "io_uring_queue_init: errno " << r.error();
        _ring = std::move(*r);
        _io = std::make_unique<io::uring_file_io>(*_ring);
        options.durability_mode = storage::durability::fsync;
        options.index_interval_bytes = 1024;  // index entries, and index writes, on a full disk
        options.batch_bytes_target = 16 * kib;
        options.write_buffer_bytes = 256 * kib;
    }

    void TearDown() override {
        if (_log) {
            (void)drain(*_io);
            // A log with I/O still in flight must not be destroyed: leak it.
            if (_log->io_in_flight()) (void)_log.release();
            _log.reset();
        }
        _io.reset();
        _ring.reset();
        if (_mounted) ::umount2(_mount.c_str(), MNT_DETACH);
        std::error_code ignored;
        fs::remove_all(_mount, ignored);
    }

    void mount_tmpfs(const std::string& mount_options) {
        ASSERT_EQ(::mount("tmpfs", _mount.c_str(), "tmpfs", 0, mount_options.c_str()), 0)
            << "mounting a tmpfs needs root: " << std::strerror(errno);
        _mounted = true;
    }

    [[nodiscard]] fs::path partition_dir() const { return _mount / "p0"; }

    void open_log() {
        auto opened = storage::partition_log::open(partition_dir(), options, *_io);
        ASSERT_TRUE(opened.has_value()) << "open: " << storage::to_string(opened.error());
        _log = std::move(*opened);
        listener.log = _log.get();
        _log->set_listener(&listener);
    }

    void close_log() {
        ASSERT_TRUE(drain(*_io));
        const auto closed = _log->close();
        EXPECT_TRUE(closed.has_value()) << "close: " << storage::to_string(closed.error());
        _log.reset();
        listener.log = nullptr;
    }

    // A file of `bytes` that takes space on the tmpfs.
    void write_filler(const fs::path& path, std::uint64_t bytes) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        const std::vector<char> block(64 * kib, 'f');
        for (std::uint64_t done = 0; done < bytes; done += block.size()) {
            ASSERT_EQ(::pwrite(fd, block.data(), block.size(), static_cast<off_t>(done)),
                      static_cast<ssize_t>(block.size()))
                << std::strerror(errno);
        }
        ::close(fd);
    }

    // A file that takes every page still free (bounded: the tmpfs is small).
    void take_free_space(const fs::path& path) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        const std::vector<char> page(page_bytes, 'r');
        for (int i = 0; i < take_pages_max; ++i) {
            if (::write(fd, page.data(), page.size()) <= 0) break;  // ENOSPC: every page is taken
        }
        ::close(fd);
    }

    [[nodiscard]] std::uint64_t free_bytes() const {
        struct statvfs st {};
        EXPECT_EQ(::statvfs(_mount.c_str(), &st), 0) << std::strerror(errno);
        return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    }

    [[nodiscard]] std::size_t log_files() const {
        std::size_t count = 0;
        for (const auto& entry : fs::directory_iterator(partition_dir())) {
            count += entry.path().extension() == ".log" ? 1 : 0;
        }
        return count;
    }

    // Appends the next `n` records (offset_record content), flushes and waits.
    // The append itself must succeed: the buffer is empty at every call.
    void append_flush(std::size_t n) {
        records.resize(std::max(records.size(), n));
        refs.clear();
        const offset base = _log->next_offset();
        for (std::size_t i = 0; i < n; ++i) {
            records[i].fill(offset{base.value + i});
            refs.push_back(records[i].ref());
        }
        const auto appended = _log->append(refs, now_ns());
        ASSERT_TRUE(appended.has_value()) << "append: " << storage::to_string(appended.error());
        ASSERT_EQ(*appended, base);
        _log->flush();
        ASSERT_TRUE(drain(*_io));
    }

    // The number of next records whose payloads add up to more than `bytes`.
    [[nodiscard]] std::size_t records_over(std::uint64_t bytes) const {
        offset_record r;
        std::uint64_t total = 0;
        std::size_t n = 0;
        for (; total <= bytes; ++n) {
            r.fill(offset{_log->next_offset().value + n});
            total += r.approx_bytes();
        }
        return n;
    }

    // Appends random batches until a write fails; checks the failure and
    // returns the durable end before it.
    offset fill_until_full(std::mt19937_64& rng) {
        const auto start = steady::now();
        for (int turn = 0; turn < fill_turns_max && steady::now() - start < fill_time_max; ++turn) {
            const offset before = _log->durable_end();
            const std::size_t n = 1 + rng() % batch_records_max;
            append_flush(n);
            if (::testing::Test::HasFatalFailure()) return before;
            if (!listener.failed.empty()) {
                const auto& f = listener.failed.front();
                EXPECT_EQ(f.error, errc::storage_full) << storage::to_string(f.error);
                EXPECT_EQ(f.from, before) << "the failure drops exactly the unwritten append";
                EXPECT_EQ(f.next_offset, before) << "next_offset() falls back at the call";
                EXPECT_EQ(f.durable_end, before);
                EXPECT_EQ(_log->next_offset(), before);
                EXPECT_EQ(_log->durable_end(), before);
                return before;
            }
            EXPECT_EQ(_log->durable_end().value, before.value + n);
        }
        ADD_FAILURE() << "the disk never filled up";
        return _log->durable_end();
    }

    // Runs a whole episode: fill, fail, fail again, free space, append again,
    // reopen.
    void full_disk_episode(std::uint64_t seed) {
        mount_tmpfs("size=4m");
        write_filler(_mount / "filler", filler_bytes);
        open_log();
        ASSERT_FALSE(HasFatalFailure());
        std::mt19937_64 rng(seed);

        const offset stored = fill_until_full(rng);
        ASSERT_FALSE(HasFailure());
        ASSERT_GT(stored.value, 0u);
        expect_records(*_log, offset{0}, stored);
        std::printf(
            "[ full-disk ] %llu records (%llu log bytes, %zu segments) stored before "
            "ENOSPC, %llu bytes free\n",
            static_cast<unsigned long long>(stored.value),
            static_cast<unsigned long long>(_log->bytes()), _log->segment_count(),
            static_cast<unsigned long long>(free_bytes()));

        // Appends larger than the free space fail the same way, take no
        // space and damage nothing.
        const auto free_before = free_bytes();
        for (int i = 0; i < further_appends; ++i) {
            const std::size_t n = records_over(free_before + 2 * page_bytes);
            append_flush(n);
            ASSERT_FALSE(HasFatalFailure());
            ASSERT_EQ(listener.failed.size(), static_cast<std::size_t>(2 + i))
                << "an append of " << n << " records larger than the free space succeeded";
            const auto& f = listener.failed.back();
            EXPECT_EQ(f.error, errc::storage_full);
            EXPECT_EQ(f.from, stored);
            EXPECT_EQ(_log->next_offset(), stored);
            EXPECT_EQ(_log->durable_end(), stored);
        }
        // A seal at a roll may still write a page of index.
        EXPECT_GE(free_bytes() + page_bytes, free_before) << "failed writes left data behind";
        expect_records(*_log, offset{0}, stored);

        // Free space: appends succeed again and continue the offsets densely.
        fs::remove(_mount / "filler");
        const auto failures = listener.failed.size();
        for (int turn = 0; turn < refill_turns; ++turn) {
            const offset before = _log->durable_end();
            const std::size_t n = 1 + rng() % batch_records_max;
            append_flush(n);
            ASSERT_FALSE(HasFatalFailure());
            ASSERT_EQ(listener.failed.size(), failures) << "append failed after space was freed";
            ASSERT_EQ(_log->durable_end().value, before.value + n);
        }
        const offset end = _log->durable_end();
        expect_records(*_log, offset{0}, end);

        // And a reopen after the episode holds exactly those records.
        close_log();
        open_log();
        ASSERT_FALSE(HasFatalFailure());
        EXPECT_EQ(_log->durable_end(), end);
        expect_records(*_log, offset{0}, end);
        append_flush(1);
        EXPECT_EQ(_log->durable_end().value, end.value + 1);
    }

    fs::path _mount;
    bool _mounted = false;
    std::unique_ptr<io::ring> _ring;
    std::unique_ptr<io::uring_file_io> _io;
    std::unique_ptr<storage::partition_log> _log;
    full_disk_listener listener;
    storage::partition_options options;
    std::vector<offset_record> records;
    std::vector<storage::record_ref> refs;
};

TEST_F(StorageFullDisk, AppendsFailWithStorageFullAndSucceedAfterSpaceIsFreed) {
    options.segment_bytes = 512 * kib;
    options.preallocate_step_bytes = 128 * kib;
    full_disk_episode(7);
}

// Segments smaller than one flush: every flush rolls first, so the disk fills
// up around segment creation, sealing and preallocation of the new segment.
TEST_F(StorageFullDisk, AppendsFailWithStorageFullAtSegmentRolls) {
    options.segment_bytes = 16 * kib;
    options.preallocate_step_bytes = 16 * kib;
    full_disk_episode(8);
}

// A broker restarted while its disk is still full (every page taken) must
// recover the partition: the stored records are intact and readable, and only
// the index (a cache that recovery rebuilds from the log) may go unwritten.
// With index_interval_bytes large, the active segment's .idx/.tix are still
// empty when the disk fills (entries are written at seal, close, or every
// index_pending_entries_max), so recovery has index entries to write.
TEST_F(StorageFullDisk, ReopenOnAFullDiskRecoversTheStoredRecords) {
    options.segment_bytes = 512 * kib;
    options.preallocate_step_bytes = 128 * kib;
    options.index_interval_bytes = 64 * kib;
    mount_tmpfs("size=4m");
    write_filler(_mount / "filler", filler_bytes);
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    std::mt19937_64 rng(9);
    const offset stored = fill_until_full(rng);
    ASSERT_FALSE(HasFailure());
    take_free_space(_mount / "rest");
    ASSERT_LT(free_bytes(), page_bytes);

    // close() writes the index: on a full disk it may report storage_full,
    // which loses nothing (the log data is synced either way).
    ASSERT_TRUE(drain(*_io));
    const auto closed = _log->close();
    if (!closed) {
        EXPECT_EQ(closed.error(), errc::storage_full) << storage::to_string(closed.error());
    }
    _log.reset();
    open_log();
    ASSERT_FALSE(HasFatalFailure()) << "the partition cannot be opened on a full disk";
    EXPECT_EQ(_log->durable_end(), stored);
    expect_records(*_log, offset{0}, stored);

    fs::remove(_mount / "filler");
    append_flush(5);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(listener.failed.size(), 1u) << "append failed after space was freed";
    EXPECT_EQ(_log->durable_end().value, stored.value + 5);
}

// A roll when the disk is full: sealing the old segment gives back its
// preallocated tail (up to preallocate_step_bytes), which is the space the
// append that caused the roll needs. The old segment's index has not been
// written yet (fewer than index_pending_entries_max entries), so seal() also
// has index pages to write, which a full disk refuses.
TEST_F(StorageFullDisk, RollOnAFullDiskGivesBackThePreallocatedTail) {
    options.segment_bytes = 64 * kib;
    options.preallocate_step_bytes = 256 * kib;
    options.index_interval_bytes = 64 * kib;
    mount_tmpfs("size=4m");
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    while (_log->bytes() < options.segment_bytes) {
        append_flush(16);
        ASSERT_FALSE(HasFatalFailure());
    }
    ASSERT_TRUE(listener.failed.empty());
    const auto old_log_bytes = _log->segments().back()->log_bytes();
    const auto old_path = _log->segments().back()->log_path();
    ASSERT_GT(fs::file_size(old_path), old_log_bytes + 64 * kib) << "a preallocated tail";
    take_free_space(_mount / "rest");
    ASSERT_LT(free_bytes(), page_bytes);

    const offset before = _log->durable_end();
    append_flush(4);  // rolls first: seal the old segment, then write to the new one
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(_log->segment_count(), 2u) << "the roll happened";
    EXPECT_EQ(fs::file_size(old_path), old_log_bytes)
        << "the sealed segment still holds its preallocated tail";
    EXPECT_TRUE(listener.failed.empty())
        << "the append failed with "
        << (listener.failed.empty() ? "-" : storage::to_string(listener.failed.back().error))
        << " although the roll could have freed " << fs::file_size(old_path) - old_log_bytes
        << " bytes";

    // Whatever happened, nothing stored is damaged and a reopen holds it all.
    fs::remove(_mount / "rest");
    append_flush(4);
    ASSERT_FALSE(HasFatalFailure());
    const offset end = _log->durable_end();
    EXPECT_GE(end.value, before.value + 4);
    expect_records(*_log, offset{0}, end);
    close_log();
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(_log->durable_end(), end);
    expect_records(*_log, offset{0}, end);
}

// A file system out of inodes (ENOSPC from open(O_CREAT)) while a segment
// rolls: the roll must either happen or leave no trace, and the partition must
// reopen with every record.
TEST_F(StorageFullDisk, RollWithoutFreeInodesLeavesAReopenablePartition) {
    mount_tmpfs("size=4m,nr_inodes=64");
    options.segment_bytes = 16 * kib;
    options.preallocate_step_bytes = 16 * kib;
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    while (_log->bytes() < options.segment_bytes) {
        append_flush(batch_records_max);
        ASSERT_FALSE(HasFatalFailure());
    }
    ASSERT_EQ(_log->segment_count(), 1u);
    // Use up all inodes but one: the roll can create <base>.log, not <base>.idx.
    std::vector<fs::path> fillers;
    struct statvfs st {};
    for (int i = 0; i < inode_fillers_max; ++i) {
        ASSERT_EQ(::statvfs(_mount.c_str(), &st), 0);
        if (st.f_ffree <= 1) break;
        fillers.push_back(_mount / ("inode-" + std::to_string(i)));
        const int fd = ::open(fillers.back().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        ::close(fd);
    }
    ASSERT_EQ(st.f_ffree, 1u);

    append_flush(8);  // the roll fails; the write goes to the old segment
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(listener.failed.empty());
    EXPECT_EQ(_log->segment_count(), 1u);
    const std::size_t log_files_after_failed_roll = log_files();

    for (const auto& filler : fillers) fs::remove(filler);
    append_flush(8);  // now the roll succeeds
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(_log->segment_count(), 2u);
    const offset end = _log->durable_end();
    expect_records(*_log, offset{0}, end);

    close_log();
    open_log();
    ASSERT_FALSE(HasFatalFailure()) << "the partition cannot be reopened; the failed roll left "
                                    << log_files_after_failed_roll << " .log files for 1 segment";
    EXPECT_EQ(_log->durable_end(), end);
    expect_records(*_log, offset{0}, end);
}

// Index files lost while the file system has no inode left to recreate them:
// the partition opens (the index is a cache, rebuilt in memory), serves
// reads, truncates, and a tick writes the index files of the active and of a
// sealed segment once inodes are free again.
TEST_F(StorageFullDisk, LostIndexFilesWithoutFreeInodesAreKeptInMemoryAndWrittenLater) {
    mount_tmpfs("size=4m,nr_inodes=64");
    options.segment_bytes = 16 * kib;
    options.preallocate_step_bytes = 16 * kib;
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    while (_log->segment_count() < 3) {
        append_flush(batch_records_max);
        ASSERT_FALSE(HasFatalFailure());
    }
    const offset end = _log->durable_end();
    const offset active_base = _log->segments().back()->base_offset();
    ASSERT_GE(end.value, active_base.value + 2);
    const std::vector<offset> lost{_log->segments().front()->base_offset(), active_base};
    close_log();
    for (const auto base : lost) {
        fs::remove(partition_dir() / storage::segment_file_name(base, "idx"));
        fs::remove(partition_dir() / storage::segment_file_name(base, "tix"));
    }
    std::vector<fs::path> fillers;
    struct statvfs st {};
    for (int i = 0; i < inode_fillers_max; ++i) {
        ASSERT_EQ(::statvfs(_mount.c_str(), &st), 0);
        if (st.f_ffree == 0) break;
        fillers.push_back(_mount / ("inode-" + std::to_string(i)));
        const int fd = ::open(fillers.back().c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ASSERT_GE(fd, 0) << std::strerror(errno);
        ::close(fd);
    }
    ASSERT_EQ(st.f_ffree, 0u);

    open_log();
    ASSERT_FALSE(HasFatalFailure()) << "the partition cannot be opened without its index files";
    EXPECT_EQ(_log->recovery().indexes_rebuilt, lost.size());
    EXPECT_EQ(_log->durable_end(), end);
    expect_records(*_log, offset{0}, end);
    for (const auto base : lost) {
        EXPECT_FALSE(fs::exists(partition_dir() / storage::segment_file_name(base, "idx")));
    }
    // A truncate cannot write the index either, and is done all the same.
    const offset cut{active_base.value + 1};
    const auto truncated = _log->truncate(cut);
    ASSERT_TRUE(truncated.has_value()) << storage::to_string(truncated.error());
    EXPECT_EQ(_log->durable_end(), cut);
    expect_records(*_log, offset{0}, cut);

    for (const auto& filler : fillers) fs::remove(filler);
    _log->tick(now_ns());
    for (const auto& seg : _log->segments()) {
        EXPECT_FALSE(seg->index_dirty()) << seg->base_offset().value;
        ASSERT_TRUE(fs::exists(seg->idx_path())) << seg->base_offset().value;
        EXPECT_EQ(fs::file_size(seg->idx_path()), seg->index().size() * storage::idx_entry_bytes);
        EXPECT_EQ(fs::file_size(seg->tix_path()), seg->index().size() * storage::tix_entry_bytes);
    }
    append_flush(4);
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_TRUE(listener.failed.empty());
    const offset final_end = _log->durable_end();
    EXPECT_EQ(final_end.value, cut.value + 4);
    close_log();
    open_log();
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(_log->recovery().indexes_rebuilt, 0u);
    EXPECT_EQ(_log->durable_end(), final_end);
    expect_records(*_log, offset{0}, final_end);
}

}  // namespace
}  // namespace nagare::broker
