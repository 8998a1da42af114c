// The node: one nagared process. Holds the data-directory lock, reconciles
// the streams, starts one shard thread per core, serves /metrics and
// /healthz on the admin port from a thread of its own, and stops everything
// on SIGTERM/SIGINT (stop accepting, finish in-flight appends, fsync, exit).
//
// Start-up and shutdown are on the main thread; shards meet at a barrier
// twice at start (wake targets exist; everybody is listening).
#pragma once

#include <atomic>
#include <barrier>
#include <latch>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker/config.h"
#include "broker/io/waker.h"
#include "broker/mesh.h"
#include "broker/streams.h"

namespace nagare::broker {

class shard;
class admin_server;

class node {
public:
    // Everything up and listening, or one line saying why not.
    [[nodiscard]] static std::expected<std::unique_ptr<node>, std::string> start(node_config config);
    ~node();

    // Requests every shard to stop, joins them. Idempotent.
    void stop();

    [[nodiscard]] const node_config& config() const noexcept { return _config; }
    [[nodiscard]] broker::mesh& mesh() noexcept { return *_mesh; }
    [[nodiscard]] const stream_store& store() const noexcept { return _store; }
    [[nodiscard]] stream_table_ptr initial_streams() const noexcept { return _initial_streams; }
    [[nodiscard]] std::uint32_t shard_count() const noexcept { return _config.shards; }
    [[nodiscard]] const std::string& server_id() const noexcept { return _server_id; }
    [[nodiscard]] std::span<const std::unique_ptr<shard>> shards() const noexcept { return _shards; }
    [[nodiscard]] std::uint16_t admin_port() const noexcept;

    // Start-up rendezvous of the shard threads.
    void publish_wake_target(shard_id id, io::wake_target* target) noexcept;
    [[nodiscard]] io::wake_target* wake_target_of(shard_id id) const noexcept;
    void arrive_and_wait() { _barrier.arrive_and_wait(); }
    void arrive_and_drop() { _barrier.arrive_and_drop(); }
    // Counted down once per shard: listening, or failed.
    void shard_ready() noexcept { _ready.count_down(); }
    // A shard failed to start; `start` reports the first such error.
    void report_failure(std::string error);

private:
    explicit node(node_config config);

    node_config _config;
    std::string _server_id;
    int _lock_fd = -1;
    stream_store _store;
    stream_table_ptr _initial_streams;
    std::unique_ptr<broker::mesh> _mesh;
    std::vector<std::atomic<io::wake_target*>> _wake_targets;
    std::barrier<> _barrier;
    std::latch _ready;
    std::vector<std::unique_ptr<shard>> _shards;
    std::vector<std::thread> _threads;
    std::unique_ptr<admin_server> _admin;
    std::mutex _failure_mutex;  // start-up only
    std::string _failure;
    bool _stopped = false;
};

}  // namespace nagare::broker
