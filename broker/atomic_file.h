// Small files written atomically (stream.toml, consumer definitions):
// write `<file>.tmp`, fsync it, rename it over `<file>`, fsync the directory.
// A crash leaves the old file or the new one, never a mix. Blocking: admin
// and start-up paths only.
#pragma once

#include <expected>
#include <filesystem>
#include <string>
#include <string_view>

namespace nagare::broker {

[[nodiscard]] std::expected<void, std::string> write_file_atomically(
    const std::filesystem::path& file, std::string_view text);

// fsync of a file or directory (flags: O_RDONLY, or O_RDONLY | O_DIRECTORY).
[[nodiscard]] std::expected<void, std::string> fsync_path(const std::filesystem::path& path,
                                                          int flags);

}  // namespace nagare::broker
