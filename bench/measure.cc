#include "bench/measure.h"

#include <charconv>
#include <thread>

#include <sys/resource.h>
#include <unistd.h>

#include "bench/limits.h"

namespace nagare::bench {

std::int64_t since_ns(run_clock::time_point epoch) noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(run_clock::now() - epoch).count();
}

double seconds_between(std::int64_t from_ns, std::int64_t to_ns) noexcept {
    return static_cast<double>(to_ns - from_ns) / 1e9;
}

double process_cpu_s() noexcept {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return s(u.ru_utime) + s(u.ru_stime);
}

std::string make_run_id() {
    const auto wall_ns =
        std::chrono::system_clock::now().time_since_epoch() / std::chrono::nanoseconds(1);
    char id[40];
    const auto end = std::to_chars(
        id, id + sizeof id,
        static_cast<std::uint64_t>(wall_ns) ^ static_cast<std::uint64_t>(::getpid()), 36);
    return std::string(id, end.ptr);
}

mark take_mark(run_clock::time_point epoch, std::uint64_t count, const server_probe* server) {
    mark m;
    m.at_ns = since_ns(epoch);
    m.count = count;
    if (server != nullptr && server->cpu_s) m.server_cpu_s = server->cpu_s();
    if (server != nullptr && server->counters) m.server_counters = server->counters();
    m.client_cpu_s = process_cpu_s();
    return m;
}

bool poll_until(const std::function<bool()>& done, const std::function<std::uint64_t()>& progress,
                std::chrono::milliseconds idle_max, const std::function<void()>& on_poll) {
    std::uint64_t seen = progress();
    auto last_change = run_clock::now();
    for (;;) {
        if (on_poll) on_poll();
        if (done()) return true;
        const auto now = run_clock::now();
        if (const auto value = progress(); value != seen) {
            seen = value;
            last_change = now;
        } else if (now - last_change >= idle_max) {
            return false;
        }
        std::this_thread::sleep_for(coordinator_poll);
    }
}

bool await_producers(const std::function<bool()>& done,
                     const std::function<std::uint64_t()>& resolved,
                     std::chrono::milliseconds stall_max, const std::function<void()>& close_all,
                     const std::function<void()>& on_poll) {
    if (poll_until(done, resolved, stall_max, on_poll)) return true;
    close_all();
    while (!done()) std::this_thread::sleep_for(coordinator_poll);
    return false;
}

void fill_rates(run_result& r, std::uint64_t messages, std::size_t message_bytes,
                std::int64_t from_ns, std::int64_t to_ns) {
    r.messages_measured = messages;
    if (to_ns <= from_ns) return;
    r.measured_s = seconds_between(from_ns, to_ns);
    r.msgs_per_s = static_cast<double>(messages) / r.measured_s;
    r.mb_per_s = r.msgs_per_s * static_cast<double>(message_bytes) / 1e6;
}

void fill_process_figures(run_result& r, const mark& start, const mark& end,
                          const server_probe* server) {
    if (start.server_cpu_s && end.server_cpu_s)
        r.server_cpu_s = *end.server_cpu_s - *start.server_cpu_s;
    if (server != nullptr && server->peak_rss_kib) r.server_peak_rss_kib = server->peak_rss_kib();
    r.client_cpu_s = end.client_cpu_s - start.client_cpu_s;
    for (const auto& [name, value] : end.server_counters) {
        for (const auto& [start_name, start_value] : start.server_counters) {
            if (name == start_name) r.server_counters.emplace_back(name, value - start_value);
        }
    }
}

}  // namespace nagare::bench
