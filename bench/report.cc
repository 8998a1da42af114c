#include "bench/report.h"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace nagare::bench {

namespace {

constexpr double ns_per_us = 1000.0;

std::string json_string(std::string_view text) {
    std::string out = "\"";
    for (const char c : text) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    return out + "\"";
}

std::string json_number(double value) {
    if (!std::isfinite(value)) return "null";
    char text[64];
    std::snprintf(text, sizeof text, "%.3f", value);
    return text;
}

std::string json_object(const std::vector<std::pair<std::string, double>>& counters) {
    std::string out = "{";
    for (std::size_t i = 0; i < counters.size(); ++i) {
        out += (i ? ", " : "") + json_string(counters[i].first) + ": " +
               json_number(counters[i].second);
    }
    return out + "}";
}

std::string text_counters(const std::vector<std::pair<std::string, double>>& counters) {
    std::ostringstream out;
    for (const auto& [name, value] : counters) out << " " << name << "=" << value;
    return out.str();
}

std::string json_value(const parameter& p) {
    if (const auto* u = std::get_if<std::uint64_t>(&p.value)) return std::to_string(*u);
    if (const auto* d = std::get_if<double>(&p.value)) return json_number(*d);
    return json_string(std::get<std::string>(p.value));
}

std::string text_value(const parameter& p) {
    if (const auto* u = std::get_if<std::uint64_t>(&p.value)) return std::to_string(*u);
    if (const auto* d = std::get_if<double>(&p.value)) {
        std::ostringstream s;
        s << *d;
        return s.str();
    }
    return std::get<std::string>(p.value);
}

// 1234567 -> "1,234,567".
std::string grouped(std::uint64_t value) {
    const auto digits = std::to_string(value);
    std::string out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string fixed(double value, int decimals) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(decimals) << value;
    return s.str();
}

}  // namespace

latency_summary_us summarize_ns(const protocol::latency_histogram& histogram_ns) {
    latency_summary_us s;
    s.count = histogram_ns.count();
    auto us = [&](double percent) {
        return static_cast<double>(histogram_ns.percentile(percent)) / ns_per_us;
    };
    s.p50 = us(50);
    s.p90 = us(90);
    s.p99 = us(99);
    s.p999 = us(99.9);
    s.max = static_cast<double>(histogram_ns.max()) / ns_per_us;
    return s;
}

void write_json(std::ostream& out, const run_result& r) {
    out << "{\n  \"scenario\": " << json_string(r.scenario)
        << ",\n  \"target\": " << json_string(r.target) << ",\n  \"parameters\": {";
    for (std::size_t i = 0; i < r.parameters.size(); ++i) {
        out << (i ? ", " : "") << json_string(r.parameters[i].name) << ": "
            << json_value(r.parameters[i]);
    }
    const auto& l = r.latency_us;
    out << "},\n  \"messages_total\": " << r.messages_total
        << ",\n  \"messages_measured\": " << r.messages_measured
        << ",\n  \"measured_s\": " << json_number(r.measured_s)
        << ",\n  \"msgs_per_s\": " << json_number(r.msgs_per_s)
        << ",\n  \"mb_per_s\": " << json_number(r.mb_per_s)
        << ",\n  \"latency_us\": {\"count\": " << l.count << ", \"p50\": " << json_number(l.p50)
        << ", \"p90\": " << json_number(l.p90) << ", \"p99\": " << json_number(l.p99)
        << ", \"p999\": " << json_number(l.p999) << ", \"max\": " << json_number(l.max)
        << "},\n  \"server_cpu_s\": " << (r.server_cpu_s ? json_number(*r.server_cpu_s) : "null")
        << ",\n  \"server_peak_rss_kib\": "
        << (r.server_peak_rss_kib ? std::to_string(*r.server_peak_rss_kib) : "null")
        << ",\n  \"client_cpu_s\": " << json_number(r.client_cpu_s)
        << ",\n  \"errors\": " << r.errors << ",\n  \"duplicates\": " << r.duplicates
        << ",\n  \"first_error\": " << json_string(r.first_error)
        << ",\n  \"target_counters\": " << json_object(r.target_counters)
        << ",\n  \"server_counters\": " << json_object(r.server_counters) << "\n}\n";
}

void print_table(std::ostream& out, std::span<const run_result> results) {
    for (const auto& r : results) {
        out << r.scenario << " on " << r.target << ":";
        for (const auto& p : r.parameters) out << " " << p.name << "=" << text_value(p);
        out << "\n";
    }
    const char* header[] = {"target",    "msgs",        "seconds",   "msgs/s",   "MB/s",
                            "p50 us",    "p90 us",      "p99 us",    "p99.9 us", "max us",
                            "srv cpu s", "srv rss MiB", "cli cpu s", "errors"};
    std::vector<std::vector<std::string>> rows;
    rows.emplace_back(std::begin(header), std::end(header));
    for (const auto& r : results) {
        const auto& l = r.latency_us;
        rows.push_back(
            {r.target, grouped(r.messages_measured), fixed(r.measured_s, 2),
             grouped(static_cast<std::uint64_t>(std::llround(r.msgs_per_s))), fixed(r.mb_per_s, 1),
             fixed(l.p50, 0), fixed(l.p90, 0), fixed(l.p99, 0), fixed(l.p999, 0), fixed(l.max, 0),
             r.server_cpu_s ? fixed(*r.server_cpu_s, 2) : "-",
             r.server_peak_rss_kib ? fixed(static_cast<double>(*r.server_peak_rss_kib) / 1024.0, 1)
                                   : "-",
             fixed(r.client_cpu_s, 2), std::to_string(r.errors)});
    }
    std::vector<std::size_t> width(rows.front().size(), 0);
    for (const auto& row : rows) {
        for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    }
    for (const auto& row : rows) {
        for (std::size_t c = 0; c < row.size(); ++c) {
            // Text left-aligned in the first column, figures right-aligned.
            out << (c ? "  " : "") << (c == 0 ? std::left : std::right)
                << std::setw(static_cast<int>(width[c])) << row[c];
        }
        out << std::left << "\n";
    }
    for (const auto& r : results) {
        if (!r.target_counters.empty()) {
            out << r.target << " client:" << text_counters(r.target_counters) << "\n";
        }
        if (!r.server_counters.empty()) {
            out << r.target << " server:" << text_counters(r.server_counters) << "\n";
        }
        if (r.errors != 0) {
            out << r.target << ": " << r.errors << " errors, first: " << r.first_error << "\n";
        }
    }
}

}  // namespace nagare::bench
