// report: the result of one benchmark run, whatever the scenario and the
// target, and its two outputs: a text table (one row per run, so a
// comparison of targets is one table) and a JSON object.
//
// Units: rates per second of the measured interval (warm-up excluded);
// MB = 10^6 bytes of payload; latencies in microseconds. Figures a run could
// not measure (server CPU without --start-broker) are empty and print as
// "-" / null.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/histogram.h"

namespace nagare::bench {

struct parameter {
    std::string name;
    std::variant<std::uint64_t, double, std::string> value;
};

struct latency_summary_us {
    std::uint64_t count = 0;
    double p50 = 0;
    double p90 = 0;
    double p99 = 0;
    double p999 = 0;
    double max = 0;
};

// From a histogram of nanoseconds.
[[nodiscard]] latency_summary_us summarize_ns(const protocol::latency_histogram& histogram_ns);

struct run_result {
    std::string scenario;  // "publish"
    std::string target;    // "nagare"
    std::vector<parameter> parameters;
    std::uint64_t messages_total = 0;     // resolved during the whole run, warm-up included
    std::uint64_t messages_measured = 0;  // acknowledged within the measured interval
    double measured_s = 0;
    double msgs_per_s = 0;
    double mb_per_s = 0;
    latency_summary_us latency_us;  // publish call to acknowledgement
    std::optional<double> server_cpu_s;
    std::optional<std::uint64_t> server_peak_rss_kib;
    double client_cpu_s = 0;  // this process (producers and client I/O threads)
    std::uint64_t errors = 0;
    std::uint64_t duplicates = 0;
    std::string first_error;                                      // empty when errors == 0
    std::vector<std::pair<std::string, double>> target_counters;  // summed over connections
    // Counters the server reports about itself, over the measured interval.
    std::vector<std::pair<std::string, double>> server_counters;
};

// One JSON object, newline-terminated.
void write_json(std::ostream& out, const run_result& result);

// The parameters line(s), a fixed-width table with one row per result, then
// each result's counters and first error.
void print_table(std::ostream& out, std::span<const run_result> results);

}  // namespace nagare::bench
