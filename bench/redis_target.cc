#include "bench/redis_target.h"

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace nagare::bench {

namespace {

constexpr int block_ms = 100;  // XREADGROUP BLOCK: how soon close() is seen
constexpr std::size_t read_chunk_bytes = 64 * 1024;
constexpr auto connect_wait = std::chrono::seconds(5);
constexpr auto ack_drain_poll = std::chrono::milliseconds(1);

struct endpoint {
    std::string host;
    int port = 6379;
};

std::expected<endpoint, std::string> parse_url(std::string_view url) {
    std::string_view rest = url;
    if (rest.starts_with("redis://")) rest.remove_prefix(8);
    while (rest.ends_with('/')) rest.remove_suffix(1);
    endpoint e;
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
        e.host = std::string(rest);
    } else {
        e.host = std::string(rest.substr(0, colon));
        const auto digits = rest.substr(colon + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), e.port);
        if (ec != std::errc{} || end != digits.data() + digits.size() || e.port <= 0 ||
            e.port > 65535)
            return std::unexpected("bad redis url '" + std::string(url) + "'");
    }
    if (e.host.empty()) return std::unexpected("bad redis url '" + std::string(url) + "'");
    return e;
}

struct reply_free {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

struct context_free {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using context_ptr = std::unique_ptr<redisContext, context_free>;

std::string_view text_of(const redisReply& r) noexcept {
    return {r.str, r.len > 0 ? static_cast<std::size_t>(r.len) : 0};
}

std::expected<context_ptr, std::string> open_context(const endpoint& e) {
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(connect_wait).count();
    const timeval wait{static_cast<time_t>(s), 0};
    context_ptr c(redisConnectWithTimeout(e.host.c_str(), e.port, wait));
    if (!c) return std::unexpected("redis connect: out of memory");
    if (c->err != 0) {
        return std::unexpected("redis connect " + e.host + ":" + std::to_string(e.port) + ": " +
                               c->errstr);
    }
    return c;
}

// Runs one command; an error text for a lost connection or an error reply.
std::expected<reply_ptr, std::string> run(redisContext& c, const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    reply_ptr r(static_cast<redisReply*>(
        redisCommandArgv(&c, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!r) return std::unexpected(args.front() + ": " + c.errstr);
    if (r->type == REDIS_REPLY_ERROR)
        return std::unexpected(args.front() + ": " + std::string(text_of(*r)));
    return r;
}

// CONFIG GET name: its value, or an error.
std::expected<std::string, std::string> config_get(redisContext& c, const std::string& name) {
    auto r = run(c, {"CONFIG", "GET", name});
    if (!r) return std::unexpected(r.error());
    if ((*r)->type != REDIS_REPLY_ARRAY || (*r)->elements != 2)
        return std::unexpected("CONFIG GET " + name + ": unexpected reply");
    return std::string(text_of(*(*r)->element[1]));
}

// Appends one RESP bulk string.
void append_bulk(std::string& out, std::string_view s) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits, s.size()).ptr;
    out += '$';
    out.append(digits, end);
    out += "\r\n";
    out.append(s);
    out += "\r\n";
}

// The key a subject is stored under: bench.<tag>.<rest> -> bench_<tag>
// (the stream prepare_stream names; a connection is not told its stream).
std::string stream_key(std::string_view subject) {
    std::string_view rest = subject;
    if (rest.starts_with("bench.")) rest.remove_prefix(6);
    return "bench_" + std::string(rest.substr(0, rest.find('.')));
}

// A stream entry id "<ms>-<seq>" as a pair (0-0 when unparsable).
std::pair<std::uint64_t, std::uint64_t> parse_entry_id(std::string_view id) noexcept {
    std::uint64_t ms = 0, seq = 0;
    const auto dash = id.find('-');
    if (dash == std::string_view::npos) return {0, 0};
    std::from_chars(id.data(), id.data() + dash, ms);
    std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
    return {ms, seq};
}

// One publishing connection: a non-blocking socket driven by one I/O thread
// (poll on the socket and an eventfd). publish() appends the encoded XADD to
// _queued and the token to _tokens; the thread moves _queued to its output,
// writes as much as the socket takes, and resolves a token per reply, in order.
class redis_connection final : public connection {
public:
    // REQUIRES: fd a connected socket, wake a non-blocking eventfd; both owned.
    redis_connection(int fd, int wake, std::size_t inflight_max, publish_sink& sink)
        : _fd(fd),
          _wake(wake),
          _inflight_max(inflight_max == 0 ? 1 : inflight_max),
          _sink(&sink),
          _reader(redisReaderCreate()) {
        _io = std::thread([this] { io_loop(); });
    }
    ~redis_connection() override {
        close();
        redisReaderFree(_reader);
    }

    std::expected<void, std::string> publish(const publish_request& request,
                                             std::uint64_t token) override {
        if (request.subject != _key_subject) {
            _key_subject = std::string(request.subject);
            _key = stream_key(request.subject);
        }
        bool wake = false;
        {
            std::unique_lock lock(_mutex);
            _cv.wait(lock, [&] { return _tokens.size() < _inflight_max || _closed; });
            if (_closed) return std::unexpected(_fault.empty() ? "connection closed" : _fault);
            _queued += "*11\r\n$4\r\nXADD\r\n";
            append_bulk(_queued, _key);
            _queued += "$1\r\n*\r\n$1\r\np\r\n";
            append_bulk(_queued, request.project);
            _queued += "$1\r\ns\r\n";
            append_bulk(_queued, request.subject);
            _queued += "$2\r\nid\r\n";
            append_bulk(_queued, request.msg_id);
            _queued += "$1\r\nd\r\n";
            append_bulk(_queued,
                        std::string_view(reinterpret_cast<const char*>(request.payload.data()),
                                         request.payload.size()));
            _tokens.push_back(token);
            _accepted += 1;
            wake = !std::exchange(_wake_pending, true);
        }
        if (wake) signal();
        return {};
    }

    bool flush(std::chrono::milliseconds wait_max) override {
        std::unique_lock lock(_mutex);
        return _cv.wait_for(lock, wait_max, [&] { return _resolved == _accepted; });
    }

    // Idempotent; a concurrent second call waits for the first.
    void close() noexcept override {
        std::call_once(_close_once, [this] {
            {
                std::lock_guard lock(_mutex);
                _closing = true;
            }
            signal();
            _io.join();
            ::close(std::exchange(_fd, -1));
            ::close(std::exchange(_wake, -1));
        });
    }

    void add_counters(target_counters& into) const override {
        add_counter(into, "xadd_sent", static_cast<double>(_sent.load()));
        add_counter(into, "socket_writes", static_cast<double>(_writes.load()));
        add_counter(into, "socket_reads", static_cast<double>(_reads.load()));
        add_counter(into, "xadd_ids_not_increasing", static_cast<double>(_ids_backwards.load()));
    }

private:
    void signal() noexcept {
        const std::uint64_t one = 1;
        (void)!::write(_wake, &one, sizeof one);
    }

    void io_loop() noexcept {
        std::string out;
        std::size_t out_at = 0;
        std::vector<char> chunk(read_chunk_bytes);
        std::string fault;
        for (;;) {
            pollfd fds[2] = {
                {_fd, static_cast<short>(POLLIN | (out_at < out.size() ? POLLOUT : 0)), 0},
                {_wake, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
                fault = std::string("poll: ") + std::strerror(errno);
                break;
            }
            if (fds[1].revents != 0) {
                std::uint64_t n = 0;
                (void)!::read(_wake, &n, sizeof n);
                std::lock_guard lock(_mutex);
                _wake_pending = false;
                if (_closing) break;
                if (out_at == out.size()) {
                    out.clear();
                    out_at = 0;
                }
                out += _queued;
                _queued.clear();
            }
            if (out_at < out.size()) {
                const auto n = ::send(_fd, out.data() + out_at, out.size() - out_at,
                                      MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    fault = std::string("send: ") + std::strerror(errno);
                    break;
                }
                if (n > 0) {
                    out_at += static_cast<std::size_t>(n);
                    _writes.fetch_add(1, std::memory_order_relaxed);
                }
            }
            if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) != 0) {
                const auto n = ::recv(_fd, chunk.data(), chunk.size(), MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    fault = n == 0 ? std::string("redis closed the connection")
                                   : std::string("recv: ") + std::strerror(errno);
                    break;
                }
                if (n > 0) {
                    _reads.fetch_add(1, std::memory_order_relaxed);
                    if (!take_replies(chunk.data(), static_cast<std::size_t>(n), fault)) break;
                }
            }
        }
        // Closing or lost: what is unresolved fails.
        std::deque<std::uint64_t> left;
        {
            std::lock_guard lock(_mutex);
            _closed = true;
            if (_fault.empty()) _fault = fault.empty() ? "connection closed" : fault;
            left.swap(_tokens);
        }
        for (const auto token : left) _sink->on_published(token, publish_outcome::failed, _fault);
        {
            std::lock_guard lock(_mutex);
            _resolved += left.size();
        }
        _cv.notify_all();
    }

    // Feeds `n` bytes to the reader and resolves each complete reply's
    // token; false (fault set) on a protocol error.
    bool take_replies(const char* bytes, std::size_t n, std::string& fault) noexcept {
        if (redisReaderFeed(_reader, bytes, n) != REDIS_OK) {
            fault = "redis reply: cannot buffer";
            return false;
        }
        std::vector<reply_ptr> replies;
        for (;;) {
            void* r = nullptr;
            if (redisReaderGetReply(_reader, &r) != REDIS_OK) {
                fault = std::string("redis reply: ") + _reader->errstr;
                return false;
            }
            if (r == nullptr) break;
            replies.emplace_back(static_cast<redisReply*>(r));
        }
        if (replies.empty()) return true;
        std::deque<std::uint64_t> tokens;
        {
            std::lock_guard lock(_mutex);
            for (std::size_t i = 0; i < replies.size() && !_tokens.empty(); ++i) {
                tokens.push_back(_tokens.front());
                _tokens.pop_front();
            }
        }
        if (tokens.size() != replies.size()) {
            fault = "redis sent more replies than commands";
            return false;
        }
        _sent.fetch_add(replies.size(), std::memory_order_relaxed);
        for (std::size_t i = 0; i < replies.size(); ++i) {
            const auto& r = *replies[i];
            if (r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS) {
                const auto id = parse_entry_id(text_of(r));
                if (!(id > _last_id)) _ids_backwards.fetch_add(1, std::memory_order_relaxed);
                _last_id = id;
                _sink->on_published(tokens[i], publish_outcome::stored, {});
            } else {
                _sink->on_published(tokens[i], publish_outcome::failed,
                                    r.type == REDIS_REPLY_ERROR
                                        ? text_of(r)
                                        : std::string_view("XADD: unexpected reply"));
            }
        }
        {
            std::lock_guard lock(_mutex);
            _resolved += replies.size();
        }
        _cv.notify_all();
        return true;
    }

    int _fd;
    int _wake;
    std::string _key_subject;  // the producer's last subject and its key
    std::string _key;
    std::size_t _inflight_max;
    publish_sink* _sink;
    redisReader* _reader;                                    // I/O thread only
    std::pair<std::uint64_t, std::uint64_t> _last_id{0, 0};  // I/O thread only

    std::mutex _mutex;
    std::condition_variable _cv;
    std::string _queued;                // encoded, not yet taken by the I/O thread
    std::deque<std::uint64_t> _tokens;  // written or queued, reply not yet read
    std::uint64_t _accepted = 0;
    std::uint64_t _resolved = 0;
    bool _wake_pending = false;
    bool _closing = false;
    bool _closed = false;
    std::string _fault;

    std::atomic<std::uint64_t> _sent{0};
    std::atomic<std::uint64_t> _writes{0};
    std::atomic<std::uint64_t> _reads{0};
    std::atomic<std::uint64_t> _ids_backwards{0};
    std::once_flag _close_once;
    std::thread _io;
};

std::atomic<std::uint64_t> subscription_serial{0};

// One subscriber: its own blocking hiredis context and thread reading the
// group with XREADGROUP; the acks of a batch go out as one XACK, pipelined
// with the next XREADGROUP.
class redis_subscription final : public subscription {
public:
    redis_subscription(context_ptr c, subscribe_request request, std::string group, bool ephemeral,
                       delivery_sink& sink)
        : _ctx(std::move(c)),
          _request(std::move(request)),
          _group(std::move(group)),
          _ephemeral(ephemeral),
          _sink(&sink) {
        _consumer = "c-" + std::to_string(::getpid()) + "-" +
                    std::to_string(subscription_serial.fetch_add(1));
        _thread = std::thread([this] { read_loop(); });
    }
    ~redis_subscription() override { close(); }

    bool drain(std::chrono::milliseconds wait_max) override {
        const auto deadline = std::chrono::steady_clock::now() + wait_max;
        for (;;) {
            if (_acks_sent.load() >= _acks_owed.load()) return true;
            if (_stopped.load() || std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(ack_drain_poll);
        }
    }

    void close() noexcept override {
        if (std::exchange(_closed, true)) return;
        _stop.store(true);
        if (_thread.joinable()) _thread.join();
        if (_ephemeral && _ctx && _ctx->err == 0)
            (void)run(*_ctx, {"XGROUP", "DESTROY", _request.stream, _group});
        _ctx.reset();
    }

    void add_counters(target_counters& into) const override {
        add_counter(into, "delivered", static_cast<double>(_delivered.load()));
        add_counter(into, "xreadgroup_calls", static_cast<double>(_reads.load()));
        add_counter(into, "acks_sent", static_cast<double>(_acks_sent.load()));
        add_counter(into, "xack_calls", static_cast<double>(_xacks.load()));
        add_counter(into, "filtered_out", static_cast<double>(_filtered.load()));
    }

private:
    void read_loop() noexcept {
        const bool explicit_acks = _request.ack == ack_mode::explicit_each;
        const auto count =
            std::to_string(_request.inflight_messages == 0 ? 1 : _request.inflight_messages);
        std::vector<std::string> read_args{
            "XREADGROUP", "GROUP", _group,  _consumer,
            "COUNT",      count,   "BLOCK", std::to_string(block_ms)};
        if (!explicit_acks) read_args.emplace_back("NOACK");
        read_args.insert(read_args.end(), {"STREAMS", _request.stream, ">"});
        std::vector<std::string> ack_args;
        bool healthy = true;
        while (!_stop.load()) {
            // The previous batch's XACK, then the next read: one round trip.
            const bool acking = ack_args.size() > 3;
            if ((acking && !append(ack_args)) || !append(read_args)) {
                healthy = false;
                break;
            }
            if (acking) {
                auto acked = next_reply();
                if (!acked) {
                    fail(acked.error());
                    healthy = false;
                    break;
                }
                _acks_sent.fetch_add(ack_args.size() - 3);
                _xacks.fetch_add(1);
            }
            ack_args = {"XACK", _request.stream, _group};
            auto got = next_reply();
            if (!got) {
                fail(got.error());
                healthy = false;
                break;
            }
            _reads.fetch_add(1);
            const auto& r = **got;
            if (r.type != REDIS_REPLY_ARRAY) continue;  // nil: BLOCK timed out
            for (std::size_t s = 0; s < r.elements; ++s) {
                const auto& stream = *r.element[s];
                if (stream.type != REDIS_REPLY_ARRAY || stream.elements != 2) continue;
                const auto& entries = *stream.element[1];
                for (std::size_t e = 0; e < entries.elements; ++e) {
                    const auto& entry = *entries.element[e];
                    if (entry.type != REDIS_REPLY_ARRAY || entry.elements != 2) continue;
                    if (explicit_acks) {
                        ack_args.emplace_back(text_of(*entry.element[0]));
                        _acks_owed.fetch_add(1);
                    }
                    deliver(*entry.element[1]);
                }
            }
        }
        // Closing: the last batch's acks still go out (as nagare's unsubscribe sends its queued
        // acks).
        if (healthy && ack_args.size() > 3) {
            auto acked = run(*_ctx, ack_args);
            if (acked) _acks_sent.fetch_add(ack_args.size() - 3);
        }
        _stopped.store(true);
    }

    void deliver(const redisReply& fields) noexcept {
        delivery d;
        for (std::size_t i = 0; i + 1 < fields.elements; i += 2) {
            const auto name = text_of(*fields.element[i]);
            const auto value = text_of(*fields.element[i + 1]);
            if (name == "p")
                d.project = value;
            else if (name == "s")
                d.subject = value;
            else if (name == "id")
                d.msg_id = value;
            else if (name == "d")
                d.payload = std::as_bytes(std::span(value.data(), value.size()));
        }
        if (!_request.subject.empty() && d.subject != _request.subject) {
            _filtered.fetch_add(1);
            return;
        }
        _sink->on_delivered(d);
        _delivered.fetch_add(1);
    }

    bool append(const std::vector<std::string>& args) noexcept {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.data());
            lens.push_back(a.size());
        }
        if (redisAppendCommandArgv(_ctx.get(), static_cast<int>(argv.size()), argv.data(),
                                   lens.data()) != REDIS_OK) {
            fail(std::string("redis: ") + _ctx->errstr);
            return false;
        }
        return true;
    }

    std::expected<reply_ptr, std::string> next_reply() noexcept {
        void* raw = nullptr;
        if (redisGetReply(_ctx.get(), &raw) != REDIS_OK || raw == nullptr)
            return std::unexpected(std::string("redis: ") + _ctx->errstr);
        reply_ptr r(static_cast<redisReply*>(raw));
        if (r->type == REDIS_REPLY_ERROR) return std::unexpected(std::string(text_of(*r)));
        return r;
    }

    void fail(std::string_view text) noexcept {
        if (!_stop.load()) _sink->on_subscription_error(text);
    }

    context_ptr _ctx;  // the read thread's while it runs
    subscribe_request _request;
    std::string _group;
    std::string _consumer;
    bool _ephemeral;
    delivery_sink* _sink;
    bool _closed = false;
    std::atomic<bool> _stop{false};
    std::atomic<bool> _stopped{false};
    std::atomic<std::uint64_t> _delivered{0};
    std::atomic<std::uint64_t> _reads{0};
    std::atomic<std::uint64_t> _acks_owed{0};
    std::atomic<std::uint64_t> _acks_sent{0};
    std::atomic<std::uint64_t> _xacks{0};
    std::atomic<std::uint64_t> _filtered{0};
    std::thread _thread;
};

// Subscriptions opened one connection each (Redis has no multiplexing of
// blocking reads on one connection that hiredis' blocking API offers).
class redis_subscriber_connection final : public subscriber_connection {
public:
    explicit redis_subscriber_connection(target& owner) : _owner(&owner) {}
    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        return _owner->subscribe(request, sink);
    }
    void close() noexcept override {}

private:
    target* _owner;
};

class redis_target final : public target {
public:
    explicit redis_target(redis_target_options options) : _options(std::move(options)) {}

    std::string_view name() const noexcept override { return "redis"; }

    std::expected<stream_handle, std::string> prepare_stream(durability mode) override {
        const std::string tag(to_string(mode));
        stream_handle handle{"bench_" + tag, "bench." + tag + "."};
        auto e = parse_url(_options.url);
        if (!e) return std::unexpected(e.error());
        auto c = open_context(*e);
        if (!c) return std::unexpected(c.error());
        auto aof = config_get(**c, "appendonly");
        if (!aof) return std::unexpected(aof.error());
        auto fsync = config_get(**c, "appendfsync");
        if (!fsync) return std::unexpected(fsync.error());
        if (*aof != "yes" || *fsync != redis_appendfsync(mode)) {
            return std::unexpected("redis at " + _options.url + " has appendonly " + *aof +
                                   ", appendfsync " + *fsync + "; durability " + tag +
                                   " needs appendonly yes, " + redis_durability_setting(mode) +
                                   " (--start-broker sets it)");
        }
        return handle;
    }

    std::expected<std::unique_ptr<connection>, std::string> connect(
        const connection_options& options, publish_sink& sink) override {
        auto e = parse_url(_options.url);
        if (!e) return std::unexpected(e.error());
        auto c = open_context(*e);
        if (!c) return std::unexpected(c.error());
        // Take the socket from hiredis: the connection drives it itself.
        const int fd = ::dup((*c)->fd);
        if (fd < 0) return std::unexpected(std::string("dup: ") + std::strerror(errno));
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake < 0) {
            const int saved = errno;
            ::close(fd);
            return std::unexpected(std::string("eventfd: ") + std::strerror(saved));
        }
        return std::make_unique<redis_connection>(fd, wake, options.inflight_messages, sink);
    }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        auto e = parse_url(_options.url);
        if (!e) return std::unexpected(e.error());
        auto c = open_context(*e);
        if (!c) return std::unexpected(c.error());
        const bool ephemeral = request.consumer.empty();
        const std::string group = ephemeral ? "eph-" + std::to_string(::getpid()) + "-" +
                                                  std::to_string(subscription_serial.fetch_add(1))
                                            : request.consumer;
        const std::string from = request.start == start_position::first ? "0" : "$";
        auto created = run(**c, {"XGROUP", "CREATE", request.stream, group, from, "MKSTREAM"});
        if (!created && created.error().find("BUSYGROUP") == std::string::npos)
            return std::unexpected("subscribe " + request.stream + ": " + created.error());
        return std::make_unique<redis_subscription>(std::move(*c), request, group, ephemeral, sink);
    }

    std::expected<std::unique_ptr<subscriber_connection>, std::string> connect_subscriber()
        override {
        return std::make_unique<redis_subscriber_connection>(*this);
    }

    std::expected<void, std::string> remove_consumer(std::string_view stream,
                                                     std::string_view consumer) override {
        auto e = parse_url(_options.url);
        if (!e) return std::unexpected(e.error());
        auto c = open_context(*e);
        if (!c) return std::unexpected(c.error());
        auto removed = run(**c, {"XGROUP", "DESTROY", std::string(stream), std::string(consumer)});
        if (!removed)
            return std::unexpected("consumer rm " + std::string(consumer) + ": " + removed.error());
        return {};
    }

private:
    redis_target_options _options;
};

}  // namespace

std::string_view redis_appendfsync(durability mode) noexcept {
    switch (mode) {
        case durability::fsync:
            return "always";
        case durability::interval:
            return "everysec";
        case durability::none:
            return "no";
    }
    return "always";
}

std::string redis_durability_setting(durability mode) {
    return "appendfsync " + std::string(redis_appendfsync(mode));
}

std::unique_ptr<target> make_redis_target(redis_target_options options) {
    return std::make_unique<redis_target>(std::move(options));
}

}  // namespace nagare::bench
