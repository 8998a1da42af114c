// Broker side of the gateway.
//
// hub: one broker subscription (ephemeral, ack none, deliver new) per
// distinct (project, subject set), shared by every browser stream asking for
// it on every event loop. Each message is rendered once (event.h), kept in a
// bounded ring of recent events (for resumes) and posted to the loops that
// have members; a loop hands it to its members.
//
// broker_link: the client library connection and a control thread. The
// client's subscribe() blocks until SubOk, so subscribes and unsubscribes
// run on the control thread, never on an event loop; their outcome is posted
// back to the asking stream's loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "nagare/admin.h"
#include "nagare/client.h"
#include "nagare/subscription.h"
#include "tools/gateway/auth.h"
#include "tools/gateway/config.h"
#include "tools/gateway/event.h"
#include "tools/gateway/stats.h"

namespace nagare::gateway {

class stream_session;
struct loop_context;

// Runs `fn` on event loop `loop`, with that loop's context.
using loop_poster = std::function<void(unsigned loop, std::function<void(loop_context&)> fn)>;

class hub {
public:
    enum class state : std::uint8_t { starting, ready, failed };

    hub(std::string key, std::string stream, std::string project, std::vector<std::string> patterns,
        unsigned loops);

    const std::string key;
    const std::string stream;
    const std::string project;
    const std::vector<std::string> patterns;

    // Where a stream continues when it wants `next` (the first offset it
    // needs; nullopt: live from now).
    struct join_result {
        bool ready = false;              // false: not subscribed yet (see wait_ready)
        bool needs_catchup = false;      // `next` is older than the ring covers
        std::vector<event_ptr> backlog;  // ring events with offset >= next
        std::uint64_t next = 0;          // where the stream continues
    };
    [[nodiscard]] join_result position(std::optional<std::uint64_t> next) const;

    // Membership (any loop): a hub with members on no loop is unsubscribed
    // after hub_linger.
    void enroll(unsigned loop);
    void leave(unsigned loop);
    // While starting: remembers `stream`, told (on `loop`) once the
    // subscription is up or failed; true. Not starting any more: false.
    [[nodiscard]] bool wait_ready(unsigned loop, std::shared_ptr<stream_session> waiting);

    [[nodiscard]] state current_state() const;
    // Why the subscription failed (state::failed).
    [[nodiscard]] client::error failure() const;
    [[nodiscard]] std::uint64_t epoch() const noexcept { return _epoch.load(std::memory_order_acquire); }
    // The stream is private (StreamConfig.private_stream): admins only.
    [[nodiscard]] bool private_stream() const noexcept { return _private_stream.load(std::memory_order_acquire); }
    // The smallest offset from which the ring holds every matching event.
    [[nodiscard]] std::uint64_t covered_from() const;
    [[nodiscard]] std::size_t members() const;

private:
    friend class broker_link;

    struct waiter {
        unsigned loop;
        std::shared_ptr<stream_session> stream;  // kept alive until told
    };

    // Client I/O thread: a delivered message. Returns the loops to post it to.
    std::vector<unsigned> append(const event_ptr& e, std::size_t ring_events, std::size_t ring_bytes);

    mutable std::mutex _mu;
    state _state = state::starting;
    client::error _failure;
    std::deque<event_ptr> _ring;
    std::size_t _ring_bytes = 0;
    std::uint64_t _covered_from = 0;
    std::uint64_t _end = 0;  // offset after the newest event seen (or the start)
    std::vector<std::uint32_t> _members;  // per loop
    std::vector<waiter> _waiters;
    std::chrono::steady_clock::time_point _idle_since{};
    std::atomic<std::uint64_t> _epoch{0};
    std::atomic<bool> _private_stream{false};
    client::Subscription _subscription;  // control thread only
};

class broker_link {
public:
    broker_link(const gateway_config& config, gateway_stats& stats, const private_subjects& priv,
                unsigned loops, loop_poster post);
    ~broker_link();
    broker_link(const broker_link&) = delete;
    broker_link& operator=(const broker_link&) = delete;

    // Starts the control thread, which connects (and keeps reconnecting).
    void start();
    // Unsubscribes everything and closes the client. Idempotent.
    void stop();

    // Any loop: the hub for (project, patterns), created (and subscribed on
    // the control thread) when there is none.
    [[nodiscard]] std::shared_ptr<hub> acquire(const std::string& stream, const std::string& project,
                                               const std::vector<std::string>& patterns);

    // A catch-up subscription for `stream` from `next` (explicit acks, a small
    // in-flight window). Events go to stream->on_catchup_event on `loop`; the
    // outcome to stream->on_catchup_started.
    void start_catchup(unsigned loop, std::shared_ptr<stream_session> stream, const hub& h,
                       std::uint64_t next);
    // Ends a subscription on the control thread (destroying one blocks).
    void release(client::Subscription subscription);

private:
    void run();
    void post_control(std::function<void()> fn);
    void ensure_connected();
    void subscribe_hub(const std::shared_ptr<hub>& h);
    void sweep_idle_hubs();
    // STREAM_INFO of `stream`: its epoch and private flag (nullopt: no answer).
    struct stream_facts {
        std::uint64_t epoch = 0;
        bool private_stream = false;
    };
    std::optional<stream_facts> stream_info(const std::string& stream);

    const gateway_config& _config;
    gateway_stats& _stats;
    const private_subjects& _private;
    const unsigned _loops;
    loop_poster _post;

    std::mutex _hubs_mu;
    std::map<std::string, std::shared_ptr<hub>, std::less<>> _hubs;

    std::mutex _jobs_mu;
    std::condition_variable _jobs_cv;
    std::deque<std::function<void()>> _jobs;
    bool _stopping = false;
    std::thread _thread;

    // Control thread only:
    std::unique_ptr<client::Client> _client;
    std::unique_ptr<client::admin_session> _admin;
};

// "stream|project|p1,p2" with the patterns sorted and deduplicated.
[[nodiscard]] std::string hub_key(std::string_view stream, std::string_view project,
                                  std::vector<std::string>& patterns);

}  // namespace nagare::gateway
