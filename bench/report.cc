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

namespace {

std::string json_latency(const latency_summary_us& l) {
    if (l.count == 0) return "null";
    return "{\"count\": " + std::to_string(l.count) + ", \"p50\": " + json_number(l.p50) +
           ", \"p90\": " + json_number(l.p90) + ", \"p99\": " + json_number(l.p99) +
           ", \"p999\": " + json_number(l.p999) + ", \"max\": " + json_number(l.max) + "}";
}

std::string json_figures(const std::vector<derived_figure>& figures) {
    std::string out = "{";
    for (std::size_t i = 0; i < figures.size(); ++i) {
        const auto& f = figures[i];
        const auto met = f.met();
        out += (i ? ", " : "") + json_string(f.name) + ": {\"value\": " + json_number(f.value) +
               ", \"at_least\": " + (f.at_least ? json_number(*f.at_least) : "null") +
               ", \"verdict\": " + (met ? json_string(*met ? "met" : "missed") : "null") +
               ", \"note\": " + json_string(f.note) + "}";
    }
    return out + "}";
}

// One object; `indent` spaces before its members' lines.
void write_object(std::ostream& out, const run_result& r, const std::string& indent) {
    out << "{\n"
        << indent << "\"scenario\": " << json_string(r.scenario) << ",\n"
        << indent << "\"target\": " << json_string(r.target) << ",\n"
        << indent << "\"phase\": " << json_string(r.phase) << ",\n"
        << indent << "\"parameters\": {";
    for (std::size_t i = 0; i < r.parameters.size(); ++i) {
        out << (i ? ", " : "") << json_string(r.parameters[i].name) << ": "
            << json_value(r.parameters[i]);
    }
    const auto field = [&](std::string_view name, const std::string& value) {
        out << ",\n" << indent << json_string(name) << ": " << value;
    };
    out << "}";
    field("messages_total", std::to_string(r.messages_total));
    field("messages_measured", std::to_string(r.messages_measured));
    field("measured_s", json_number(r.measured_s));
    field("msgs_per_s", json_number(r.msgs_per_s));
    field("mb_per_s", json_number(r.mb_per_s));
    field("latency_us", json_latency(r.latency_us));
    field("server_cpu_s", r.server_cpu_s ? json_number(*r.server_cpu_s) : "null");
    field("server_peak_rss_kib",
          r.server_peak_rss_kib ? std::to_string(*r.server_peak_rss_kib) : "null");
    field("client_cpu_s", json_number(r.client_cpu_s));
    field("errors", std::to_string(r.errors));
    field("duplicates", std::to_string(r.duplicates));
    field("lost", r.lost ? std::to_string(*r.lost) : "null");
    field("first_error", json_string(r.first_error));
    field("target_counters", json_object(r.target_counters));
    field("server_counters", json_object(r.server_counters));
    field("figures", json_figures(r.figures));
    out << ",\n" << indent << "\"phases\": [";
    for (std::size_t i = 0; i < r.phases.size(); ++i) {
        out << (i ? ", " : "");
        write_object(out, r.phases[i], indent + "  ");
    }
    out << "]\n" << indent.substr(2) << "}";
}

std::string row_name(const run_result& r) {
    return r.phase.empty() ? r.target : r.target + " " + r.phase;
}

std::vector<std::string> table_row(const run_result& r) {
    const auto& l = r.latency_us;
    const auto latency = [&](double us) { return l.count == 0 ? std::string("-") : fixed(us, 0); };
    return {row_name(r),
            grouped(r.messages_measured),
            fixed(r.measured_s, 2),
            grouped(static_cast<std::uint64_t>(std::llround(r.msgs_per_s))),
            fixed(r.mb_per_s, 1),
            latency(l.p50),
            latency(l.p90),
            latency(l.p99),
            latency(l.p999),
            latency(l.max),
            r.server_cpu_s ? fixed(*r.server_cpu_s, 2) : "-",
            r.server_peak_rss_kib ? fixed(static_cast<double>(*r.server_peak_rss_kib) / 1024.0, 1)
                                  : "-",
            fixed(r.client_cpu_s, 2),
            std::to_string(r.errors),
            std::to_string(r.duplicates),
            r.lost ? std::to_string(*r.lost) : "-"};
}

void print_notes(std::ostream& out, const run_result& r) {
    const auto name = row_name(r);
    if (!r.target_counters.empty()) {
        out << name << " client:" << text_counters(r.target_counters) << "\n";
    }
    if (!r.server_counters.empty()) {
        out << name << " server:" << text_counters(r.server_counters) << "\n";
    }
    if (r.errors != 0)
        out << name << ": " << r.errors << " errors, first: " << r.first_error << "\n";
}

void print_figures(std::ostream& out, const run_result& r) {
    for (const auto& f : r.figures) {
        out << r.target << " " << f.label << ": " << fixed(f.value, 2);
        if (const auto met = f.met()) {
            out << " (goal >= " << fixed(*f.at_least, 2) << "; " << f.note
                << "): " << (*met ? "met" : "missed") << "\n";
        } else {
            out << " (" << f.note << ")\n";
        }
    }
}

}  // namespace

void write_json(std::ostream& out, const run_result& r) {
    write_object(out, r, "  ");
    out << "\n";
}

void print_table(std::ostream& out, std::span<const run_result> results) {
    for (const auto& r : results) {
        out << r.scenario << " on " << r.target << ":";
        for (const auto& p : r.parameters) out << " " << p.name << "=" << text_value(p);
        out << "\n";
    }
    const char* header[] = {"target",    "msgs",   "seconds",  "msgs/s", "MB/s",      "p50 us",
                            "p90 us",    "p99 us", "p99.9 us", "max us", "srv cpu s", "srv rss MiB",
                            "cli cpu s", "errors", "dups",     "lost"};
    std::vector<std::vector<std::string>> rows;
    rows.emplace_back(std::begin(header), std::end(header));
    for (const auto& r : results) {
        for (const auto& phase : r.phases) rows.push_back(table_row(phase));
        rows.push_back(table_row(r));
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
        for (const auto& phase : r.phases) print_notes(out, phase);
        print_notes(out, r);
    }
    for (const auto& r : results) print_figures(out, r);
}

}  // namespace nagare::bench
