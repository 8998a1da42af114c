#include "storage/posix_file.h"

#include <cerrno>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace nagare::storage {

namespace {
std::unexpected<errc> last_error() noexcept { return std::unexpected(from_errno(errno)); }
}  // namespace

posix_file& posix_file::operator=(posix_file&& other) noexcept {
    if (this != &other) {
        close();
        _fd = other.release();
    }
    return *this;
}

std::expected<posix_file, errc> posix_file::open(const std::filesystem::path& path, bool create) {
    const int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
    int fd;
    do {
        fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return last_error();
    return posix_file(fd);
}

std::expected<posix_file, errc> posix_file::open_or_create(const std::filesystem::path& path,
                                                           bool& created) {
    created = false;
    int fd;
    do {
        fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_CREAT | O_EXCL, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) {
        created = true;
        return posix_file(fd);
    }
    if (errno != EEXIST) return last_error();
    return open(path, false);
}

std::expected<posix_file, errc> posix_file::open_read_only(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return last_error();
    return posix_file(fd);
}

std::expected<posix_file, errc> posix_file::open_directory(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return last_error();
    return posix_file(fd);
}

int posix_file::release() noexcept {
    const int fd = _fd;
    _fd = -1;
    return fd;
}

void posix_file::close() noexcept {
    if (_fd >= 0) ::close(_fd);
    _fd = -1;
}

std::expected<std::uint64_t, errc> posix_file::size_bytes() const noexcept {
    struct stat st {};
    if (::fstat(_fd, &st) != 0) return last_error();
    return static_cast<std::uint64_t>(st.st_size);
}

std::expected<std::size_t, errc> posix_file::read_at(std::span<std::byte> bytes,
                                                     std::uint64_t position) const noexcept {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const auto n = ::pread(_fd, bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(position + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return last_error();
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return done;
}

std::expected<void, errc> posix_file::write_at(std::span<const std::byte> bytes,
                                               std::uint64_t position) const noexcept {
    const int result = pwrite_all(_fd, bytes, position);
    if (result < 0) return std::unexpected(from_errno(-result));
    return {};
}

std::expected<void, errc> posix_file::truncate(std::uint64_t size_bytes) const noexcept {
    int result;
    do {
        result = ::ftruncate(_fd, static_cast<off_t>(size_bytes));
    } while (result != 0 && errno == EINTR);
    if (result != 0) return last_error();
    return {};
}

std::expected<void, errc> posix_file::preallocate(std::uint64_t size_bytes) const noexcept {
    int result;
    do {
        result = ::fallocate(_fd, 0, 0, static_cast<off_t>(size_bytes));
    } while (result != 0 && errno == EINTR);
    if (result == 0) return {};
    if (errno == EOPNOTSUPP || errno == ENOSYS) return std::unexpected(errc::invalid_argument);
    return last_error();
}

std::expected<void, errc> posix_file::datasync() const noexcept {
    const int result = fdatasync_fd(_fd);
    if (result < 0) return std::unexpected(from_errno(-result));
    return {};
}

std::expected<void, errc> posix_file::sync() const noexcept {
    int result;
    do {
        result = ::fsync(_fd);
    } while (result != 0 && errno == EINTR);
    if (result != 0) return last_error();
    return {};
}

int pwrite_all(int fd, std::span<const std::byte> bytes, std::uint64_t position) noexcept {
    std::size_t done = 0;
    while (done < bytes.size()) {
        const auto n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                                static_cast<off_t>(position + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) return -EIO;  // no progress on a regular file: give up rather than spin
        done += static_cast<std::size_t>(n);
    }
    return 0;
}

int fdatasync_fd(int fd) noexcept {
    int result;
    do {
        result = ::fdatasync(fd);
    } while (result != 0 && errno == EINTR);
    return result == 0 ? 0 : -errno;
}

std::expected<void, errc> fsync_directory(const std::filesystem::path& path) {
    auto dir = posix_file::open_directory(path);
    if (!dir) return std::unexpected(dir.error());
    return dir->sync();
}

}  // namespace nagare::storage
