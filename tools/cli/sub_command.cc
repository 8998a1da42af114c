#include "tools/cli/sub_command.h"

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <ostream>

#include "protocol/units.h"

namespace nagare::cli {

namespace {

constexpr std::size_t payload_hex_bytes_max = 64;

volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_interrupt(int) { interrupted = 1; }

// Restores SIGINT and SIGTERM when the command ends.
class interrupt_guard {
public:
    interrupt_guard() {
        interrupted = 0;
        _int = std::signal(SIGINT, on_interrupt);
        _term = std::signal(SIGTERM, on_interrupt);
    }
    ~interrupt_guard() {
        std::signal(SIGINT, _int);
        std::signal(SIGTERM, _term);
    }
    interrupt_guard(const interrupt_guard&) = delete;
    interrupt_guard& operator=(const interrupt_guard&) = delete;

private:
    void (*_int)(int);
    void (*_term)(int);
};

std::optional<std::uint64_t> whole_number(std::string_view text) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [rest, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || rest != end) return std::nullopt;
    return value;
}

// `count` decimal digits at text[at..], or -1.
int digits_at(std::string_view text, std::size_t at, std::size_t count) {
    if (at + count > text.size()) return -1;
    int value = 0;
    for (std::size_t i = at; i < at + count; ++i) {
        if (text[i] < '0' || text[i] > '9') return -1;
        value = value * 10 + (text[i] - '0');
    }
    return value;
}

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap_year(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) noexcept {
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

// Parses the fraction and zone after "YYYY-MM-DDTHH:MM:SS" (at 19):
// nanoseconds and the zone's offset east of UTC in seconds.
std::expected<std::pair<std::uint64_t, std::int64_t>, std::string> fraction_and_zone(
    std::string_view text) {
    std::size_t at = 19;
    std::uint64_t ns = 0;
    if (at < text.size() && text[at] == '.') {
        std::size_t n = 0;
        for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++n) {
            if (n < 9) ns = ns * 10 + static_cast<std::uint64_t>(text[at] - '0');
        }
        if (n == 0) return std::unexpected("a '.' needs digits after it");
        for (; n < 9; ++n) ns *= 10;
    }
    const auto zone = text.substr(at);
    if (zone == "Z" || zone == "z") return std::pair{ns, std::int64_t{0}};
    if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        const int h = digits_at(zone, 1, 2);
        const int m = digits_at(zone, 4, 2);
        if (h >= 0 && h <= 23 && m >= 0 && m <= 59) {
            const std::int64_t east = (h * 3600 + m * 60) * (zone[0] == '-' ? -1 : 1);
            return std::pair{ns, east};
        }
    }
    return std::unexpected("it needs a zone: Z or +HH:MM / -HH:MM");
}

// UTF-8 without control characters (overlong forms are not looked for:
// this only decides how to print).
bool printable_utf8(std::span<const std::byte> bytes) noexcept {
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f) return false;
            ++i;
            continue;
        }
        std::size_t extra = 0;
        if (c >= 0xc2 && c <= 0xdf) {
            extra = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            extra = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            extra = 3;
        } else {
            return false;
        }
        if (bytes.size() - i <= extra) return false;
        for (std::size_t k = 1; k <= extra; ++k) {
            if ((static_cast<unsigned char>(bytes[i + k]) & 0xc0) != 0x80) return false;
        }
        i += extra + 1;
    }
    return true;
}

std::expected<client::ack_policy, std::string> parse_ack(std::string_view text) {
    if (text == "explicit") return client::ack_policy::explicit_ack;
    if (text == "none") return client::ack_policy::none;
    return std::unexpected("--ack must be explicit or none, not '" + std::string(text) + "'");
}

}  // namespace

std::expected<std::uint64_t, std::string> parse_rfc3339_ns(std::string_view text) {
    const auto bad = [&](const std::string& why) {
        return std::unexpected("'" + std::string(text) + "' is not an RFC 3339 time: " + why);
    };
    const int year = digits_at(text, 0, 4);
    const int month = digits_at(text, 5, 2);
    const int day = digits_at(text, 8, 2);
    const int hour = digits_at(text, 11, 2);
    const int minute = digits_at(text, 14, 2);
    const int second = digits_at(text, 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 ||
        text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't') ||
        text[13] != ':' || text[16] != ':') {
        return bad("expected YYYY-MM-DDTHH:MM:SS[.fraction]Z");
    }
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59) {
        return bad("a field is out of range");
    }
    const auto rest = fraction_and_zone(text);
    if (!rest) return bad(rest.error());
    const auto [ns, east_s] = *rest;
    const std::int64_t seconds =
        days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
        hour * 3600 + minute * 60 + second - east_s;
    if (seconds < 0) return bad("before 1970-01-01T00:00:00Z");
    if (static_cast<std::uint64_t>(seconds) > (UINT64_MAX - ns) / 1'000'000'000) {
        return bad("too far in the future for Unix nanoseconds");
    }
    return static_cast<std::uint64_t>(seconds) * 1'000'000'000 + ns;
}

std::expected<start_point, std::string> parse_from(std::string_view text) {
    start_point start;
    if (text == "all") return start;
    if (text == "new") {
        start.policy = client::deliver_policy::new_only;
        return start;
    }
    if (text == "last" || text == "last-per-subject") {
        start.policy = client::deliver_policy::last_per_subject;
        return start;
    }
    if (const auto offset = whole_number(text)) {
        start.policy = client::deliver_policy::from_offset;
        start.offset = *offset;
        return start;
    }
    start.policy = client::deliver_policy::from_time;
    if (text.ends_with("ns")) {
        if (const auto ns = whole_number(text.substr(0, text.size() - 2))) {
            start.time_ns = *ns;
            return start;
        }
    }
    if (text.size() >= 20 && text[4] == '-') {
        auto ns = parse_rfc3339_ns(text);
        if (!ns) return std::unexpected("--from: " + ns.error());
        start.time_ns = *ns;
        return start;
    }
    return std::unexpected("--from: '" + std::string(text) +
                           "' is not all, new, last, an offset (123), an RFC 3339 time "
                           "(2025-05-25T05:00:00Z) or Unix nanoseconds (1748149200000000000ns)");
}

std::expected<subscription_request, std::string> make_subscription(const sub_options& o) {
    subscription_request r;
    r.filter.project = o.project;
    r.filter.subjects = o.subjects;
    r.options.consumer = o.consumer;
    const auto start = parse_from(o.from);
    if (!start) return std::unexpected(start.error());
    r.options.deliver = start->policy;
    r.options.start_offset = nagare::offset{start->offset};
    r.options.start_time_ns = start->time_ns;
    const auto ack = parse_ack(o.ack);
    if (!ack) return std::unexpected(ack.error());
    r.options.ack = *ack;
    r.count = o.count;
    if (!o.timeout.empty()) {
        const auto ms = protocol::parse_duration_ms(o.timeout);
        if (!ms) return std::unexpected("--timeout: " + ms.error());
        r.timeout_ms = *ms;
    }
    if (auto valid = client::validate_subscription(o.stream, r.filter, r.options); !valid) {
        return std::unexpected(valid.error().message);
    }
    return r;
}

std::string payload_field(std::span<const std::byte> payload) {
    if (printable_utf8(payload)) {
        return "payload=" +
               std::string(reinterpret_cast<const char*>(payload.data()), payload.size());
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "payload_bytes=" + std::to_string(payload.size()) + " payload_hex=";
    const auto shown = std::min(payload.size(), payload_hex_bytes_max);
    for (std::size_t i = 0; i < shown; ++i) {
        const auto b = static_cast<unsigned char>(payload[i]);
        out += hex[b >> 4];
        out += hex[b & 0xf];
    }
    if (shown < payload.size()) out += "...";
    return out;
}

std::string message_line(const client::Message& m) {
    std::string line = "partition=" + std::to_string(m.partition().value) +
                       " offset=" + std::to_string(m.offset().value);
    line.append(" subject=").append(m.subject());
    line.append(" project=").append(m.project());
    line.append(" msg_id=").append(m.msg_id());
    line.append(" delivery_count=").append(std::to_string(m.delivery_count()));
    line.append(" ").append(payload_field(m.payload()));
    return line;
}

namespace {

// What the handler (I/O thread) and the waiting command share.
struct progress {
    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t printed = 0;
};

// Waits until `count` messages were printed (0: never), the time limit passed, or
// SIGINT/SIGTERM. Returns whether the count was reached.
bool wait_for_end(progress& p, std::uint64_t count, std::optional<std::uint64_t> timeout_ms) {
    const auto deadline =
        timeout_ms ? std::chrono::steady_clock::now() + std::chrono::milliseconds(*timeout_ms)
                   : std::chrono::steady_clock::time_point::max();
    // A signal handler cannot notify a condition variable: look at the flag every slice.
    constexpr auto slice = std::chrono::milliseconds(100);
    std::unique_lock lock(p.mutex);
    while (true) {
        if (count != 0 && p.printed >= count) return true;
        if (interrupted != 0) return false;
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        p.changed.wait_until(lock, deadline - now < slice ? deadline : now + slice);
    }
}

}  // namespace

int subscribe_command(const connection_options& connection, const sub_options& o, std::ostream& out,
                      std::ostream& err) {
    auto request = make_subscription(o);
    if (!request) {
        err << "nagare: " << request.error() << "\n";
        return exit_unusable;
    }
    client::options opts;
    opts.token = connection.token;
    opts.client_name = "nagare-cli";
    auto c = client::Client::connect(connection.url, opts);
    if (!c) return report_error(c.error(), err);
    const interrupt_guard interrupts;
    progress p;
    const bool acking = request->options.ack == client::ack_policy::explicit_ack;
    const auto count = request->count;
    auto handler = [&](const client::Message& m) {
        {
            std::lock_guard lock(p.mutex);
            // Past the count: not printed, not acked (the broker gives it to another subscriber).
            if (count != 0 && p.printed >= count) return;
            out << message_line(m) << std::endl;
            ++p.printed;
        }
        if (acking) m.ack();
        p.changed.notify_all();
    };
    auto sub = (*c)->subscribe(o.stream, std::move(request->filter), std::move(request->options),
                               std::move(handler));
    if (!sub) return report_error(sub.error(), err);
    const bool reached = wait_for_end(p, count, request->timeout_ms);
    sub->unsubscribe();  // sends the queued acks, then Unsubscribe
    (*c)->close();
    if (count != 0 && !reached) {
        err << "nagare: " << (interrupted != 0 ? "interrupted" : "timed out") << " after "
            << p.printed << " of " << count << " messages\n";
        return exit_refused;
    }
    return exit_ok;
}

}  // namespace nagare::cli
