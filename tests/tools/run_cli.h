// Runs the `nagare` binary (NAGARE_CLI_PATH) with arguments through the shell
// and collects its exit code and output (stdout and stderr together).
#pragma once

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

#include <sys/wait.h>

namespace nagare::testing {

struct run_result {
    int exit_code = -1;
    std::string output;  // stdout and stderr
};

inline run_result run_cli(const std::string& args) {
    const std::string command = std::string(NAGARE_CLI_PATH) + " " + args + " 2>&1";
    run_result result;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 4096> chunk{};
    while (const auto n = std::fread(chunk.data(), 1, chunk.size(), pipe)) {
        result.output.append(chunk.data(), n);
    }
    const int status = ::pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

inline std::size_t count_lines(const std::string& text) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace nagare::testing
