#include "broker/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>

namespace nagare::broker {

namespace fs = std::filesystem;

std::expected<void, std::string> fsync_path(const fs::path& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return std::unexpected("cannot open " + path.string());
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) return std::unexpected("cannot fsync " + path.string());
    return {};
}

std::expected<void, std::string> write_file_atomically(const fs::path& file, std::string_view text) {
    auto tmp = file;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << text;
        if (!out.flush()) return std::unexpected("cannot write " + tmp.string());
    }
    if (auto ok = fsync_path(tmp, O_RDONLY); !ok) return ok;
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec) return std::unexpected("cannot rename " + tmp.string() + ": " + ec.message());
    return fsync_path(file.parent_path(), O_RDONLY | O_DIRECTORY);
}

}  // namespace nagare::broker
