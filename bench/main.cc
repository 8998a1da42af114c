// nagare-bench: the benchmark harness of nagare (bench/README.md).
// Scenarios are subcommands; the target is chosen with --target. Exit
// status: 0 a clean run, 1 a run with errors, 2 unusable options or setup.
// Exceptions end here as one line on stderr.
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/broker_process.h"
#include "bench/nagare_target.h"
#include "bench/publish_scenario.h"
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

void add_common(CLI::App& cmd, common_options& c) {
    cmd.add_option("--target", c.target, "what to benchmark: nagare")
        ->check(CLI::IsMember({"nagare"}));
    auto* url = cmd.add_option("--url", c.url, "broker url (default nagare://127.0.0.1:4150)");
    cmd.add_option("--token", c.token, "auth token");
    auto* start =
        cmd.add_flag("--start-broker", c.start_broker,
                     "start nagared on free loopback ports with a temp data dir, stop it after");
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

std::optional<int> parse_durations(const std::string& duration, const std::string& mode,
                                   publish_scenario_options& o) {
    if (!duration.empty()) {
        auto ms = nagare::protocol::parse_duration_ms(duration);
        if (!ms || *ms == 0) {
            std::cerr << "nagare-bench: --duration: " << (ms ? "must be > 0" : ms.error()) << "\n";
            return exit_unusable;
        }
        o.duration_ms = *ms;
    }
    auto d = parse_durability(mode);
    if (!d) {
        std::cerr << "nagare-bench: --durability: " << d.error() << "\n";
        return exit_unusable;
    }
    o.mode = *d;
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

int publish_command(const common_options& c, const publish_scenario_options& o) {
    if (auto ok = validate(o); !ok) {
        std::cerr << "nagare-bench: " << ok.error() << "\n";
        return exit_unusable;
    }
    std::unique_ptr<broker_process> broker;
    std::string url = c.url;
    server_probe probe;
    if (c.start_broker) {
        auto started = start_broker(c);
        if (!started) {
            std::cerr << "nagare-bench: " << started.error() << "\n";
            return exit_unusable;
        }
        broker = std::move(*started);
        url = broker->url();
        probe.cpu_s = [&] { return broker->cpu_s(); };
        probe.peak_rss_kib = [&] { return broker->peak_rss_kib(); };
        probe.counters = [&] { return broker->counters(); };
        std::cerr << "nagare-bench: nagared pid " << broker->pid() << " on " << url << ", "
                  << broker->shards() << " shards, data in " << broker->data_dir().string() << "\n";
    }
    auto target = make_nagare_target({url, c.token});
    auto result = run_publish(*target, o, broker ? &probe : nullptr);
    int status = exit_ok;
    if (broker) {
        const auto stopped = broker->stop();
        if (!stopped || *stopped != 0) {
            std::cerr << "nagare-bench: nagared "
                      << (stopped ? "exited with " + std::to_string(*stopped) : stopped.error())
                      << "\n";
            status = exit_errors;
        }
    }
    if (!result) {
        std::cerr << "nagare-bench: " << result.error() << "\n";
        return exit_unusable;
    }
    result->parameters.insert(result->parameters.begin(), parameter{"url", url});
    if (broker)
        result->parameters.push_back(parameter{"started_shards", std::uint64_t{broker->shards()}});
    if (!write_outputs(*result, c.json_path)) status = exit_unusable;
    return result->errors == 0 ? status : exit_errors;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        CLI::App app{"nagare-bench: benchmark harness of the nagare message broker"};
        app.require_subcommand(1);
        common_options common;
        publish_scenario_options publish;
        std::string duration, mode = "fsync";
        auto* pub = app.add_subcommand(
            "publish",
            "producers x projects x message size x durability: msgs/s, MB/s, ack latency");
        add_common(*pub, common);
        pub->add_option("--producers", publish.producers,
                        "producer threads, one connection each (default 4)");
        pub->add_option("--projects", publish.projects, "projects, round-robin (default 1000)");
        pub->add_option("--message-bytes", publish.message_bytes, "payload bytes (default 128)");
        auto* messages =
            pub->add_option("--messages", publish.messages, "messages in all (default 1000000)");
        pub->add_option("--duration", duration,
                        "measure for this long instead, e.g. 10s (after 0.5 s warm-up)")
            ->excludes(messages);
        pub->add_option("--inflight", publish.inflight,
                        "in-flight window per producer (default 4096)");
        pub->add_option("--batch", publish.batch,
                        "messages per Publish frame at most (default 256)");
        pub->add_option("--durability", mode, "fsync | interval | none (default fsync)");
        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            // Help prints and exits 0; any other parse error is unusable options.
            return app.exit(e) == 0 ? exit_ok : exit_unusable;
        }
        if (pub->parsed()) {
            if (auto failed = parse_durations(duration, mode, publish)) return *failed;
            return publish_command(common, publish);
        }
        return exit_unusable;
    } catch (const std::exception& e) {
        std::cerr << "nagare-bench: " << e.what() << "\n";
        return exit_unusable;
    }
}
