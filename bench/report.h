// report: the result of one benchmark run, whatever the scenario and the
// target, and its two outputs: a text table (one row per run, so a
// comparison of targets is one table) and a JSON object.
//
// Units: rates per second of the measured interval (warm-up excluded);
// MB = 10^6 bytes of payload; latencies in microseconds. Figures a run could
// not measure (server CPU without --start-broker, latency of a consume) are
// empty and print as "-" / null.
//
// A run may have parts measured on their own (consume: the fill that
// published what it then reads, phase "fill", beside the consume itself):
// they are rows of the table above the run's own row, and "phases" in its
// JSON. Figures derived from the rows (the consume ÷ publish ratio) and the
// goal an issue sets for them are "figures", with a verdict computed from
// the measurement, never assumed.
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

// A figure derived from a run's rows, e.g. consume msgs/s ÷ publish msgs/s.
struct derived_figure {
    std::string name;   // JSON key, e.g. "consume_to_publish"
    std::string label;  // for the text, e.g. "consume ÷ publish msgs/s"
    double value = 0;
    std::optional<double> at_least;  // the goal, when one applies to this run
    std::string note;                // who sets the goal and for which runs; or what it means

    // True / false with a goal; nullopt without.
    [[nodiscard]] std::optional<bool> met() const noexcept {
        if (!at_least) return std::nullopt;
        return value >= *at_least;
    }
};

struct run_result {
    std::string scenario;  // "publish", "consume", "e2e"
    std::string target;    // "nagare"
    std::string phase;     // empty, or the part of the run this row measures ("fill", "consume")
    std::vector<parameter> parameters;
    std::uint64_t messages_total = 0;     // resolved during the whole run, warm-up included
    std::uint64_t messages_measured = 0;  // acknowledged within the measured interval
    double measured_s = 0;
    double msgs_per_s = 0;
    double mb_per_s = 0;
    latency_summary_us latency_us;  // publish: publish call to ack; e2e: scheduled send to delivery
    std::optional<double> server_cpu_s;
    std::optional<std::uint64_t> server_peak_rss_kib;
    double client_cpu_s = 0;  // this process (producers and client I/O threads)
    std::uint64_t errors = 0;
    std::uint64_t duplicates = 0;  // publish: acked as duplicates; consume, e2e: delivered again
    // Messages stored and never delivered (consume, e2e; each is also an
    // error); nullopt where the scenario does not receive.
    std::optional<std::uint64_t> lost;
    std::string first_error;                                      // empty when errors == 0
    std::vector<std::pair<std::string, double>> target_counters;  // summed over connections
    // Counters the server reports about itself, over the measured interval.
    std::vector<std::pair<std::string, double>> server_counters;
    std::vector<run_result> phases;  // parts of the same run, measured on their own
    std::vector<derived_figure> figures;
};

// One JSON object, newline-terminated.
void write_json(std::ostream& out, const run_result& result);

// The parameters line(s), a fixed-width table with one row per result (its
// phases' rows first), then each row's counters and first error, then the
// derived figures with their verdicts.
void print_table(std::ostream& out, std::span<const run_result> results);

}  // namespace nagare::bench
