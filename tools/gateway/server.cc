#include "tools/gateway/server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <charconv>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "protocol/errc.h"
#include "protocol/subject.h"
#include "protocol/validate.h"
#include "tools/gateway/transports.h"
#include "tools/gateway/web_assets.h"

namespace nagare::gateway {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// A loop: its context (streams, hub members), acceptor, tick and rate bucket.
struct gateway_server::loop_state {
    explicit loop_state(unsigned index) : ctx(index), acceptor(ctx.io), ticker(ctx.io) {}
    loop_context ctx;
    tcp::acceptor acceptor;
    asio::steady_timer ticker;
    double tokens = 0;  // new streams allowed now (starts full: set by start())
    std::chrono::steady_clock::time_point refilled = std::chrono::steady_clock::now();
};

namespace {

std::string percent_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < in.size()) {
            unsigned v = 0;
            const auto r = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
            if (r.ec == std::errc{} && r.ptr == in.data() + i + 3) {
                out.push_back(static_cast<char>(v));
                i += 2;
            } else {
                out.push_back(c);
            }
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// The query's parameters (decoded). The last of a repeated name wins.
struct query_params {
    std::vector<std::pair<std::string, std::string>> items;
    [[nodiscard]] const std::string* get(std::string_view name) const {
        const std::string* found = nullptr;
        for (const auto& [k, v] : items) {
            if (k == name) found = &v;
        }
        return found;
    }
};

void split_target(std::string_view target, std::string_view& path, query_params& q) {
    const auto qm = target.find('?');
    path = target.substr(0, qm);
    if (qm == std::string_view::npos) return;
    std::string_view rest = target.substr(qm + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const auto part = rest.substr(0, amp);
        const auto eq = part.find('=');
        if (!part.empty()) {
            q.items.emplace_back(percent_decode(part.substr(0, eq)),
                                 eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1)));
        }
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
    }
}

std::string_view sv(beast::string_view v) { return {v.data(), v.size()}; }

struct check_failure {
    unsigned status;
    std::string code;
    std::string message;
};

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

// One HTTP connection until it becomes a stream or closes.
class gateway_server::http_session : public std::enable_shared_from_this<http_session> {
public:
    http_session(gateway_server& server, loop_state& loop, tcp::socket socket)
        : _server(server), _loop(loop), _stream(std::move(socket)) {}

    void read_next() {
        _parser.emplace();
        _parser->header_limit(16 * 1024);
        _parser->body_limit(64 * 1024);
        _stream.expires_after(_server._config.request_timeout);
        auto self = shared_from_this();
        http::async_read(_stream, _buffer, *_parser, [self](const error_code& ec, std::size_t) {
            if (ec) {
                self->fail(ec);
                return;
            }
            self->handle(self->_parser->release());
        });
    }

private:
    void fail(const error_code& ec) {
        if (ec == http::error::header_limit) {
            respond(error_response(431, "BAD_REQUEST", "request header fields too large", 11, false));
            return;
        }
        if (ec == http::error::body_limit) {
            respond(error_response(413, "BAD_REQUEST", "request body too large", 11, false));
            return;
        }
        if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted &&
            ec != beast::error::timeout && ec != asio::error::eof &&
            ec != asio::error::connection_reset) {
            _server._stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
            respond(error_response(400, "BAD_REQUEST", "malformed HTTP request", 11, false));
            return;
        }
        error_code ignored;
        _stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        _stream.close();
    }

    void respond(http::response<http::string_body> res) {
        auto shared = std::make_shared<http::response<http::string_body>>(std::move(res));
        const bool keep = shared->keep_alive();
        auto self = shared_from_this();
        http::async_write(_stream, *shared, [self, shared, keep](const error_code& ec, std::size_t) {
            if (ec || !keep) {
                error_code ignored;
                self->_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
                self->_stream.close();
                return;
            }
            self->read_next();
        });
    }

    http::response<http::string_body> text(http::status status, std::string_view type, std::string body,
                                           const http_request& req) {
        http::response<http::string_body> res{status, req.version()};
        res.set(http::field::server, "nagare-gateway");
        res.set(http::field::content_type, beast::string_view(type.data(), type.size()));
        res.set(http::field::cache_control, "no-cache");
        res.body() = std::move(body);
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        return res;
    }

    void handle(http_request req) {
        std::string_view path;
        query_params q;
        split_target(sv(req.target()), path, q);
        const bool stream_path = path == "/realtime" || path == "/events";
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            respond(error_response(405, "BAD_REQUEST", "only GET", req.version(), req.keep_alive()));
            return;
        }
        if (stream_path) {
            open_stream(std::move(req), path == "/realtime", q);
            return;
        }
        const auto& cfg = _server._config;
        if (path == "/status") {
            respond(text(http::status::ok, "application/json",
                         fmt::format(R"({{"broker":"{}","uptime_s":{:.1f},"stream":"{}","version":"0.1"}})",
                                     _server._stats.broker_connected.load() ? "connected" : "disconnected",
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                                   _server._stats.started)
                                         .count(),
                                     cfg.stream),
                         req));
            return;
        }
        if (path == "/stats") {
            respond(text(http::status::ok, "application/json", _server._stats.json(), req));
            return;
        }
        if (path == "/metrics") {
            respond(text(http::status::ok, "text/plain; version=0.0.4", _server._stats.prometheus(), req));
            return;
        }
        const web_asset* asset = find_web_asset(path == "/" ? "/index.html" : path);
        if (asset != nullptr) {
            std::string body;
            if (!cfg.web_root.empty() && asset->source_name != nullptr) {
                body = read_file(cfg.web_root / asset->source_name);
            }
            if (body.empty()) body.assign(asset->content);
            respond(text(http::status::ok, fmt::format("{}; charset=utf-8", asset->content_type), std::move(body), req));
            return;
        }
        respond(error_response(404, "NOT_FOUND", "no such path", req.version(), req.keep_alive()));
    }

    std::expected<stream_request, check_failure> check(const http_request& req, const query_params& q) {
        auto& server = _server;
        stream_request r;
        r.stream = server._config.stream;
        if (const auto* st = q.get("stream"); st != nullptr && !st->empty()) {
            if (protocol::validate_stream_name(*st) != protocol::errc::none) {
                return std::unexpected(check_failure{400, "BAD_REQUEST", "bad stream name"});
            }
            r.stream = *st;
        }
        const std::string* project = q.get("project");
        if (project == nullptr || project->empty()) return std::unexpected(check_failure{400, "BAD_PROJECT", "project= is required"});
        if (protocol::validate_project(*project) != protocol::errc::none) return std::unexpected(check_failure{400, "BAD_PROJECT", "bad project name"});
        r.project = *project;
        const std::string* subjects = q.get("subjects");
        std::string_view rest = subjects != nullptr && !subjects->empty() ? std::string_view(*subjects) : ">";
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            const auto p = rest.substr(0, comma);
            if (!p.empty()) {
                if (protocol::validate_pattern(p) != protocol::errc::none) {
                    return std::unexpected(check_failure{400, "BAD_PATTERN", fmt::format("bad subject pattern '{}'", p)});
                }
                r.patterns.emplace_back(p);
            }
            if (comma == std::string_view::npos) break;
            rest = rest.substr(comma + 1);
        }
        if (r.patterns.empty()) r.patterns.emplace_back(">");
        if (r.patterns.size() > 32) return std::unexpected(check_failure{400, "BAD_PATTERN", "at most 32 subject patterns"});

        std::string_view last;
        if (const auto h = req.find("Last-Event-ID"); h != req.end()) last = sv(h->value());
        if (last.empty()) {
            if (const auto* l = q.get("last_id")) last = *l;
        }
        if (!last.empty()) {
            r.last_id = parse_event_id(last);
            if (!r.last_id) return std::unexpected(check_failure{400, "BAD_REQUEST", "last_id must be <epoch>:<offset>"});
        }
        if (const auto* b = q.get("batch_ms")) {
            unsigned ms = 0;
            const auto res = std::from_chars(b->data(), b->data() + b->size(), ms);
            if (res.ec != std::errc{} || res.ptr != b->data() + b->size() || ms > 10'000) {
                return std::unexpected(check_failure{400, "BAD_REQUEST", "batch_ms must be 0..10000"});
            }
            r.batch = std::chrono::milliseconds(ms);
        } else {
            r.batch = server._config.batch;
        }
        if (const auto* n = q.get("named")) r.named = *n != "0";

        // Token and access.
        if (server._config.no_auth) {
            r.admin = true;
        } else {
            const auto auth = req.find(http::field::authorization);
            const auto cookie = req.find(http::field::cookie);
            const std::string* qt = q.get("token");
            const auto token = find_token(auth != req.end() ? sv(auth->value()) : std::string_view(),
                                          cookie != req.end() ? sv(cookie->value()) : std::string_view(),
                                          qt != nullptr ? std::string_view(*qt) : std::string_view());
            if (token.empty()) {
                server._stats.rejected_auth.fetch_add(1, std::memory_order_relaxed);
                return std::unexpected(check_failure{401, "NOT_AUTHORIZED", "a token is required"});
            }
            auto g = server._verifier->verify(token, std::chrono::system_clock::now());
            if (!g) {
                server._stats.rejected_auth.fetch_add(1, std::memory_order_relaxed);
                return std::unexpected(check_failure{401, "NOT_AUTHORIZED", g.error()});
            }
            switch (check_access(*g, r.project, r.patterns, server._private)) {
                case access::ok: break;
                case access::forbidden_project:
                    server._stats.rejected_forbidden.fetch_add(1, std::memory_order_relaxed);
                    return std::unexpected(check_failure{403, "FORBIDDEN", "project not allowed"});
                case access::forbidden_subject:
                    server._stats.rejected_forbidden.fetch_add(1, std::memory_order_relaxed);
                    return std::unexpected(check_failure{403, "FORBIDDEN", "subject not allowed"});
                case access::private_needs_admin:
                    server._stats.rejected_forbidden.fetch_add(1, std::memory_order_relaxed);
                    return std::unexpected(check_failure{403, "FORBIDDEN", "private subjects need the admin role"});
            }
            r.admin = g->admin;
        }

        // Rate and count.
        const auto now = std::chrono::steady_clock::now();
        const double rate = server._config.connect_rate / static_cast<double>(server._loops.size());
        _loop.tokens = std::min(2 * rate, _loop.tokens + rate * std::chrono::duration<double>(now - _loop.refilled).count());
        _loop.refilled = now;
        const auto open = static_cast<std::size_t>(server._stats.websocket_connections.load() +
                                                   server._stats.sse_connections.load());
        if (_loop.tokens < 1.0 || open >= server._config.max_connections) {
            server._stats.rejected_rate.fetch_add(1, std::memory_order_relaxed);
            return std::unexpected(check_failure{503, "OVERLOADED", "too many new connections, retry later"});
        }
        _loop.tokens -= 1.0;
        return r;
    }

    void open_stream(http_request req, bool websocket, const query_params& q) {
        if (websocket && !beast::websocket::is_upgrade(req)) {
            auto res = error_response(426, "BAD_REQUEST", "a WebSocket upgrade is required", req.version(), false);
            res.set(http::field::upgrade, "websocket");
            respond(std::move(res));
            return;
        }
        if (websocket) {
            // Beast checks that the key is there; RFC 6455 4.2.1 wants 16 bytes in base64.
            const auto key = sv(req[http::field::sec_websocket_key]);
            const bool b64 = key.size() == 24 && key.ends_with("==") &&
                             key.substr(0, 22).find_first_not_of(
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") ==
                                 std::string_view::npos;
            if (!b64) {
                _server._stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
                respond(error_response(400, "BAD_REQUEST", "bad Sec-WebSocket-Key", req.version(), false));
                return;
            }
        }
        auto checked = check(req, q);
        if (!checked) {
            respond(error_response(checked.error().status, checked.error().code, checked.error().message,
                                   req.version(), false));
            return;
        }
        _stream.expires_never();
        gateway_parts parts{_server._config, _server._stats, *_server._link, _server._private};
        std::shared_ptr<stream_session> s;
        if (websocket) {
            s = std::make_shared<ws_session>(parts, _loop.ctx, std::move(*checked), std::move(_stream), std::move(req));
        } else {
            s = std::make_shared<sse_session>(parts, _loop.ctx, std::move(*checked), std::move(_stream), req.version());
        }
        s->begin();
    }

    gateway_server& _server;
    loop_state& _loop;
    beast::tcp_stream _stream;
    beast::flat_buffer _buffer;
    std::optional<http::request_parser<http::string_body>> _parser;
};

gateway_server::gateway_server(gateway_config config)
    : _config(std::move(config)), _private(_config.private_patterns) {}

gateway_server::~gateway_server() { stop(); }

std::expected<void, std::string> gateway_server::start() {
    if (!_config.no_auth) {
        if (_config.hs256_secret_file.empty() && _config.rs256_public_key_file.empty()) {
            return std::unexpected(std::string(
                "no token key: give --jwt-hs256-secret-file or --jwt-rs256-public-key-file (or --no-auth)"));
        }
        auto keys = load_auth_keys(_config.hs256_secret_file, _config.rs256_public_key_file);
        if (!keys) return std::unexpected(keys.error());
        _verifier = std::make_unique<token_verifier>(std::move(*keys));
    }
    unsigned threads = _config.threads != 0 ? _config.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < threads; ++i) {
        _loops.push_back(std::make_unique<loop_state>(i));
        _loops.back()->tokens = 2 * _config.connect_rate / threads;
    }

    error_code ec;
    const auto address = asio::ip::make_address(_config.listen_host, ec);
    if (ec) return std::unexpected("bad listen address '" + _config.listen_host + "'");
    std::uint16_t port = _config.listen_port;
    for (auto& loop : _loops) {
        auto& a = loop->acceptor;
        a.open(address.is_v6() ? tcp::v6() : tcp::v4(), ec);
        if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) {
            const int one = 1;
            if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
                ec = error_code(errno, boost::system::system_category());
            }
        }
        if (!ec) a.bind({address, port}, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) return std::unexpected(fmt::format("cannot listen on {}:{}: {}", _config.listen_host, port, ec.message()));
        port = a.local_endpoint().port();
    }
    _port = port;

    _link = std::make_unique<broker_link>(_config, _stats, _private, threads,
                                          [this](unsigned loop, std::function<void(loop_context&)> fn) {
                                              auto& ctx = _loops[loop]->ctx;
                                              asio::post(ctx.io, [&ctx, f = std::move(fn)] { f(ctx); });
                                          });
    _link->start();
    for (auto& loop : _loops) {
        accept_next(*loop);
        tick(*loop);
        _threads.emplace_back([&l = *loop] { l.ctx.io.run(); });
    }
    return {};
}

void gateway_server::accept_next(loop_state& loop) {
    loop.acceptor.async_accept(loop.ctx.io, [this, &loop](const error_code& ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) {
            error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            std::make_shared<http_session>(*this, loop, std::move(socket))->read_next();
        }
        accept_next(loop);
    });
}

void gateway_server::tick(loop_state& loop) {
    // Heartbeats are checked every quarter interval (a walk over every stream).
    loop.ticker.expires_after(heartbeat_tick(_config.heartbeat));
    loop.ticker.async_wait([this, &loop](const error_code& ec) {
        if (ec) return;
        const auto now = std::chrono::steady_clock::now();
        std::vector<stream_session*> streams(loop.ctx.streams.begin(), loop.ctx.streams.end());
        for (auto* s : streams) {
            if (loop.ctx.streams.contains(s)) s->on_second(now);
        }
        tick(loop);
    });
}

void gateway_server::stop() {
    if (_stopped || _loops.empty()) return;
    _stopped = true;
    for (auto& loop : _loops) {
        asio::post(loop->ctx.io, [&l = *loop] {
            error_code ignored;
            l.acceptor.close(ignored);
            l.ticker.cancel();
            std::vector<std::shared_ptr<stream_session>> streams;
            for (auto* s : l.ctx.streams) streams.push_back(s->shared_from_this());
            for (auto& s : streams) s->shutdown();
        });
    }
    // Let the closes go out (bounded), then stop.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (_link) _link->stop();
    for (auto& loop : _loops) loop->ctx.io.stop();
    for (auto& t : _threads) t.join();
    _threads.clear();
}

}  // namespace nagare::gateway
