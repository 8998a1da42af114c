#include "broker/node.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "broker/admin_server.h"
#include "broker/shard.h"

namespace nagare::broker {

namespace fs = std::filesystem;

namespace {

std::string random_id() {
    std::random_device rd;
    char text[17];
    std::snprintf(text, sizeof text, "%08x%08x", rd(), rd());
    return text;
}

// Holds <data>/LOCK with flock: a second nagared on the same data directory
// is refused with the pid of the first.
std::expected<int, std::string> lock_data_dir(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return std::unexpected("cannot create data directory " + dir.string() + ": " + ec.message());
    const auto path = dir / "LOCK";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return std::unexpected("cannot open " + path.string() + ": " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = {};
        (void)::pread(fd, pid, sizeof pid - 1, 0);
        ::close(fd);
        return std::unexpected("data directory " + dir.string() +
                               " is held by another nagared (pid " + std::string(pid) + ")");
    }
    const auto text = std::to_string(::getpid());
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
        ::close(fd);
        return std::unexpected("cannot write " + path.string());
    }
    return fd;
}

}  // namespace

node::node(node_config config)
    : _config(std::move(config)),
      _server_id(random_id()),
      _store(_config.data_dir),
      _wake_targets(_config.shards),
      _barrier(static_cast<std::ptrdiff_t>(_config.shards)),
      _ready(static_cast<std::ptrdiff_t>(_config.shards)) {}

std::expected<std::unique_ptr<node>, std::string> node::start(node_config config) {
    std::unique_ptr<node> n(new node(std::move(config)));
    auto lock = lock_data_dir(n->_config.data_dir);
    if (!lock) return std::unexpected(lock.error());
    n->_lock_fd = *lock;
    auto streams = reconcile_streams(n->_store, n->_config);
    if (!streams) return std::unexpected(streams.error());
    n->_initial_streams = std::make_shared<const stream_table>(*std::move(streams));
    n->_mesh = std::make_unique<broker::mesh>(n->_config.shards);
    for (std::uint32_t s = 0; s < n->_config.shards; ++s) {
        n->_shards.push_back(std::make_unique<shard>(*n, shard_id{s}));
    }
    for (auto& s : n->_shards) n->_threads.emplace_back([&s] { s->run(); });
    n->_ready.wait();
    if (!n->_failure.empty()) {
        auto why = n->_failure;
        n->stop();
        return std::unexpected(why);
    }
    auto admin = admin_server::start(*n, n->_config.host, n->_config.admin_port);
    if (!admin) {
        n->stop();
        return std::unexpected(admin.error());
    }
    n->_admin = std::move(*admin);
    return n;
}

node::~node() { stop(); }

void node::stop() {
    if (_stopped) return;
    _stopped = true;
    for (auto& s : _shards) s->request_stop();
    for (auto& t : _threads) {
        if (t.joinable()) t.join();
    }
    _admin.reset();
    if (_lock_fd >= 0) {
        ::flock(_lock_fd, LOCK_UN);
        ::close(_lock_fd);
        _lock_fd = -1;
    }
}

std::uint16_t node::admin_port() const noexcept { return _admin ? _admin->port() : 0; }

void node::publish_wake_target(shard_id id, io::wake_target* target) noexcept {
    _wake_targets[id.value].store(target, std::memory_order_release);
}

io::wake_target* node::wake_target_of(shard_id id) const noexcept {
    return _wake_targets[id.value].load(std::memory_order_acquire);
}

void node::report_failure(std::string error) {
    std::lock_guard lock(_failure_mutex);
    if (_failure.empty()) _failure = std::move(error);
}

}  // namespace nagare::broker
