// nagare-bench: the benchmark harness of nagare (bench/README.md).
// Scenarios are subcommands; the target is chosen with --target. Exit
// status: 0 a clean run, 1 a run with errors, 2 unusable options or setup.
// Exceptions end here as one line on stderr.
#include <cstdio>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/broker_process.h"
#include "bench/consume_scenario.h"
#include "bench/e2e_scenario.h"
#include "bench/fanout_scenario.h"
#include "bench/gateway_process.h"
#include "bench/nagare_target.h"
#include "bench/nats_process.h"
#include "bench/nats_target.h"
#include "bench/publish_scenario.h"
#include "bench/redis_process.h"
#include "bench/redis_target.h"
#include "bench/report.h"
#include "protocol/units.h"

namespace {

using namespace nagare::bench;

constexpr int exit_ok = 0;
constexpr int exit_errors = 1;
constexpr int exit_unusable = 2;

struct common_options {
    std::string target = "nagare";
    std::string url = "nagare://127.0.0.1:4150";
    std::string token;
    bool start_broker = false;
    std::string nagared;
    std::string data_dir;
    std::uint32_t shards = 0;
    std::string json_path;
};

// Options given as text and parsed after CLI11: --duration, --durability,
// --ack, --idle-timeout.
struct text_options {
    std::string duration;
    std::string durability = "fsync";
    std::string ack = "explicit";
    std::string idle;
};

void add_common(CLI::App& cmd, common_options& c) {
    cmd.add_option("--target", c.target,
                   "what to benchmark: nagare | nats (NATS JetStream) | redis (Redis Streams)")
        ->check(CLI::IsMember({"nagare", "nats", "redis"}));
    auto* url = cmd.add_option(
        "--url", c.url,
        "broker url (default nagare://127.0.0.1:4150; nats: nats://127.0.0.1:4222; redis: "
        "redis://127.0.0.1:6379)");
    cmd.add_option("--token", c.token, "auth token");
    auto* start =
        cmd.add_flag("--start-broker", c.start_broker,
                     "start nagared (nats: nats-server -js) on free loopback ports with a temp "
                     "data dir, stop it after");
    start->excludes(url);
    cmd.add_option("--nagared", c.nagared,
                   "nagared binary (default: next to nagare-bench in the build tree)")
        ->needs(start);
    cmd.add_option("--data", c.data_dir,
                   "parent of the started broker's data dir (default $TMPDIR)")
        ->needs(start);
    cmd.add_option("--shards", c.shards, "shards of the started broker (default: cores)")
        ->needs(start);
    cmd.add_option("--json", c.json_path, "also write the result as JSON to FILE ('-': stdout)");
}

// The producers' options every scenario that publishes has.
void add_load(CLI::App& cmd, publish_scenario_options& o, text_options& t) {
    cmd.add_option(
        "--producers", o.producers,
        "producer threads, one connection each (default " + std::to_string(o.producers) + ")");
    cmd.add_option("--projects", o.projects, "projects, round-robin (default 1000)");
    cmd.add_option("--message-bytes", o.message_bytes, "payload bytes (default 128)");
    cmd.add_option("--inflight", o.inflight, "in-flight window per producer (default 4096)");
    cmd.add_option("--batch", o.batch, "messages per Publish frame at most (default 256)");
    cmd.add_option("--durability", t.durability, "fsync | interval | none (default fsync)");
}

void add_subscribers(CLI::App& cmd, subscriber_options& o, text_options& t) {
    cmd.add_option("--consumers", o.consumers, "subscribers, one connection each (default 1)");
    cmd.add_flag("--durable", o.durable,
                 "subscribers share one durable consumer (removed after), else one ephemeral each");
    cmd.add_option("--ack", t.ack, "explicit | none (default explicit)");
    cmd.add_option("--max-inflight", o.max_inflight,
                   "unacknowledged messages per subscriber (nagare: per partition; default 1024)");
    cmd.add_option("--idle-timeout", t.idle,
                   "end with an error when no message arrived for this long (default 10s)");
}

std::optional<int> unusable(const std::string& what) {
    std::cerr << "nagare-bench: " << what << "\n";
    return exit_unusable;
}

// A duration such as "10s" into milliseconds (> 0); unset when `text` is empty.
std::optional<int> parse_ms(const std::string& text, const std::string& option,
                            std::uint64_t& into_ms) {
    if (text.empty()) return std::nullopt;
    auto ms = nagare::protocol::parse_duration_ms(text);
    if (!ms || *ms == 0) return unusable(option + ": " + (ms ? "must be > 0" : ms.error()));
    into_ms = *ms;
    return std::nullopt;
}

std::optional<int> parse_load(const text_options& t, publish_scenario_options& o) {
    if (auto failed = parse_ms(t.duration, "--duration", o.duration_ms)) return failed;
    auto d = parse_durability(t.durability);
    if (!d) return unusable("--durability: " + d.error());
    o.mode = *d;
    return std::nullopt;
}

std::optional<int> parse_subscribers(const text_options& t, subscriber_options& o) {
    auto a = parse_ack_mode(t.ack);
    if (!a) return unusable("--ack: " + a.error());
    o.ack = *a;
    auto idle_ms = static_cast<std::uint64_t>(o.idle_max.count());
    if (auto failed = parse_ms(t.idle, "--idle-timeout", idle_ms)) return failed;
    o.idle_max = std::chrono::milliseconds(idle_ms);
    return std::nullopt;
}

std::expected<std::unique_ptr<broker_process>, std::string> start_broker(const common_options& c) {
    broker_process_options bo;
    if (!c.nagared.empty()) {
        bo.nagared = c.nagared;
    } else if (auto found = find_nagared_near_self()) {
        bo.nagared = *found;
    } else {
        return std::unexpected("cannot find nagared next to nagare-bench; use --nagared PATH");
    }
    bo.data_parent = c.data_dir;
    bo.shards = c.shards;
    return broker_process::start(bo);
}

bool write_outputs(const run_result& r, const std::string& json_path) {
    const bool json_to_stdout = json_path == "-";
    print_table(json_to_stdout ? std::cerr : std::cout, std::span(&r, 1));
    if (json_path.empty()) return true;
    if (json_to_stdout) {
        write_json(std::cout, r);
        return true;
    }
    std::ofstream out(json_path);
    write_json(out, r);
    out.close();
    if (!out) std::cerr << "nagare-bench: cannot write " << json_path << "\n";
    return static_cast<bool>(out);
}

using scenario =
    std::function<std::expected<run_result, std::string>(target&, const server_probe*)>;

// What runs around a scenario besides the broker (fanout --start-gateway):
// before it, with the target and the broker's url (an error text makes the
// options unusable); after it, before the broker stops (an error text makes
// the run one with errors).
struct run_hooks {
    std::function<std::optional<std::string>(target&, const std::string& url)> before;
    std::function<std::optional<std::string>()> after;
};

// Starts the broker when asked, runs the scenario against the target, stops
// the broker, prints the result; the exit status.
// --target nats: nats-server -js (file storage) on a free loopback port
// when asked, else --url (default nats://127.0.0.1:4222).
struct nats_setup {
    std::unique_ptr<nats_process> server;
    std::string url;
};

std::expected<nats_setup, std::string> setup_nats(const common_options& c, server_probe& probe) {
    nats_setup setup;
    setup.url = c.url.starts_with("nagare://") ? "nats://127.0.0.1:4222" : c.url;
    if (!c.start_broker) return setup;
    nats_process_options no;
    no.data_parent = c.data_dir;
    auto started = nats_process::start(no);
    if (!started) return std::unexpected(started.error());
    setup.server = std::move(*started);
    setup.url = setup.server->url();
    auto* server = setup.server.get();
    probe.cpu_s = [server] { return server->cpu_s(); };
    probe.peak_rss_kib = [server] { return server->peak_rss_kib(); };
    std::cerr << "nagare-bench: nats-server pid " << server->pid() << " on " << setup.url
              << ", storage in " << server->data_dir().string() << "\n";
    return setup;
}

int run_command(const common_options& c, const scenario& run, const run_hooks& hooks = {},
                durability mode = durability::fsync) {
    std::unique_ptr<broker_process> broker;
    std::unique_ptr<nats_process> nats;
    std::string url = c.url;
    server_probe probe;
    const bool is_nats = c.target == "nats";
    // --target redis: redis-server instead of nagared (bench/redis_target.h).
    std::unique_ptr<redis_process> redis;
    const bool is_redis = c.target == "redis";
    if (is_nats) {
        auto setup = setup_nats(c, probe);
        if (!setup) return *unusable(setup.error());
        nats = std::move(setup->server);
        url = setup->url;
    } else if (is_redis) {
        if (url.starts_with("nagare://")) url = "redis://127.0.0.1:6379";
        if (c.start_broker) {
            auto started = redis_process::start({.data_parent = c.data_dir, .mode = mode});
            if (!started) return *unusable(started.error());
            redis = std::move(*started);
            url = redis->url();
            probe.cpu_s = [&] { return redis->cpu_s(); };
            probe.peak_rss_kib = [&] { return redis->peak_rss_kib(); };
            std::cerr << "nagare-bench: redis-server pid " << redis->pid() << " on " << url << ", "
                      << redis_durability_setting(mode) << ", data in "
                      << redis->data_dir().string() << "\n";
        }
    } else if (c.start_broker) {
        auto started = start_broker(c);
        if (!started) return *unusable(started.error());
        broker = std::move(*started);
        url = broker->url();
        probe.cpu_s = [&] { return broker->cpu_s(); };
        probe.peak_rss_kib = [&] { return broker->peak_rss_kib(); };
        probe.counters = [&] { return broker->counters(); };
        std::cerr << "nagare-bench: nagared pid " << broker->pid() << " on " << url << ", "
                  << broker->shards() << " shards, data in " << broker->data_dir().string() << "\n";
    }
    std::unique_ptr<target> target = is_nats    ? make_nats_target({url})
                                     : is_redis ? make_redis_target({url})
                                                : make_nagare_target({url, c.token});
    if (hooks.before) {
        if (auto failed = hooks.before(*target, url)) return *unusable(*failed);
    }
    const bool started = broker || nats || redis;
    auto result = run(*target, started ? &probe : nullptr);
    int status = exit_ok;
    if (hooks.after) {
        if (auto failed = hooks.after()) {
            std::cerr << "nagare-bench: " << *failed << "\n";
            status = exit_errors;
        }
    }
    if (broker) {
        const auto stopped = broker->stop();
        if (!stopped || *stopped != 0) {
            std::cerr << "nagare-bench: nagared "
                      << (stopped ? "exited with " + std::to_string(*stopped) : stopped.error())
                      << "\n";
            status = exit_errors;
        }
    }
    if (nats) {
        const auto stopped = nats->stop();
        if (!stopped || *stopped != 0) {
            std::cerr << "nagare-bench: nats-server "
                      << (stopped ? "exited with " + std::to_string(*stopped) : stopped.error())
                      << "\n";
            status = exit_errors;
        }
    }
    if (redis) {
        const auto stopped = redis->stop();
        if (!stopped || *stopped != 0) {
            std::cerr << "nagare-bench: redis-server "
                      << (stopped ? "exited with " + std::to_string(*stopped) : stopped.error())
                      << "\n";
            status = exit_errors;
        }
    }
    if (!result) return *unusable(result.error());
    if (is_redis) result->parameters.push_back(parameter{"redis", redis_durability_setting(mode)});
    result->parameters.insert(result->parameters.begin(), parameter{"url", url});
    if (broker)
        result->parameters.push_back(parameter{"started_shards", std::uint64_t{broker->shards()}});
    if (is_nats) {
        result->parameters.push_back(
            parameter{"nats_durability", std::string(nats_durability_description)});
    }
    if (!write_outputs(*result, c.json_path)) status = exit_unusable;
    return result->errors == 0 ? status : exit_errors;
}

// The durability a scenario asks for (a started redis-server is set by it).
durability scenario_mode(const publish_scenario_options& o) { return o.mode; }
durability scenario_mode(const consume_scenario_options& o) { return o.fill.mode; }
durability scenario_mode(const e2e_scenario_options& o) { return o.load.mode; }
durability scenario_mode(const fanout_scenario_options& o) { return o.load.mode; }

// Checks the options, then runs.
template <typename Options, typename Run>
int checked_run(const common_options& c, const Options& o, Run run_scenario,
                const run_hooks& hooks = {}) {
    if (auto ok = validate(o); !ok) return *unusable(ok.error());
    return run_command(
        c, [&](target& t, const server_probe* probe) { return run_scenario(t, o, probe); }, hooks,
        scenario_mode(o));
}

// fanout's own options beside the scenario's.
struct fanout_text {
    std::string duration = "10s";
    std::string durability = "none";
    std::string idle;
    bool start_gateway = false;
    std::string gateway_binary;
};

void add_fanout(CLI::App& cmd, fanout_scenario_options& o, fanout_text& t) {
    cmd.add_option("--rate", o.rate, "messages per second published (default 1000)");
    cmd.add_option("--duration", t.duration, "measured time after a 0.5 s warm-up (default 10s)");
    cmd.add_option("--subscribers", o.subscribers, "subscribers of every message (default 100)");
    cmd.add_option("--connections", o.connections,
                   "connections the subscribers share (gateway: SSE client threads; default 4)");
    cmd.add_option("--producers", o.load.producers, "publishing threads (default 1)");
    cmd.add_option("--message-bytes", o.load.message_bytes, "payload bytes (default 128, >= 72)");
    cmd.add_option("--inflight", o.load.inflight, "in-flight window per producer (default 4096)");
    cmd.add_option("--batch", o.load.batch, "messages per Publish frame at most (default 256)");
    cmd.add_option("--durability", t.durability, "fsync | interval | none (default none)");
    cmd.add_option("--idle-timeout", t.idle,
                   "end with an error when no message arrived for this long (default 10s)");
    auto* via = cmd.add_option("--via-gateway", o.gateway_url,
                               "subscribe as SSE clients of the nagare-gateway at this http:// URL "
                               "(it must serve the stream bench_<durability>)");
    auto* start = cmd.add_flag("--start-gateway", t.start_gateway,
                               "start nagare-gateway (--no-auth, a free loopback port) in front "
                               "of the broker and subscribe through it; stop it after");
    start->excludes(via);
    cmd.add_option("--nagare-gateway", t.gateway_binary,
                   "nagare-gateway binary (default: in the build tree next to nagare-bench)")
        ->needs(start);
    cmd.add_option("--gateway-token", o.gateway_token, "token for the gateway (Bearer)");
}

std::optional<int> parse_fanout(const fanout_text& t, fanout_scenario_options& o) {
    if (auto failed = parse_ms(t.duration, "--duration", o.load.duration_ms)) return failed;
    auto d = parse_durability(t.durability);
    if (!d) return unusable("--durability: " + d.error());
    o.load.mode = *d;
    auto idle_ms = static_cast<std::uint64_t>(o.idle_max.count());
    if (auto failed = parse_ms(t.idle, "--idle-timeout", idle_ms)) return failed;
    o.idle_max = std::chrono::milliseconds(idle_ms);
    return std::nullopt;
}

// --start-gateway: after the broker, a nagare-gateway serving the fanout's
// stream (created first); stopped after the run, before the broker.
run_hooks gateway_hooks(const fanout_text& t, fanout_scenario_options& o,
                        std::unique_ptr<gateway_process>& gateway) {
    if (!t.start_gateway) return {};
    run_hooks hooks;
    hooks.before = [&t, &o, &gateway](target& into,
                                      const std::string& url) -> std::optional<std::string> {
        gateway_process_options go;
        if (!t.gateway_binary.empty()) {
            go.binary = t.gateway_binary;
        } else if (auto found = find_gateway_near_self()) {
            go.binary = *found;
        } else {
            return "cannot find nagare-gateway in the build tree; use --nagare-gateway PATH";
        }
        auto stream = into.prepare_stream(o.load.mode);
        if (!stream) return stream.error();
        go.broker_url = url;
        go.stream = stream->stream;
        auto started = gateway_process::start(go);
        if (!started) return started.error();
        gateway = std::move(*started);
        std::cerr << "nagare-bench: nagare-gateway pid " << gateway->pid() << " on "
                  << gateway->url() << ", stream " << go.stream << "\n";
        o.gateway_url = gateway->url();
        o.gateway_cpu_s = [&gateway] { return gateway->cpu_s(); };
        o.gateway_peak_rss_kib = [&gateway] { return gateway->peak_rss_kib(); };
        return std::nullopt;
    };
    hooks.after = [&gateway]() -> std::optional<std::string> {
        if (!gateway) return std::nullopt;
        const auto stopped = gateway->stop();
        if (stopped && *stopped == 0) return std::nullopt;
        return "nagare-gateway " +
               (stopped ? "exited with " + std::to_string(*stopped) : stopped.error());
    };
    return hooks;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CLI::App app{"nagare-bench: benchmark harness of the nagare message broker"};
        app.require_subcommand(1);
        common_options common;
        // One per subcommand: their defaults differ (e2e's --duration).
        text_options pub_text, con_text, e2e_text;
        publish_scenario_options publish;
        auto* pub = app.add_subcommand(
            "publish",
            "producers x projects x message size x durability: msgs/s, MB/s, ack latency");
        add_common(*pub, common);
        add_load(*pub, publish, pub_text);
        auto* messages =
            pub->add_option("--messages", publish.messages, "messages in all (default 1000000)");
        pub->add_option("--duration", pub_text.duration,
                        "measure for this long instead, e.g. 10s (after 0.5 s warm-up)")
            ->excludes(messages);

        consume_scenario_options consume;
        auto* con = app.add_subcommand(
            "consume",
            "fill a stream with N messages, then subscribers read and ack them: consume msgs/s "
            "beside the publish msgs/s of the same run");
        add_common(*con, common);
        add_load(*con, consume.fill, con_text);
        con->add_option("--messages", consume.fill.messages,
                        "messages to fill and consume (default 1000000)");
        add_subscribers(*con, consume.subscribers, con_text);

        e2e_scenario_options e2e;
        e2e.load.producers = 1;
        auto* end_to_end = app.add_subcommand(
            "e2e",
            "open-loop publishing at --rate with a live subscriber: publish-to-deliver latency "
            "(coordinated-omission corrected)");
        add_common(*end_to_end, common);
        add_load(*end_to_end, e2e.load, e2e_text);
        end_to_end->add_option("--rate", e2e.rate, "messages per second in all (default 10000)");
        e2e_text.duration = "10s";
        end_to_end->add_option("--duration", e2e_text.duration,
                               "measured time after a 0.5 s warm-up (default 10s)");
        add_subscribers(*end_to_end, e2e.subscribers, e2e_text);
        fanout_scenario_options fanout;
        fanout_text fanout_texts;
        auto* fan = app.add_subcommand(
            "fanout",
            "one publisher, many live subscribers (or SSE clients of nagare-gateway): delivered "
            "events/s summed over the subscribers, publish-to-receive latency");
        add_common(*fan, common);
        add_fanout(*fan, fanout, fanout_texts);
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            // Help prints and exits 0; any other parse error is unusable options.
            return app.exit(e) == 0 ? exit_ok : exit_unusable;
        }
        if (pub->parsed()) {
            if (auto failed = parse_load(pub_text, publish)) return *failed;
            return checked_run(common, publish, run_publish);
        }
        if (con->parsed()) {
            if (auto failed = parse_load(con_text, consume.fill)) return *failed;
            if (auto failed = parse_subscribers(con_text, consume.subscribers)) return *failed;
            return checked_run(common, consume, run_consume);
        }
        if (end_to_end->parsed()) {
            if (auto failed = parse_load(e2e_text, e2e.load)) return *failed;
            if (auto failed = parse_subscribers(e2e_text, e2e.subscribers)) return *failed;
            return checked_run(common, e2e, run_e2e);
        }
        if (fan->parsed()) {
            if (auto failed = parse_fanout(fanout_texts, fanout)) return *failed;
            std::unique_ptr<gateway_process> gateway;
            const auto hooks = gateway_hooks(fanout_texts, fanout, gateway);
            return checked_run(common, fanout, run_fanout, hooks);
        }
        return exit_unusable;
    } catch (const std::exception& e) {
        std::cerr << "nagare-bench: " << e.what() << "\n";
        return exit_unusable;
    }
}
