// nagared: the broker node. Flags and config file: broker/config.h.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "broker/config.h"
#include "broker/node.h"

int main(int argc, char** argv) {
    using namespace nagare::broker;
    auto config = parse_node_config(argc, argv);
    if (!config) {
        std::fprintf(config.error().help_requested ? stdout : stderr, "%s\n",
                     config.error().message.c_str());
        return config.error().help_requested ? 0 : 2;
    }
    spdlog::set_level(spdlog::level::from_str(config->log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
    // Signals go to the main thread only: block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    auto n = node::start(*config);
    if (!n) {
        std::fprintf(stderr, "nagared: %s\n", n.error().c_str());
        return 1;
    }
    spdlog::info("event=listening host={} port={} shard_ports={}..{} admin_port={} shards={} data={}",
                 config->host, config->port, config->port + 1, config->port + config->shards,
                 (*n)->admin_port(), config->shards, config->data_dir.string());
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("event=stopping signal={}", received == SIGTERM ? "SIGTERM" : "SIGINT");
    (*n)->stop();
    spdlog::info("event=stopped");
    return 0;
}
