// Crash: a child process appends to a partition_log with durability=fsync
// through the broker's io_uring backend and writes every end that on_durable
// acknowledges to a pipe; the parent kills it with SIGKILL at a random moment,
// reopens the log and checks that every acknowledged record is present,
// intact and in order, that offsets are dense from 0, and that appends go on
// from where recovery left the log.
//
// Rounds reuse one directory for rounds_per_directory crashes (logs, and the
// parent's own appends, accumulate across crashes: the child reopens what the
// previous round left), then start over in a fresh one.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/io/ring.h"
#include "broker/io/uring_file_io.h"
#include "storage/partition_log.h"
#include "tests/broker/storage_system_support.h"

namespace nagare::broker {
namespace {

namespace fs = std::filesystem;
using namespace storage_testing;
using steady = std::chrono::steady_clock;

// Why a child ended by itself (the parent expects SIGKILL).
constexpr int child_exit_ring = 10;
constexpr int child_exit_open = 11;
constexpr int child_exit_append = 12;
constexpr int child_exit_write_failed = 13;
constexpr int child_exit_pipe = 14;
constexpr int child_exit_ran_out = 15;

constexpr auto child_runtime_max = std::chrono::seconds(10);  // killed after <= 80 ms
constexpr std::uint64_t child_turns_max = 50'000'000;
constexpr int append_retries_max = 1'000;
constexpr int kill_delay_ms_min = 5;
constexpr int kill_delay_ms_max = 80;
constexpr auto acks_after_kill_max = std::chrono::seconds(5);
constexpr int rounds_per_directory = 4;
constexpr int kill_from_fork_every = 4;  // every 4th kill may land in open/recovery
constexpr auto ready_wait_max = std::chrono::seconds(10);
constexpr int continue_turns = 3;  // appends by the parent after each reopen
constexpr unsigned ring_entries = 64;

const char* child_exit_reason(int code) {
    switch (code) {
        case child_exit_ring:
            return "ring::create failed";
        case child_exit_open:
            return "partition_log::open failed";
        case child_exit_append:
            return "append failed or gave an unexpected offset";
        case child_exit_write_failed:
            return "on_write_failed";
        case child_exit_pipe:
            return "writing to the ack pipe failed";
        case child_exit_ran_out:
            return "ran out of turns or time before the kill";
        default:
            return "unknown";
    }
}

// In the child: every acknowledged end goes to the parent, 8 bytes at a time
// (atomic on a pipe).
class ack_pipe_listener final : public storage::log_listener {
public:
    explicit ack_pipe_listener(int fd) : _fd(fd) {}
    void on_durable(offset end) noexcept override {
        const std::uint64_t value = end.value;
        if (::write(_fd, &value, sizeof value) != static_cast<ssize_t>(sizeof value)) {
            ::_exit(child_exit_pipe);
        }
    }
    void on_write_failed(offset /*from*/, storage::errc /*error*/) noexcept override {
        ::_exit(child_exit_write_failed);
    }

private:
    int _fd;
};

// Appends records [base, base + n) of offset_record content; retries while the
// write buffer is busy. Returns false on any other failure.
bool append_turn(storage::partition_log& log, storage::file_io& io,
                 std::vector<offset_record>& records, std::vector<storage::record_ref>& refs,
                 std::size_t n) {
    const offset base = log.next_offset();
    refs.clear();
    for (std::size_t i = 0; i < n; ++i) {
        records[i].fill(offset{base.value + i});
        refs.push_back(records[i].ref());
    }
    for (int attempt = 0; attempt < append_retries_max; ++attempt) {
        const auto appended = log.append(refs, now_ns());
        if (appended) return *appended == base;
        if (appended.error() != storage::errc::busy) return false;
        log.flush();
        io.poll(true);
    }
    return false;
}

// The child: append, flush and poll in a loop until killed. Never returns.
[[noreturn]] void run_child(const fs::path& dir, const storage::partition_options& options,
                            int ack_fd, std::uint64_t seed) {
    auto r = io::ring::create(ring_entries);
    if (!r) ::_exit(child_exit_ring);
    io::uring_file_io file_io(**r);
    auto opened = storage::partition_log::open(dir, options, file_io);
    if (!opened) ::_exit(child_exit_open);
    storage::partition_log& log = **opened;
    ack_pipe_listener listener(ack_fd);
    listener.on_durable(log.durable_end());  // "ready": the end recovery found
    log.set_listener(&listener);
    std::mt19937_64 rng(seed);
    std::vector<offset_record> records(batch_records_max);
    std::vector<storage::record_ref> refs;
    refs.reserve(batch_records_max);
    const auto deadline = steady::now() + child_runtime_max;
    for (std::uint64_t turn = 0; turn < child_turns_max && steady::now() < deadline; ++turn) {
        const std::size_t n = 1 + rng() % batch_records_max;
        if (!append_turn(log, file_io, records, refs, n)) ::_exit(child_exit_append);
        log.flush();
        file_io.poll(false);
    }
    ::_exit(child_exit_ran_out);
}

// Kills and reaps the child on every path out of a round.
class child_guard {
public:
    explicit child_guard(pid_t pid) : _pid(pid) {}
    ~child_guard() {
        if (_pid > 0) {
            ::kill(_pid, SIGKILL);
            int ignored = 0;
            ::waitpid(_pid, &ignored, 0);
        }
    }
    child_guard(const child_guard&) = delete;
    child_guard& operator=(const child_guard&) = delete;

    // Kills the child and returns its wait status.
    int kill_and_reap() {
        ::kill(_pid, SIGKILL);
        int status = 0;
        while (::waitpid(_pid, &status, 0) < 0 && errno == EINTR) {
        }
        _pid = -1;
        return status;
    }

private:
    pid_t _pid;
};

class fd_guard {
public:
    explicit fd_guard(int fd = -1) : _fd(fd) {}
    ~fd_guard() { reset(); }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    void reset(int fd = -1) {
        if (_fd >= 0) ::close(_fd);
        _fd = fd;
    }
    [[nodiscard]] int get() const { return _fd; }

private:
    int _fd;
};

// Reads u64s from the pipe into `values` until `deadline`, end of file, or
// (with values_max) that many values. Returns true at end of file.
bool read_ends(int fd, steady::time_point deadline, std::vector<std::byte>& carry,
               std::vector<std::uint64_t>& values,
               std::size_t values_max = std::numeric_limits<std::size_t>::max()) {
    std::byte buffer[8192];
    while (values.size() < values_max) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return false;
        // Reads whole values only while a count is asked for, so none is
        // consumed past it.
        const std::size_t want = values_max == std::numeric_limits<std::size_t>::max()
                                     ? sizeof buffer
                                     : sizeof(std::uint64_t) - carry.size();
        const auto got = ::read(fd, buffer, want);
        if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (got <= 0) return true;
        carry.insert(carry.end(), buffer, buffer + got);
        std::size_t used = 0;
        for (; carry.size() - used >= sizeof(std::uint64_t); used += sizeof(std::uint64_t)) {
            std::uint64_t end = 0;
            std::memcpy(&end, carry.data() + used, sizeof end);
            values.push_back(end);
        }
        carry.erase(carry.begin(), carry.begin() + static_cast<long>(used));
    }
    return false;
}

struct round_report {
    bool kill_from_fork = false;  // else from the child's "ready" (log opened)
    int delay_ms = 0;
    std::size_t acks = 0;
    std::uint64_t acked_end = 0;      // largest end the child was told is durable
    std::uint64_t recovered_end = 0;  // durable_end() after reopen
    std::uint64_t truncated_bytes = 0;
    std::uint32_t indexes_rebuilt = 0;
    std::size_t segments = 0;
    double verify_ms = 0;
    std::uint64_t left_end = 0;  // durable_end() when the parent let go of the log
};

class StorageCrash : public ::testing::Test {
protected:
    void SetUp() override {
        _root = fs::temp_directory_path() /
                ("nagare-crash-" + std::to_string(::getpid()) + "-" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(_root);
        fs::create_directories(_root);
        options.durability_mode = storage::durability::fsync;
    }
    void TearDown() override {
        std::error_code ignored;
        fs::remove_all(_root, ignored);
    }

    // One crash: fork a writer, kill it after a random delay (from the fork,
    // or from its "ready"), reopen, check. `open_end`: what the last round
    // left in `dir`.
    void crash_round(const fs::path& dir, std::uint64_t seed, std::uint64_t open_end,
                     round_report& report) {
        std::mt19937_64 rng(seed);
        report.delay_ms = kill_delay_ms_min +
                          static_cast<int>(rng() % (kill_delay_ms_max - kill_delay_ms_min + 1));
        int fds[2];
        ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0) << std::strerror(errno);
        fd_guard read_end(fds[0]);
        fd_guard write_end(fds[1]);
        const auto forked_at = steady::now();
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0) << std::strerror(errno);
        if (pid == 0) {
            ::close(fds[0]);
            run_child(dir, options, fds[1], rng());
        }
        child_guard child(pid);
        write_end.reset();
        std::vector<std::byte> carry;
        std::vector<std::uint64_t> ready;
        std::vector<std::uint64_t> acks;
        const auto delay = std::chrono::milliseconds(report.delay_ms);
        bool eof = false;
        if (report.kill_from_fork) {
            eof = read_ends(read_end.get(), forked_at + delay, carry, ready, 1) ||
                  (ready.size() == 1 && read_ends(read_end.get(), forked_at + delay, carry, acks));
        } else {
            eof = read_ends(read_end.get(), forked_at + ready_wait_max, carry, ready, 1);
            ASSERT_EQ(ready.size(), 1u) << "the child never opened the log";
            eof = eof || read_ends(read_end.get(), steady::now() + delay, carry, acks);
        }
        const int status = child.kill_and_reap();
        const auto after_kill = steady::now() + acks_after_kill_max;
        if (!eof && ready.empty()) eof = read_ends(read_end.get(), after_kill, carry, ready, 1);
        if (!eof) eof = read_ends(read_end.get(), after_kill, carry, acks);
        ASSERT_TRUE(eof) << "the pipe never reached end of file";
        ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
            << "the child did not die of SIGKILL: "
            << (WIFEXITED(status) ? child_exit_reason(WEXITSTATUS(status))
                                  : ::strsignal(WTERMSIG(status)));
        EXPECT_TRUE(carry.empty()) << "a torn acknowledgement on the pipe";
        // The child's open found exactly what the last round left.
        if (!ready.empty()) {
            EXPECT_EQ(ready.front(), open_end) << "end found by the child's open";
        }
        for (std::size_t i = 0; i < acks.size(); ++i) {
            const auto previous = i == 0 ? open_end : acks[i - 1];
            ASSERT_LT(previous, acks[i]) << "acknowledged ends must grow";
        }
        report.acks = acks.size();
        report.acked_end = acks.empty() ? open_end : acks.back();
        const auto verify_start = steady::now();
        reopen_and_check(dir, rng, report);
        report.verify_ms =
            std::chrono::duration<double, std::milli>(steady::now() - verify_start).count();
    }

    void reopen_and_check(const fs::path& dir, std::mt19937_64& rng, round_report& report) {
        auto r = io::ring::create(ring_entries);
        ASSERT_TRUE(r.has_value()) << "io_uring_queue_init: errno " << r.error();
        io::uring_file_io file_io(**r);
        auto opened = storage::partition_log::open(dir, options, file_io);
        ASSERT_TRUE(opened.has_value()) << storage::to_string(opened.error());
        auto& log = **opened;
        report.recovered_end = log.durable_end().value;
        report.truncated_bytes = log.recovery().truncated_bytes;
        report.indexes_rebuilt = log.recovery().indexes_rebuilt;
        report.segments = log.segment_count();
        EXPECT_EQ(log.recovery().damaged_segments, 0u) << "a crash damaged a sealed segment";
        EXPECT_EQ(log.first_offset(), offset{0});
        EXPECT_EQ(log.next_offset(), log.durable_end());
        // Recovery may keep written-but-unacknowledged records (a killed
        // process leaves the page cache behind) but never cuts acknowledged ones.
        ASSERT_GE(log.durable_end().value, report.acked_end)
            << "acknowledged records lost: " << report.acked_end - log.durable_end().value;
        expect_records(log, offset{0}, log.durable_end());
        if (::testing::Test::HasFailure()) return;

        // Appends continue densely from where recovery left the log.
        std::vector<offset_record> records(batch_records_max);
        std::vector<storage::record_ref> refs;
        const offset resumed = log.durable_end();
        for (int turn = 0; turn < continue_turns; ++turn) {
            const offset base = log.next_offset();
            const std::size_t n = 1 + rng() % batch_records_max;
            ASSERT_TRUE(append_turn(log, file_io, records, refs, n));
            log.flush();
            ASSERT_TRUE(drain(file_io));
            ASSERT_EQ(log.durable_end().value, base.value + n);
        }
        expect_records(log, resumed, log.durable_end());
        report.left_end = log.durable_end().value;
        // Half the rounds close cleanly; the others leave the files as they are.
        if (rng() % 2 == 0) {
            EXPECT_TRUE(log.close().has_value());
        }
    }

    // segments_min: the most segments some round must have seen (rolls happened).
    void run_rounds(int rounds, std::uint64_t seed, const char* label, std::size_t segments_min) {
        const auto start = steady::now();
        std::vector<round_report> reports(static_cast<std::size_t>(rounds));
        fs::path dir;
        std::uint64_t open_end = 0;
        for (int round = 0; round < rounds; ++round) {
            if (round % rounds_per_directory == 0) {
                dir = _root / ("series-" + std::to_string(round / rounds_per_directory));
                open_end = 0;
            }
            SCOPED_TRACE("round " + std::to_string(round) + " seed " +
                         std::to_string(seed + static_cast<std::uint64_t>(round)));
            auto& report = reports[static_cast<std::size_t>(round)];
            report.kill_from_fork = round % kill_from_fork_every == kill_from_fork_every - 1;
            crash_round(dir, seed + static_cast<std::uint64_t>(round), open_end, report);
            if (::testing::Test::HasFailure()) return;  // later rounds build on this one
            open_end = report.left_end;
            std::printf(
                "[ %s ] round %2d: kill %2d ms after %s, %4zu acks, acked end %7llu, recovered end "
                "%7llu, truncated %7llu B, %u indexes rebuilt, %3zu segments, check %.0f ms\n",
                label, round, report.delay_ms, report.kill_from_fork ? "fork " : "ready",
                report.acks, static_cast<unsigned long long>(report.acked_end),
                static_cast<unsigned long long>(report.recovered_end),
                static_cast<unsigned long long>(report.truncated_bytes), report.indexes_rebuilt,
                report.segments, report.verify_ms);
        }
        int acknowledged_rounds = 0;
        std::size_t segments_most = 0;
        for (const auto& report : reports) {
            acknowledged_rounds += report.acks > 0 ? 1 : 0;
            segments_most = std::max(segments_most, report.segments);
        }
        EXPECT_GE(segments_most, segments_min);
        // A run where the child never got anything acknowledged proves nothing.
        EXPECT_GE(acknowledged_rounds, rounds / 3);
        std::printf("[ %s ] %d rounds, %d with acknowledged records, %.1f s\n", label, rounds,
                    acknowledged_rounds,
                    std::chrono::duration<double>(steady::now() - start).count());
    }

    fs::path _root;
    storage::partition_options options;
};

TEST_F(StorageCrash, SigkillLosesNoAcknowledgedRecord) { run_rounds(24, 1000, "crash", 1); }

// Small segments: nearly every flush rolls, so kills land around segment
// creation, sealing (trim of the preallocated tail, index write) and the
// directory fsync.
TEST_F(StorageCrash, SigkillAroundSegmentRollsLosesNoAcknowledgedRecord) {
    options.segment_bytes = 192 * storage::kib;
    options.write_buffer_bytes = 160 * storage::kib;  // holds a batch of 64 records of 2000 B
    options.batch_bytes_target = 16 * storage::kib;
    options.preallocate_step_bytes = 64 * storage::kib;
    options.index_interval_bytes = 1024;
    run_rounds(12, 2000, "crash-roll", 4);
}

}  // namespace
}  // namespace nagare::broker
