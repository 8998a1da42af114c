// A file_io for tests: forwards to sync_file_io, counts writes and syncs,
// and fails chosen writes with a given errno (the write is not performed).
// Every operation (of any kind) also gets an index in call order, so a test
// can fail one chosen operation or "crash" at one: from crash_at on nothing
// is performed and nothing completes, as if the process had died there.
// Reads do not pass through file_io (the log preads directly, file_io.h):
// read_syscall_counter counts them.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "storage/partition_log.h"
#include "storage/sync_file_io.h"

namespace nagare::storage::testing {

class counting_file_io final : public file_io {
public:
    static constexpr std::size_t never = std::numeric_limits<std::size_t>::max();

    std::size_t writes = 0;
    std::size_t datasyncs = 0;    // fdatasyncs asked for, with a write or alone
    std::size_t fail_writes = 0;  // how many of the next writes fail
    int fail_errno = ENOSPC;
    std::size_t operations = 0;          // operations asked for, of every kind
    std::size_t fail_operation = never;  // this operation (index) fails with fail_errno
    std::size_t crash_at = never;        // this operation and every later one vanish

    void write(int fd, std::span<const std::byte> bytes, std::uint64_t position, bool datasync,
               io_completion& done) noexcept override {
        ++writes;
        datasyncs += datasync ? 1 : 0;
        if (fail_writes > 0) {
            --fail_writes;
            _failed.push_back(&done);
            ++operations;
            return;
        }
        if (intercepted(done)) return;
        _inner.write(fd, bytes, position, datasync, done);
    }
    void datasync(int fd, io_completion& done) noexcept override {
        ++datasyncs;
        if (!intercepted(done)) _inner.datasync(fd, done);
    }
    void fsync(int fd, io_completion& done) noexcept override {
        if (!intercepted(done)) _inner.fsync(fd, done);
    }
    void open_at(int dir_fd, const char* name, int flags, unsigned mode,
                 io_completion& done) noexcept override {
        if (!intercepted(done)) _inner.open_at(dir_fd, name, flags, mode, done);
    }
    void close(int fd, io_completion& done) noexcept override {
        if (!intercepted(done)) _inner.close(fd, done);
    }
    void rename_at(int dir_fd, const char* from, const char* to,
                   io_completion& done) noexcept override {
        if (!intercepted(done)) _inner.rename_at(dir_fd, from, to, done);
    }
    std::size_t poll(bool wait) noexcept override {
        auto failed = std::move(_failed);
        _failed.clear();
        for (auto* done : failed) done->io_done(-fail_errno);
        return failed.size() + _inner.poll(wait);
    }
    [[nodiscard]] std::size_t pending() const noexcept override {
        return _failed.size() + _inner.pending();
    }
    // Operations dropped by a crash.
    [[nodiscard]] std::size_t vanished() const noexcept { return _vanished; }

private:
    // Counts the operation; true when it fails or vanishes instead of running.
    bool intercepted(io_completion& done) noexcept {
        const std::size_t index = operations++;
        if (index >= crash_at) {
            ++_vanished;
            return true;
        }
        if (index == fail_operation) {
            _failed.push_back(&done);
            return true;
        }
        return false;
    }

    sync_file_io _inner;
    std::vector<io_completion*> _failed;
    std::size_t _vanished = 0;
};

// Counts the read system calls (read, pread, ...) of this process since
// construction or reset(): the kernel's count in /proc/self/io (syscr),
// less this counter's own reads of that file. The process must be single
// threaded meanwhile.
class read_syscall_counter {
public:
    read_syscall_counter() : _fd(::open("/proc/self/io", O_RDONLY | O_CLOEXEC)) {
        EXPECT_GE(_fd, 0) << "/proc/self/io: " << std::strerror(errno);
        reset();
    }
    ~read_syscall_counter() {
        if (_fd >= 0) ::close(_fd);
    }
    read_syscall_counter(const read_syscall_counter&) = delete;
    read_syscall_counter& operator=(const read_syscall_counter&) = delete;

    void reset() {
        _start = sample();
        _own_reads = 1;
    }
    // The kernel counts a read as it returns: a sample does not count itself,
    // but each one before it does.
    [[nodiscard]] std::uint64_t reads() {
        const auto now = sample();
        return now - _start - _own_reads++;
    }

private:
    std::uint64_t sample() {
        char text[4096];
        const auto n = ::pread(_fd, text, sizeof text - 1, 0);
        EXPECT_GT(n, 0);
        text[n > 0 ? n : 0] = '\0';
        const char* field = std::strstr(text, "syscr:");
        EXPECT_NE(field, nullptr);
        return field == nullptr ? 0 : std::strtoull(field + 6, nullptr, 10);
    }

    int _fd;
    std::uint64_t _start = 0;
    std::uint64_t _own_reads = 0;
};

// Records what a partition log reports.
struct recording_listener final : log_listener {
    std::vector<offset> durable;
    std::vector<std::pair<offset, errc>> failed;
    std::vector<errc> sync_failed;

    void on_durable(offset end) noexcept override { durable.push_back(end); }
    void on_write_failed(offset from, errc error) noexcept override {
        failed.emplace_back(from, error);
    }
    void on_sync_failed(errc error) noexcept override { sync_failed.push_back(error); }
};

}  // namespace nagare::storage::testing
