// child_process: what nagare-bench needs to run a server it measures
// (nagared, nagare-gateway) as a child: start it, read /proc about it, stop it.
// One thread per child.
#pragma once

#include <csignal>

#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace nagare::bench {

// Forks and execs args[0] with args; the child gets SIGTERM when nagare-bench
// dies, and its stdout goes to `stdout_fd` (-1: to stderr, keeping
// nagare-bench's stdout for its table). The pid, or -1 (errno set).
[[nodiscard]] pid_t spawn_child(const std::vector<std::string>& args, int stdout_fd = -1);

// "exited with status N" / "killed by signal N", from a waitpid status.
[[nodiscard]] std::string exit_text(int status);

// utime + stime in seconds (/proc/<pid>/stat); nullopt when unreadable.
[[nodiscard]] std::optional<double> child_cpu_s(pid_t pid);
// VmHWM in KiB (/proc/<pid>/status); nullopt when unreadable.
[[nodiscard]] std::optional<std::uint64_t> child_peak_rss_kib(pid_t pid);

// `signal` (SIGTERM; nats-server exits 0 only on SIGINT), then wait up to
// `wait`; its exit status (negative: killed by that signal), or an error
// naming `name` if it had to be SIGKILLed.
// REQUIRES: pid > 0, a child of this process not yet reaped.
[[nodiscard]] std::expected<int, std::string> stop_child(pid_t pid, std::chrono::milliseconds wait,
                                                         std::string_view name, int signal = SIGTERM);

}  // namespace nagare::bench
