#include "bench/sse_client.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/limits.h"
#include "bench/open_loop.h"

namespace nagare::bench {

namespace {

constexpr std::size_t chunk_size_line_bytes_max = 64;
constexpr int epoll_events_max = 64;
constexpr int epoll_wait_ms = 50;
// How much of an unexpected event or error body an error text quotes.
constexpr std::size_t quoted_bytes_max = 160;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
    return std::ranges::equal(a, b, [](char x, char y) { return lower(x) == lower(y); });
}

bool icontains(std::string_view text, std::string_view word) noexcept {
    if (word.size() > text.size()) return false;
    for (std::size_t i = 0; i + word.size() <= text.size(); ++i) {
        if (iequals(text.substr(i, word.size()), word)) return true;
    }
    return false;
}

std::string_view trim(std::string_view text) noexcept {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
        text.remove_suffix(1);
    return text;
}

std::string quoted(std::string_view text) {
    return std::string(text.substr(0, quoted_bytes_max)) +
           (text.size() > quoted_bytes_max ? "..." : "");
}

}  // namespace

// ---- sse_parser ------------------------------------------------------------------

sse_parser::sse_parser() {
    _head.reserve(sse_head_bytes_max);
    _size_line.reserve(chunk_size_line_bytes_max);
    _line.reserve(sse_line_bytes_max);
    _data.reserve(sse_line_bytes_max);
    _event.reserve(sse_line_bytes_max);
}

void sse_parser::fail(std::string_view why) noexcept {
    if (_stage == stage::failed) return;
    _stage = stage::failed;
    _error.assign(why);
}

bool sse_parser::feed(std::string_view bytes, sse_listener& listener) noexcept {
    if (_stage == stage::head) head_bytes(bytes);
    if (_stage == stage::body && !bytes.empty()) body_bytes(bytes, listener);
    return _stage == stage::head || _stage == stage::body;
}

void sse_parser::head_bytes(std::string_view& bytes) noexcept {
    // The blank line may straddle two reads: look from a little before the new bytes.
    const auto look_from = _head.size() < 3 ? 0 : _head.size() - 3;
    const auto room = sse_head_bytes_max - _head.size();
    const auto taken = std::min(room, bytes.size());
    _head.append(bytes.substr(0, taken));
    const auto end = _head.find("\r\n\r\n", look_from);
    if (end == std::string::npos) {
        bytes = {};
        if (_head.size() >= sse_head_bytes_max) fail("HTTP response head too long");
        return;
    }
    // Bytes past the head belong to the body: give them back.
    const auto head_bytes_total = end + 4;
    const auto body_in_head = _head.size() - head_bytes_total;
    bytes = bytes.substr(taken - body_in_head);
    _head.resize(head_bytes_total);
    parse_head();
}

void sse_parser::parse_head() noexcept {
    std::string_view head(_head);
    const auto line_end = head.find("\r\n");
    const auto status_line = head.substr(0, line_end);
    // "HTTP/1.1 200 OK"
    const auto space = status_line.find(' ');
    if (!status_line.starts_with("HTTP/1.") || space == std::string_view::npos) {
        fail("not an HTTP response: " + quoted(status_line));
        return;
    }
    const auto code = status_line.substr(space + 1, 3);
    if (std::from_chars(code.data(), code.data() + code.size(), _status).ec != std::errc{}) {
        fail("bad HTTP status line: " + quoted(status_line));
        return;
    }
    bool event_stream = false;
    for (auto rest = head.substr(line_end + 2); !rest.empty();) {
        const auto end = rest.find("\r\n");
        const auto line = rest.substr(0, end);
        rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 2);
        const auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        const auto name = trim(line.substr(0, colon));
        const auto value = trim(line.substr(colon + 1));
        if (iequals(name, "transfer-encoding") && icontains(value, "chunked")) _chunked = true;
        if (iequals(name, "content-type") && icontains(value, "text/event-stream"))
            event_stream = true;
    }
    if (_status != 200) {
        fail("HTTP " + std::to_string(_status) + ": " + quoted(status_line));
        return;
    }
    if (!event_stream) {
        fail("HTTP 200 without Content-Type: text/event-stream");
        return;
    }
    _stage = stage::body;
}

void sse_parser::body_bytes(std::string_view bytes, sse_listener& listener) noexcept {
    if (_chunked) {
        chunked_bytes(bytes, listener);
    } else {
        sse_bytes(bytes, listener);
    }
}

void sse_parser::chunked_bytes(std::string_view bytes, sse_listener& listener) noexcept {
    while (!bytes.empty() && _stage == stage::body) {
        switch (_chunk_stage) {
            case chunk_stage::size_line: {
                const auto nl = bytes.find('\n');
                const auto part = bytes.substr(0, nl);
                if (_size_line.size() + part.size() > chunk_size_line_bytes_max) {
                    fail("chunk size line too long");
                    return;
                }
                _size_line.append(part);
                if (nl == std::string_view::npos) return;
                bytes.remove_prefix(nl + 1);
                // "1a2b[;extension]\r"
                const auto digits = _size_line.substr(0, _size_line.find_first_of(";\r"));
                std::uint64_t size = 0;
                const auto parsed =
                    std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
                if (digits.empty() || parsed.ec != std::errc{} ||
                    parsed.ptr != digits.data() + digits.size()) {
                    fail("bad chunk size line");
                    return;
                }
                _size_line.clear();
                if (size == 0) {
                    _stage = stage::ended;
                    return;
                }
                _chunk_left = size;
                _chunk_stage = chunk_stage::data;
                break;
            }
            case chunk_stage::data: {
                const auto n =
                    static_cast<std::size_t>(std::min<std::uint64_t>(_chunk_left, bytes.size()));
                sse_bytes(bytes.substr(0, n), listener);
                bytes.remove_prefix(n);
                _chunk_left -= n;
                if (_chunk_left == 0) _chunk_stage = chunk_stage::data_end;
                break;
            }
            case chunk_stage::data_end: {
                // The CRLF after the data: skip to the end of that line.
                const auto nl = bytes.find('\n');
                if (nl == std::string_view::npos) return;
                if (trim(bytes.substr(0, nl)).size() != 0) {
                    fail("chunk data longer than its size");
                    return;
                }
                bytes.remove_prefix(nl + 1);
                _chunk_stage = chunk_stage::size_line;
                break;
            }
        }
    }
}

void sse_parser::sse_bytes(std::string_view bytes, sse_listener& listener) noexcept {
    while (!bytes.empty() && _stage == stage::body) {
        if (_skip_lf) {
            _skip_lf = false;
            if (bytes.front() == '\n') {
                bytes.remove_prefix(1);
                continue;
            }
        }
        const auto end = bytes.find_first_of("\r\n");
        const auto part = bytes.substr(0, end);
        if (_line.size() + part.size() > sse_line_bytes_max) {
            fail("SSE line longer than " + std::to_string(sse_line_bytes_max) + " bytes");
            return;
        }
        _line.append(part);
        if (end == std::string_view::npos) return;
        _skip_lf = bytes[end] == '\r';
        bytes.remove_prefix(end + 1);
        sse_line(listener);
        _line.clear();
    }
}

void sse_parser::sse_line(sse_listener& listener) noexcept {
    if (_line.empty()) {  // dispatch
        if (_has_data) {
            ++_events;
            listener.on_sse_event(_event.empty() ? std::string_view("message") : _event, _data);
        }
        _data.clear();
        _event.clear();
        _has_data = false;
        return;
    }
    if (_line.front() == ':') {
        ++_comments;
        return;
    }
    const std::string_view line(_line);
    const auto colon = line.find(':');
    const auto field = line.substr(0, colon);
    auto value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (value.starts_with(' ')) value.remove_prefix(1);
    if (field == "data") {
        if (_data.size() + value.size() + 1 > sse_line_bytes_max) {
            fail("SSE event data longer than " + std::to_string(sse_line_bytes_max) + " bytes");
            return;
        }
        if (_has_data) _data.push_back('\n');
        _data.append(value);
        _has_data = true;
    } else if (field == "event") {
        _event.assign(value);
    }
    // id:, retry: and unknown fields are not needed here.
}

// ---- URLs ---------------------------------------------------------------------------

std::expected<http_endpoint, std::string> parse_http_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (!url.starts_with(scheme)) return std::unexpected("not an http:// URL: " + std::string(url));
    auto rest = url.substr(scheme.size());
    rest = rest.substr(0, rest.find('/'));
    http_endpoint e;
    std::string_view port_text;
    if (rest.starts_with('[')) {
        const auto close = rest.find(']');
        if (close == std::string_view::npos)
            return std::unexpected("bad IPv6 host in " + std::string(url));
        e.host = std::string(rest.substr(1, close - 1));
        if (close + 1 < rest.size() && rest[close + 1] == ':') port_text = rest.substr(close + 2);
    } else {
        const auto colon = rest.rfind(':');
        e.host = std::string(rest.substr(0, colon));
        if (colon != std::string_view::npos) port_text = rest.substr(colon + 1);
    }
    if (e.host.empty()) return std::unexpected("no host in " + std::string(url));
    if (!port_text.empty()) {
        const auto parsed =
            std::from_chars(port_text.data(), port_text.data() + port_text.size(), e.port);
        if (parsed.ec != std::errc{} || parsed.ptr != port_text.data() + port_text.size() ||
            e.port == 0) {
            return std::unexpected("bad port in " + std::string(url));
        }
    }
    return e;
}

// ---- sse_fanout ----------------------------------------------------------------------

struct sse_fanout::client final : sse_listener {
    client(sse_fanout& owner_, delivery_sink& sink_) : owner(owner_), sink(sink_) {}
    ~client() {
        if (fd >= 0) ::close(fd);
    }
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    void on_sse_event(std::string_view type, std::string_view data) noexcept override {
        if (!welcomed) {
            if (type == "welcome" || data.find("\"type\":\"welcome\"") != std::string_view::npos) {
                welcomed = true;
                owner._welcomed.fetch_add(1, std::memory_order_relaxed);
                return;
            }
        }
        if (data.find(detail::json_seq_key) == std::string_view::npos) {
            failure("unexpected SSE event " + std::string(type) + ": " + quoted(data));
            return;
        }
        sink.on_delivered(
            delivery{{}, {}, {}, std::as_bytes(std::span(data.data(), data.size())), 1});
    }

    void failure(const std::string& text) noexcept {
        sink.on_subscription_error(text);
        owner.note_failure(text);
    }

    sse_fanout& owner;
    delivery_sink& sink;
    int fd = -1;
    sse_parser parser;
    bool welcomed = false;
};

void sse_fanout::note_failure(std::string_view text) noexcept {
    _failed.fetch_add(1, std::memory_order_relaxed);
    const std::lock_guard lock(_mutex);
    if (_first_failure.empty()) _first_failure = text;
}

namespace {

// A connected, blocking TCP socket to `e`, or an error.
std::expected<int, std::string> connect_to(const http_endpoint& e) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const auto port = std::to_string(e.port);
    if (const int rc = ::getaddrinfo(e.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
        return std::unexpected("cannot resolve " + e.host + ": " + ::gai_strerror(rc));
    }
    std::string error = "no address";
    int fd = -1;
    for (auto* a = found; a != nullptr && fd < 0; a = a->ai_next) {
        fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            error = std::strerror(errno);
            ::close(fd);
            fd = -1;
        }
    }
    ::freeaddrinfo(found);
    if (fd < 0) return std::unexpected("connect " + e.host + ":" + port + ": " + error);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

std::expected<std::unique_ptr<sse_fanout>, std::string> sse_fanout::start(
    const sse_fanout_options& o, std::span<delivery_sink* const> sinks) {
    auto endpoint = parse_http_url(o.url);
    if (!endpoint) return std::unexpected(endpoint.error());
    std::unique_ptr<sse_fanout> fan(new sse_fanout());
    const auto threads = std::max<std::size_t>(1, std::min(o.threads, sinks.size()));
    fan->_loops.resize(threads);
    for (auto& l : fan->_loops) {
        l.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (l.epoll_fd < 0) return std::unexpected(std::string("epoll: ") + std::strerror(errno));
    }
    std::string request = "GET " + o.target + " HTTP/1.1\r\nHost: " + endpoint->host + ":" +
                          std::to_string(endpoint->port) +
                          "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n";
    if (!o.token.empty()) request += "Authorization: Bearer " + o.token + "\r\n";
    request += "\r\n";
    for (std::size_t i = 0; i < sinks.size(); ++i) {
        auto c = std::make_unique<client>(*fan, *sinks[i]);
        auto fd = connect_to(*endpoint);
        if (!fd) return std::unexpected("SSE client " + std::to_string(i) + ": " + fd.error());
        c->fd = *fd;
        if (!send_all(c->fd, request)) {
            return std::unexpected("SSE client " + std::to_string(i) +
                                   ": send: " + std::strerror(errno));
        }
        ::fcntl(c->fd, F_SETFL, ::fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        auto& l = fan->_loops[i % threads];
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = c.get();
        if (::epoll_ctl(l.epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            return std::unexpected(std::string("epoll_ctl: ") + std::strerror(errno));
        }
        l.clients.push_back(c.get());
        fan->_clients.push_back(std::move(c));
    }
    for (std::size_t t = 0; t < threads; ++t) {
        fan->_threads.emplace_back([f = fan.get(), t] { f->run(t); });
    }
    const auto deadline = std::chrono::steady_clock::now() + o.welcome_wait;
    while (fan->_welcomed.load(std::memory_order_relaxed) < sinks.size()) {
        if (fan->_failed.load(std::memory_order_relaxed) != 0) {
            fan->stop();
            const std::lock_guard lock(fan->_mutex);
            return std::unexpected(fan->_first_failure);
        }
        if (std::chrono::steady_clock::now() > deadline) {
            fan->stop();
            return std::unexpected(std::to_string(fan->_welcomed.load()) + " of " +
                                   std::to_string(sinks.size()) +
                                   " SSE clients had their welcome event within " +
                                   std::to_string(o.welcome_wait.count()) + " ms");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return fan;
}

sse_fanout::~sse_fanout() {
    stop();
    for (auto& l : _loops) {
        if (l.epoll_fd >= 0) ::close(l.epoll_fd);
    }
}

void sse_fanout::stop() noexcept {
    _stopping.store(true, std::memory_order_relaxed);
    _threads.clear();  // joins
    for (auto& c : _clients) {
        if (c->fd >= 0) ::close(c->fd);
        c->fd = -1;
    }
}

void sse_fanout::run(std::size_t thread_index) noexcept {
    auto& l = _loops[thread_index];
    std::vector<char> buffer(sse_read_bytes);
    epoll_event events[epoll_events_max];
    std::size_t open = l.clients.size();
    while (open > 0 && !_stopping.load(std::memory_order_relaxed)) {
        const int n = ::epoll_wait(l.epoll_fd, events, epoll_events_max, epoll_wait_ms);
        for (int i = 0; i < n; ++i) {
            auto& c = *static_cast<client*>(events[i].data.ptr);
            for (;;) {
                const auto got = ::recv(c.fd, buffer.data(), buffer.size(), 0);
                if (got < 0 && errno == EINTR) continue;
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                bool keep = got > 0;
                if (got > 0) {
                    _bytes.fetch_add(static_cast<std::uint64_t>(got), std::memory_order_relaxed);
                    keep = c.parser.feed({buffer.data(), static_cast<std::size_t>(got)}, c);
                }
                if (keep) continue;
                if (!_stopping.load(std::memory_order_relaxed)) {
                    c.failure(c.parser.failed() ? "SSE: " + c.parser.error()
                              : got < 0         ? std::string("SSE: recv: ") + std::strerror(errno)
                                                : std::string("SSE: the gateway ended the stream"));
                }
                ::epoll_ctl(l.epoll_fd, EPOLL_CTL_DEL, c.fd, nullptr);
                --open;
                break;
            }
        }
    }
}

void sse_fanout::add_counters(target_counters& into) const {
    std::uint64_t events = 0;
    std::uint64_t comments = 0;
    for (const auto& c : _clients) {
        events += c->parser.events();
        comments += c->parser.comments();
    }
    add_counter(into, "sse_events", static_cast<double>(events));
    add_counter(into, "sse_heartbeats", static_cast<double>(comments));
    add_counter(into, "sse_bytes", static_cast<double>(_bytes.load()));
    add_counter(into, "sse_clients_failed", static_cast<double>(_failed.load()));
}

}  // namespace nagare::bench
