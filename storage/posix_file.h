// A file descriptor that closes itself, and the blocking POSIX calls the
// log makes outside the write path (open, pread, truncate, preallocate,
// directory sync). Every failure becomes an errc (from_errno); EINTR is retried.
//
// Plain values; owned by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <span>

#include "storage/errc.h"

namespace nagare::storage {

class posix_file {
public:
    posix_file() = default;
    explicit posix_file(int fd) noexcept : _fd(fd) {}
    posix_file(posix_file&& other) noexcept : _fd(other.release()) {}
    posix_file& operator=(posix_file&& other) noexcept;
    posix_file(const posix_file&) = delete;
    posix_file& operator=(const posix_file&) = delete;
    ~posix_file() { close(); }

    // Opens (and with `create`, creates) a file for reading and writing.
    [[nodiscard]] static std::expected<posix_file, errc> open(const std::filesystem::path& path,
                                                              bool create);
    // Opens a file for reading and writing, creating it if it does not exist;
    // `created` tells whether this call made it (O_CREAT | O_EXCL first), so a
    // caller that fails part-way can remove exactly the files it made.
    [[nodiscard]] static std::expected<posix_file, errc> open_or_create(
        const std::filesystem::path& path, bool& created);
    // Opens a file for reading only (tools that must not change a log).
    [[nodiscard]] static std::expected<posix_file, errc> open_read_only(
        const std::filesystem::path& path);
    // Opens a directory, for fsync_directory.
    [[nodiscard]] static std::expected<posix_file, errc> open_directory(
        const std::filesystem::path& path);

    [[nodiscard]] int fd() const noexcept { return _fd; }
    [[nodiscard]] bool is_open() const noexcept { return _fd >= 0; }
    int release() noexcept;
    void close() noexcept;

    [[nodiscard]] std::expected<std::uint64_t, errc> size_bytes() const noexcept;
    // Reads up to bytes.size() at `position`; fewer only at the end of the file.
    [[nodiscard]] std::expected<std::size_t, errc> read_at(std::span<std::byte> bytes,
                                                           std::uint64_t position) const noexcept;
    [[nodiscard]] std::expected<void, errc> write_at(std::span<const std::byte> bytes,
                                                     std::uint64_t position) const noexcept;
    [[nodiscard]] std::expected<void, errc> truncate(std::uint64_t size_bytes) const noexcept;
    // Reserves [0, size_bytes) and extends the file size to it (fallocate mode 0).
    // errc::invalid_argument where the file system cannot preallocate.
    [[nodiscard]] std::expected<void, errc> preallocate(std::uint64_t size_bytes) const noexcept;
    [[nodiscard]] std::expected<void, errc> datasync() const noexcept;
    [[nodiscard]] std::expected<void, errc> sync() const noexcept;

private:
    int _fd = -1;
};

// pwrite of all of `bytes` at `position` (short writes continue): 0 or -errno.
[[nodiscard]] int pwrite_all(int fd, std::span<const std::byte> bytes,
                             std::uint64_t position) noexcept;

// fdatasync with EINTR retried: 0 or -errno.
[[nodiscard]] int fdatasync_fd(int fd) noexcept;

// Makes the directory's entries (files created, renamed, removed) durable.
[[nodiscard]] std::expected<void, errc> fsync_directory(const std::filesystem::path& path);

}  // namespace nagare::storage
