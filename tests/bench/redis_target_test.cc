// The redis target against a real redis-server (bench/redis_process.h):
// pipelined XADD, a consumer group with XACK, the appendfsync setting.
// Skipped only when /usr/bin/redis-server is missing (scripts/setup.sh installs it).
#include "bench/redis_target.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/redis_process.h"

namespace nagare::bench {
namespace {

constexpr auto redis_binary = "/usr/bin/redis-server";
constexpr std::size_t message_count = 1000;

std::unique_ptr<redis_process> start_server(durability mode) {
    redis_process_options o;
    o.mode = mode;
    auto started = redis_process::start(o);
    if (!started) ADD_FAILURE() << started.error();
    return started ? std::move(*started) : nullptr;
}

struct reply_free {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_free>;

// A blocking hiredis context on the started server, for checks.
struct checker {
    explicit checker(const redis_process& server) : ctx(redisConnect("127.0.0.1", server.port())) {}
    ~checker() { redisFree(ctx); }
    reply_ptr command(const char* text) {
        return reply_ptr(static_cast<redisReply*>(redisCommand(ctx, text)));
    }
    redisContext* ctx;
};

class recording_publish_sink final : public publish_sink {
public:
    void on_published(std::uint64_t token, publish_outcome outcome,
                      std::string_view error_text) noexcept override {
        std::lock_guard lock(mutex);
        tokens.push_back(token);
        if (outcome != publish_outcome::stored) errors.emplace_back(error_text);
    }
    std::mutex mutex;
    std::vector<std::uint64_t> tokens;
    std::vector<std::string> errors;
};

class recording_delivery_sink final : public delivery_sink {
public:
    void on_delivered(const delivery& m) noexcept override {
        std::lock_guard lock(mutex);
        msg_ids.emplace_back(m.msg_id);
        if (m.payload.size() != 128) bad_payloads += 1;
        count.fetch_add(1);
    }
    void on_subscription_error(std::string_view text) noexcept override {
        std::lock_guard lock(mutex);
        errors.emplace_back(text);
    }
    std::mutex mutex;
    std::vector<std::string> msg_ids;
    std::vector<std::string> errors;
    std::size_t bad_payloads = 0;
    std::atomic<std::size_t> count{0};
};

// Publishes message_count messages `m-<i>` over one connection and waits.
void publish_all(target& t, const stream_handle& stream, recording_publish_sink& sink) {
    connection_options co;
    co.inflight_messages = 256;
    auto c = t.connect(co, sink);
    ASSERT_TRUE(c) << c.error();
    const std::vector<std::byte> payload(128, std::byte{'x'});
    const auto subject = stream.subject("event");
    for (std::size_t i = 0; i < message_count; ++i) {
        const auto project = "project-" + std::to_string(i % 10);
        const auto msg_id = "m-" + std::to_string(i);
        auto ok = (*c)->publish({project, subject, msg_id, payload}, i);
        ASSERT_TRUE(ok) << ok.error();
    }
    ASSERT_TRUE((*c)->flush(std::chrono::seconds(10)));
    target_counters counters;
    (*c)->add_counters(counters);
    for (const auto& [name, value] : counters) {
        if (name == "xadd_ids_not_increasing") {
            EXPECT_EQ(value, 0.0);
        }
        if (name == "xadd_sent") {
            EXPECT_EQ(value, static_cast<double>(message_count));
        }
    }
    (*c)->close();
}

class RedisTarget : public ::testing::Test {
protected:
    void SetUp() override {
        if (!std::filesystem::exists(redis_binary)) GTEST_SKIP() << "no " << redis_binary;
    }
};

TEST_F(RedisTarget, PipelinedXaddResolvesEveryPublishInOrderWithIncreasingIds) {
    auto server = start_server(durability::fsync);
    ASSERT_NE(server, nullptr);
    auto t = make_redis_target({server->url()});
    auto stream = t->prepare_stream(durability::fsync);
    ASSERT_TRUE(stream) << stream.error();
    EXPECT_EQ(stream->stream, "bench_fsync");
    recording_publish_sink sink;
    publish_all(*t, *stream, sink);
    ASSERT_EQ(sink.tokens.size(), message_count);
    EXPECT_TRUE(sink.errors.empty()) << sink.errors.front();
    for (std::size_t i = 0; i < message_count; ++i) ASSERT_EQ(sink.tokens[i], i);

    checker check(*server);
    auto range = check.command("XRANGE bench_fsync - +");
    ASSERT_NE(range, nullptr);
    ASSERT_EQ(range->type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(range->elements, message_count);
    std::pair<unsigned long long, unsigned long long> previous{0, 0};
    for (std::size_t i = 0; i < message_count; ++i) {
        const auto* entry = range->element[i];
        unsigned long long ms = 0, seq = 0;
        ASSERT_EQ(std::sscanf(entry->element[0]->str, "%llu-%llu", &ms, &seq), 2);
        EXPECT_GT(std::make_pair(ms, seq), previous);
        previous = {ms, seq};
        const auto* fields = entry->element[1];
        ASSERT_EQ(fields->elements, 8u);
        EXPECT_STREQ(fields->element[4]->str, "id");
        EXPECT_EQ(std::string(fields->element[5]->str), "m-" + std::to_string(i));
    }
}

TEST_F(RedisTarget, GroupSubscriberReceivesEveryMessageOnceAndAcksThem) {
    auto server = start_server(durability::interval);
    ASSERT_NE(server, nullptr);
    auto t = make_redis_target({server->url()});
    auto stream = t->prepare_stream(durability::interval);
    ASSERT_TRUE(stream) << stream.error();
    recording_publish_sink published;
    publish_all(*t, *stream, published);
    ASSERT_TRUE(published.errors.empty());

    recording_delivery_sink sink;
    subscribe_request request;
    request.stream = stream->stream;
    request.subject = stream->subject("event");
    request.consumer = "bench-group";
    request.start = start_position::first;
    request.inflight_messages = 100;
    auto sub = t->subscribe(request, sink);
    ASSERT_TRUE(sub) << sub.error();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sink.count.load() < message_count && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_TRUE((*sub)->drain(std::chrono::seconds(5)));
    target_counters counters;
    (*sub)->add_counters(counters);
    (*sub)->close();
    EXPECT_TRUE(sink.errors.empty()) << sink.errors.front();
    ASSERT_EQ(sink.msg_ids.size(), message_count);
    EXPECT_EQ(sink.bad_payloads, 0u);
    EXPECT_EQ(std::set<std::string>(sink.msg_ids.begin(), sink.msg_ids.end()).size(),
              message_count);
    for (const auto& [name, value] : counters) {
        if (name == "acks_sent") {
            EXPECT_EQ(value, static_cast<double>(message_count));
        }
    }

    checker check(*server);
    auto pending = check.command("XPENDING bench_interval bench-group");
    ASSERT_NE(pending, nullptr);
    ASSERT_EQ(pending->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(pending->element[0]->integer, 0);
    EXPECT_TRUE(t->remove_consumer(stream->stream, request.consumer));
}

TEST_F(RedisTarget, StartedServerHasTheAppendfsyncOfItsDurability) {
    for (const auto mode : {durability::fsync, durability::interval, durability::none}) {
        auto server = start_server(mode);
        ASSERT_NE(server, nullptr);
        checker check(*server);
        auto fsync = check.command("CONFIG GET appendfsync");
        ASSERT_NE(fsync, nullptr);
        ASSERT_EQ(fsync->elements, 2u);
        EXPECT_EQ(std::string(fsync->element[1]->str), redis_appendfsync(mode));
        auto aof = check.command("CONFIG GET appendonly");
        EXPECT_EQ(std::string(aof->element[1]->str), "yes");
        auto t = make_redis_target({server->url()});
        EXPECT_TRUE(t->prepare_stream(mode));
        const auto other = mode == durability::fsync ? durability::none : durability::fsync;
        EXPECT_FALSE(t->prepare_stream(other));
        EXPECT_TRUE(server->stop().has_value());
    }
    EXPECT_EQ(redis_durability_setting(durability::fsync), "appendfsync always");
}

TEST_F(RedisTarget, NagareBenchPublishesToAStartedRedisServer) {
    const auto json = std::filesystem::temp_directory_path() /
                      ("nagare-bench-redis-" + std::to_string(::getpid()) + ".json");
    const std::string command = std::string(NAGARE_BENCH_PATH) +
                                " publish --target redis --start-broker --durability fsync"
                                " --messages 20000 --producers 2 --json " +
                                json.string() + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string text;
    char chunk[4096];
    while (const auto n = std::fread(chunk, 1, sizeof chunk, pipe)) text.append(chunk, n);
    const int status = ::pclose(pipe);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text;
    boost::property_tree::ptree r;
    boost::property_tree::read_json(json.string(), r);
    std::filesystem::remove(json);
    EXPECT_EQ(r.get<std::string>("target"), "redis");
    EXPECT_EQ(r.get<std::string>("parameters.redis"), "appendfsync always");
    EXPECT_EQ(r.get<std::uint64_t>("messages_total"), 20'000u);
}

}  // namespace
}  // namespace nagare::bench
