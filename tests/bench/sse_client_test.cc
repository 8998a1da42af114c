// bench/sse_client.h: the SSE response parser (head, chunked framing, line
// ends, multi-line data, limits), URL parsing, and sse_fanout against the
// fake SSE server; bench/gateway_process.h's listening line.
#include "bench/sse_client.h"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bench/gateway_process.h"
#include "bench/limits.h"
#include "tests/bench/fake_sse_server.h"

namespace nagare::bench {
namespace {

struct recorded final : sse_listener {
    void on_sse_event(std::string_view type, std::string_view data) noexcept override {
        events.emplace_back(std::string(type), std::string(data));
    }
    std::vector<std::pair<std::string, std::string>> events;
};

constexpr std::string_view plain_head =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
constexpr std::string_view chunked_head =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    "transfer-encoding: Chunked\r\n\r\n";

std::string chunk(std::string_view data) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + std::string(data) + "\r\n";
}

// Feeds `bytes` in pieces of `step` bytes; the last feed's result.
bool feed_in_steps(sse_parser& p, recorded& r, std::string_view bytes, std::size_t step) {
    bool ok = true;
    for (std::size_t i = 0; i < bytes.size() && ok; i += step)
        ok = p.feed(bytes.substr(i, step), r);
    return ok;
}

TEST(SseParser, EventsOfAPlainStreamWhateverTheSplit) {
    const std::string stream =
        std::string(plain_head) +
        "retry: 1000\n\n: hb\ndata: {\"a\":1}\n\nevent: slow\r\ndata: x\r\ndata: y\r\n\r\n"
        "id: 1:2\rdata: z\r\r";
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        sse_parser p;
        recorded r;
        ASSERT_TRUE(feed_in_steps(p, r, stream, step)) << step << ": " << p.error();
        EXPECT_EQ(p.status(), 200);
        EXPECT_FALSE(p.chunked());
        ASSERT_EQ(r.events.size(), 3u) << step;
        EXPECT_EQ(r.events[0], (std::pair<std::string, std::string>{"message", "{\"a\":1}"}));
        EXPECT_EQ(r.events[1], (std::pair<std::string, std::string>{"slow", "x\ny"}));
        EXPECT_EQ(r.events[2], (std::pair<std::string, std::string>{"message", "z"}));
        EXPECT_EQ(p.comments(), 1u);
        EXPECT_EQ(p.events(), 3u);
    }
}

TEST(SseParser, ChunkedBodyWhateverTheSplit) {
    const std::string stream = std::string(chunked_head) + chunk("data: {\"nb") +
                               chunk("_seq\":1}\n") + chunk("\n: hb\n") + "4;ext=1\r\ndata\r\n" +
                               chunk(": 2\n\n") + "0\r\n\r\n";
    for (std::size_t step = 1; step <= stream.size(); ++step) {
        sse_parser p;
        recorded r;
        EXPECT_FALSE(feed_in_steps(p, r, stream, step));  // the last chunk ends it
        EXPECT_TRUE(p.ended()) << step << ": " << p.error();
        EXPECT_TRUE(p.chunked());
        ASSERT_EQ(r.events.size(), 2u) << step;
        EXPECT_EQ(r.events[0].second, "{\"nb_seq\":1}");
        EXPECT_EQ(r.events[1].second, "2");
    }
}

TEST(SseParser, RefusesWhatIsNotAnEventStream) {
    struct bad_case {
        std::string bytes;
        std::string error_part;
    };
    const std::vector<bad_case> cases = {
        {"HTTP/1.1 401 Unauthorized\r\nContent-Length: 2\r\n\r\n{}", "HTTP 401"},
        {"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", "text/event-stream"},
        {"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"},
        {"HTTP/1.1 abc\r\n\r\n", "bad HTTP status"},
        {std::string(chunked_head) + "zz\r\n", "bad chunk size"},
        {std::string(chunked_head) + "2\r\nabc\r\n", "chunk data longer"},
        {std::string(plain_head) + "data: " + std::string(sse_line_bytes_max, 'x'), "SSE line"},
        {"HTTP/1.1 200 OK\r\n" + std::string(sse_head_bytes_max, 'h'), "head too long"},
    };
    for (const auto& c : cases) {
        sse_parser p;
        recorded r;
        EXPECT_FALSE(p.feed(c.bytes, r));
        EXPECT_TRUE(p.failed());
        EXPECT_NE(p.error().find(c.error_part), std::string::npos) << p.error();
        EXPECT_TRUE(r.events.empty());
        EXPECT_FALSE(p.feed("data: more\n\n", r));  // stays failed
    }
}

TEST(SseParser, DataOverTheLimitAcrossLinesFails) {
    sse_parser p;
    recorded r;
    std::string stream(plain_head);
    const std::string line = "data: " + std::string(sse_line_bytes_max / 4, 'd') + "\n";
    for (int i = 0; i < 5; ++i) stream += line;
    EXPECT_FALSE(p.feed(stream, r));
    EXPECT_NE(p.error().find("event data longer"), std::string::npos) << p.error();
}

TEST(ParseHttpUrl, HostsAndPorts) {
    auto e = parse_http_url("http://127.0.0.1:8080");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "127.0.0.1");
    EXPECT_EQ(e->port, 8080);
    e = parse_http_url("http://localhost/");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "localhost");
    EXPECT_EQ(e->port, 80);
    e = parse_http_url("http://[::1]:9000/x");
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->host, "::1");
    EXPECT_EQ(e->port, 9000);
    EXPECT_FALSE(parse_http_url("https://a:1").has_value());
    EXPECT_FALSE(parse_http_url("http://:80").has_value());
    EXPECT_FALSE(parse_http_url("http://a:0").has_value());
    EXPECT_FALSE(parse_http_url("http://a:99999").has_value());
    EXPECT_FALSE(parse_http_url("http://a:8x").has_value());
}

TEST(GatewayProcess, ListeningLine) {
    EXPECT_EQ(listening_url("nagare-gateway: listening on http://127.0.0.1:34567"),
              "http://127.0.0.1:34567");
    EXPECT_EQ(listening_url("nagare-gateway: listening on http://[::1]:80 \r"), "http://[::1]:80");
    EXPECT_FALSE(listening_url("nagare-gateway: starting").has_value());
    EXPECT_FALSE(listening_url("nagare-gateway: listening on ws://x:1").has_value());
}

// A sink that keeps what it got.
struct collecting_sink final : delivery_sink {
    void on_delivered(const delivery& m) noexcept override {
        const std::lock_guard lock(mutex);
        payloads.emplace_back(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
    }
    void on_subscription_error(std::string_view text) noexcept override {
        const std::lock_guard lock(mutex);
        errors.emplace_back(text);
    }
    std::mutex mutex;
    std::vector<std::string> payloads;
    std::vector<std::string> errors;
};

template <typename Done>
bool wait_for(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

TEST(SseFanout, EveryClientGetsTheStampedEventsAndReportsTheEnd) {
    for (const bool chunked : {true, false}) {
        fakes::fake_sse_server server({200, chunked, true});
        std::vector<collecting_sink> sinks(5);
        std::vector<delivery_sink*> pointers;
        for (auto& s : sinks) pointers.push_back(&s);
        auto fan = sse_fanout::start(
            {server.url(), "/events?project=p&subjects=a.b&named=0", "tok", 2}, pointers);
        ASSERT_TRUE(fan.has_value()) << fan.error();
        ASSERT_EQ(server.requests().size(), 5u);
        for (const auto& request : server.requests()) {
            EXPECT_TRUE(request.starts_with("GET /events?project=p&subjects=a.b&named=0 HTTP/1.1"))
                << request;
            EXPECT_NE(request.find("Authorization: Bearer tok\r\n"), std::string::npos);
        }
        server.broadcast(R"({"payload":{"nb_seq":0,"nb_t_ns":1,"pad":""}})");
        server.broadcast(R"({"payload":{"nb_seq":1,"nb_t_ns":2,"pad":""}})");
        server.broadcast(R"({"resume":"1:2"})");  // not an event of the run: an error
        server.end_streams();
        for (auto& s : sinks) {
            ASSERT_TRUE(wait_for([&] {
                const std::lock_guard lock(s.mutex);
                return s.errors.size() >= 2;
            }));
            const std::lock_guard lock(s.mutex);
            ASSERT_EQ(s.payloads.size(), 2u);
            EXPECT_NE(s.payloads[1].find("\"nb_seq\":1"), std::string::npos);
            EXPECT_NE(s.errors[0].find("unexpected SSE event"), std::string::npos) << s.errors[0];
            EXPECT_NE(s.errors[1].find("ended the stream"), std::string::npos) << s.errors[1];
        }
        (*fan)->stop();
        target_counters counters;
        (*fan)->add_counters(counters);
        ASSERT_EQ(counters.size(), 4u);
        EXPECT_EQ(counters[0], (std::pair<std::string, double>{"sse_events", 20}));  // + welcomes
        EXPECT_EQ(counters[1], (std::pair<std::string, double>{"sse_heartbeats", 15}));
        EXPECT_EQ(counters[3], (std::pair<std::string, double>{"sse_clients_failed", 10}));
    }
}

TEST(SseFanout, ARefusedClientFailsTheStart) {
    fakes::fake_sse_server server({401, false, false});
    collecting_sink sink;
    delivery_sink* sinks[] = {&sink};
    auto fan = sse_fanout::start({server.url(), "/events?project=p", "", 1}, sinks);
    ASSERT_FALSE(fan.has_value());
    EXPECT_NE(fan.error().find("HTTP 401"), std::string::npos) << fan.error();
}

TEST(SseFanout, NoWelcomeFailsTheStartWithinTheWait) {
    fakes::fake_sse_server server({200, true, false});
    collecting_sink sink;
    delivery_sink* sinks[] = {&sink};
    const auto began = std::chrono::steady_clock::now();
    sse_fanout_options o{server.url(), "/events?project=p", "", 1};
    o.welcome_wait = std::chrono::milliseconds(300);
    auto fan = sse_fanout::start(o, sinks);
    ASSERT_FALSE(fan.has_value());
    EXPECT_GE(std::chrono::steady_clock::now() - began, o.welcome_wait);
    EXPECT_NE(fan.error().find("0 of 1 SSE clients"), std::string::npos) << fan.error();
}

}  // namespace
}  // namespace nagare::bench
