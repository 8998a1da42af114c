// A file_io for tests: forwards to sync_file_io, counts writes and syncs,
// and fails chosen writes with a given errno (the write is not performed).
#pragma once

#include <cerrno>
#include <cstddef>
#include <vector>

#include "storage/partition_log.h"
#include "storage/sync_file_io.h"

namespace nagare::storage::testing {

class counting_file_io final : public file_io {
public:
    std::size_t writes = 0;
    std::size_t datasyncs = 0;    // fdatasyncs asked for, with a write or alone
    std::size_t fail_writes = 0;  // how many of the next writes fail
    int fail_errno = ENOSPC;

    void write(int fd, std::span<const std::byte> bytes, std::uint64_t position, bool datasync,
               io_completion& done) noexcept override {
        ++writes;
        datasyncs += datasync ? 1 : 0;
        if (fail_writes > 0) {
            --fail_writes;
            _failed.push_back(&done);
            return;
        }
        _inner.write(fd, bytes, position, datasync, done);
    }
    void datasync(int fd, io_completion& done) noexcept override {
        ++datasyncs;
        _inner.datasync(fd, done);
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

private:
    sync_file_io _inner;
    std::vector<io_completion*> _failed;
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
