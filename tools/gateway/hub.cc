#include "tools/gateway/hub.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "nagare/admin.h"
#include "protocol/nagare_generated.h"
#include "tools/gateway/stream_session.h"

namespace nagare::gateway {

using namespace std::chrono_literals;

std::string hub_key(std::string_view stream, std::string_view project,
                    std::vector<std::string>& patterns) {
    std::sort(patterns.begin(), patterns.end());
    patterns.erase(std::unique(patterns.begin(), patterns.end()), patterns.end());
    std::string key(stream);
    key.push_back('|');
    key += project;
    key.push_back('|');
    for (std::size_t i = 0; i < patterns.size(); ++i) {
        if (i > 0) key.push_back(',');
        key += patterns[i];
    }
    return key;
}

hub::hub(std::string hub_key_text, std::string stream_name, std::string project_name,
         std::vector<std::string> subject_patterns, unsigned loops)
    : key(std::move(hub_key_text)),
      stream(std::move(stream_name)),
      project(std::move(project_name)),
      patterns(std::move(subject_patterns)),
      _members(loops, 0) {}

hub::join_result hub::position(std::optional<std::uint64_t> next) const {
    std::lock_guard lock(_mu);
    join_result r;
    if (_state != state::ready) return r;
    r.ready = true;
    if (!next) {
        r.next = _end;
        return r;
    }
    r.next = *next;
    if (*next < _covered_from) {
        r.needs_catchup = true;
        return r;
    }
    auto it = std::lower_bound(_ring.begin(), _ring.end(), *next,
                               [](const event_ptr& e, std::uint64_t o) { return e->offset < o; });
    r.backlog.assign(it, _ring.end());
    return r;
}

void hub::enroll(unsigned loop) {
    std::lock_guard lock(_mu);
    ++_members[loop];
}

bool hub::wait_ready(unsigned loop, std::shared_ptr<stream_session> waiting) {
    std::lock_guard lock(_mu);
    if (_state != state::starting) return false;
    _waiters.push_back({loop, std::move(waiting)});
    return true;
}

void hub::leave(unsigned loop) {
    std::lock_guard lock(_mu);
    if (_members[loop] > 0) --_members[loop];
    bool any = false;
    for (const auto m : _members) any = any || m > 0;
    if (!any) _idle_since = std::chrono::steady_clock::now();
}

client::error hub::failure() const {
    std::lock_guard lock(_mu);
    return _failure;
}

hub::state hub::current_state() const {
    std::lock_guard lock(_mu);
    return _state;
}

std::uint64_t hub::covered_from() const {
    std::lock_guard lock(_mu);
    return _covered_from;
}

std::size_t hub::members() const {
    std::lock_guard lock(_mu);
    std::size_t n = 0;
    for (const auto m : _members) n += m;
    return n;
}

std::vector<unsigned> hub::append(const event_ptr& e, std::size_t ring_events, std::size_t ring_bytes) {
    std::vector<unsigned> loops;
    std::lock_guard lock(_mu);
    if (e->offset < _end) return loops;  // a repeat after a client reconnect
    _end = e->offset + 1;
    _ring.push_back(e);
    _ring_bytes += e->json.size();
    while (_ring.size() > ring_events || (_ring_bytes > ring_bytes && _ring.size() > 1)) {
        _ring_bytes -= _ring.front()->json.size();
        _covered_from = _ring.front()->offset + 1;
        _ring.pop_front();
    }
    for (unsigned i = 0; i < _members.size(); ++i) {
        if (_members[i] > 0) loops.push_back(i);
    }
    return loops;
}

// ---------------------------------------------------------------------------

broker_link::broker_link(const gateway_config& config, gateway_stats& stats,
                         const private_subjects& priv, unsigned loops, loop_poster post)
    : _config(config), _stats(stats), _private(priv), _loops(loops), _post(std::move(post)) {}

broker_link::~broker_link() { stop(); }

void broker_link::start() { _thread = std::thread([this] { run(); }); }

void broker_link::stop() {
    {
        std::lock_guard lock(_jobs_mu);
        if (_stopping && !_thread.joinable()) return;
        _stopping = true;
    }
    _jobs_cv.notify_all();
    if (_thread.joinable()) _thread.join();
}

void broker_link::post_control(std::function<void()> fn) {
    {
        std::lock_guard lock(_jobs_mu);
        if (_stopping) return;
        _jobs.push_back(std::move(fn));
    }
    _jobs_cv.notify_one();
}

void broker_link::run() {
    auto next_check = std::chrono::steady_clock::now();
    while (true) {
        std::function<void()> job;
        {
            std::unique_lock lock(_jobs_mu);
            _jobs_cv.wait_until(lock, next_check, [&] { return _stopping || !_jobs.empty(); });
            if (_stopping) break;
            if (!_jobs.empty()) {
                job = std::move(_jobs.front());
                _jobs.pop_front();
            }
        }
        if (job) {
            job();
            continue;
        }
        ensure_connected();
        (void)stream_info(_config.stream);  // the broker's health, for /status
        sweep_idle_hubs();
        next_check = std::chrono::steady_clock::now() + 1s;
    }
    // Shut down: every hub's subscription, then the client.
    std::map<std::string, std::shared_ptr<hub>, std::less<>> hubs;
    {
        std::lock_guard lock(_hubs_mu);
        hubs.swap(_hubs);
    }
    for (auto& [key, h] : hubs) h->_subscription.unsubscribe();
    std::deque<std::function<void()>> rest;
    {
        std::lock_guard lock(_jobs_mu);
        rest.swap(_jobs);
    }
    rest.clear();  // releases (unsubscribes) what the jobs held
    if (_client) _client->close();
    _client.reset();
    _admin.reset();
}

void broker_link::ensure_connected() {
    if (!_client) {
        client::options opts;
        opts.token = _config.broker_token;
        opts.client_name = "nagare-gateway";
        opts.connect_timeout = 2s;
        auto c = client::Client::connect(_config.broker_url, opts);
        if (!c) {
            _stats.broker_connected.store(false);
            spdlog::warn("event=broker_unavailable url={} error=\"{}\"", _config.broker_url,
                         c.error().message);
            return;
        }
        _client = std::move(*c);
        spdlog::info("event=broker_connected url={}", _config.broker_url);
    }
}

std::optional<broker_link::stream_facts> broker_link::stream_info(const std::string& stream) {
    if (!_admin) {
        auto a = client::admin_session::connect(_config.broker_url, _config.broker_token, 2s);
        if (!a) {
            _stats.broker_connected.store(false);
            return std::nullopt;
        }
        _admin = std::move(*a);
    }
    protocol::fb::AdminT request;
    request.op = protocol::fb::AdminOp::STREAM_INFO;
    request.stream = stream;
    auto r = _admin->request(std::move(request));
    if (!r) {
        // A broker error (NO_SUCH_STREAM) leaves the connection usable; a lost
        // connection does not.
        if (r.error().code == client::errc_unavailable || r.error().code == client::errc_closed) _admin.reset();
        _stats.broker_connected.store(_admin != nullptr);
        return std::nullopt;
    }
    _stats.broker_connected.store(true);
    if ((*r)->streams.empty()) return std::nullopt;
    const auto& info = *(*r)->streams.front();
    return stream_facts{info.epoch, info.config != nullptr && info.config->private_stream};
}

std::shared_ptr<hub> broker_link::acquire(const std::string& stream, const std::string& project,
                                          const std::vector<std::string>& patterns) {
    auto sorted = patterns;
    const std::string key = hub_key(stream, project, sorted);
    std::lock_guard lock(_hubs_mu);
    if (auto it = _hubs.find(key); it != _hubs.end() && it->second->current_state() != hub::state::failed) {
        return it->second;
    }
    auto h = std::make_shared<hub>(key, stream, project, std::move(sorted), _loops);
    _hubs[key] = h;
    _stats.hubs.fetch_add(1, std::memory_order_relaxed);
    post_control([this, h] { subscribe_hub(h); });
    return h;
}

void broker_link::subscribe_hub(const std::shared_ptr<hub>& h) {
    std::expected<client::Subscription, client::error> sub =
        std::unexpected(client::error{client::errc_unavailable, "broker unavailable"});
    ensure_connected();
    const auto facts = _client ? stream_info(h->stream) : std::nullopt;
    if (!_client || !_stats.broker_connected.load()) {
        // sub stays errc_unavailable
    } else if (!facts) {
        sub = std::unexpected(client::error{protocol::errc::no_such_stream, "no such stream"});
    } else {
        h->_epoch.store(facts->epoch, std::memory_order_release);
        h->_private_stream.store(facts->private_stream, std::memory_order_release);
        client::subscribe_options opts;
        opts.deliver = client::deliver_policy::new_only;
        opts.ack = client::ack_policy::none;
        opts.dedup_ids_max = 1;
        std::weak_ptr<hub> weak = h;
        sub = _client->subscribe(
            h->stream, client::subscription_filter{h->project, h->patterns}, std::move(opts),
            [this, weak](const client::Message& m) {
                auto hp = weak.lock();
                if (!hp) return;
                auto e = render_event(m, hp->epoch(),
                                      hp->private_stream() || _private.matches_subject(m.subject()));
                for (const unsigned loop : hp->append(e, _config.ring_events, _config.ring_bytes)) {
                    _post(loop, [this, hp, e](loop_context& ctx) { deliver_to_members(ctx, _stats, *hp, e); });
                }
            });
    }
    std::vector<hub::waiter> waiters;
    {
        std::lock_guard lock(h->_mu);
        if (sub) {
            h->_state = hub::state::ready;
            const auto starts = sub->start_positions();
            const std::uint64_t start = starts.empty() ? 0 : starts.front().second.value;
            h->_covered_from = std::max(h->_covered_from, start);
            h->_end = std::max(h->_end, start);
            const auto epoch = sub->stats().stream_epoch;
            if (epoch != 0 && epoch != h->epoch()) {
                spdlog::warn("event=stream_epoch_changed stream={} epoch={}", h->stream, epoch);
                h->_epoch.store(epoch, std::memory_order_release);
            }
            h->_subscription = std::move(*sub);
        } else {
            h->_state = hub::state::failed;
            h->_failure = sub.error();
            spdlog::warn("event=hub_subscribe_failed project={} error=\"{}\"", h->project,
                         sub.error().message);
        }
        waiters.swap(h->_waiters);
    }
    if (!sub) {
        std::lock_guard lock(_hubs_mu);
        if (auto it = _hubs.find(h->key); it != _hubs.end() && it->second == h) {
            _hubs.erase(it);
            _stats.hubs.fetch_sub(1, std::memory_order_relaxed);
        }
    }
    for (auto& w : waiters) {
        _post(w.loop, [stream = std::move(w.stream)](loop_context&) {
            stream->on_hub_outcome();
        });
    }
}

void broker_link::sweep_idle_hubs() {
    const auto now = std::chrono::steady_clock::now();
    std::vector<std::shared_ptr<hub>> idle;
    {
        std::lock_guard lock(_hubs_mu);
        for (auto it = _hubs.begin(); it != _hubs.end();) {
            auto& h = it->second;
            bool remove = false;
            {
                std::lock_guard hl(h->_mu);
                bool any = false;
                for (const auto m : h->_members) any = any || m > 0;
                remove = !any && h->_state == hub::state::ready &&
                         now - h->_idle_since > _config.hub_linger;
                if (remove) h->_state = hub::state::failed;  // acquire() makes a new one
            }
            if (remove) {
                idle.push_back(std::move(h));
                it = _hubs.erase(it);
                _stats.hubs.fetch_sub(1, std::memory_order_relaxed);
            } else {
                ++it;
            }
        }
    }
    for (auto& h : idle) h->_subscription.unsubscribe();
}

void broker_link::start_catchup(unsigned loop, std::shared_ptr<stream_session> stream, const hub& h,
                                std::uint64_t next) {
    _stats.catchups.fetch_add(1, std::memory_order_relaxed);
    std::weak_ptr<stream_session> weak = stream;
    post_control([this, loop, weak, stream_name = h.stream, project = h.project, patterns = h.patterns,
                  epoch = h.epoch(), private_stream = h.private_stream(), next] {
        std::expected<client::Subscription, client::error> sub =
            std::unexpected(client::error{client::errc_unavailable, "broker unavailable"});
        ensure_connected();
        if (_client && !weak.expired()) {
            client::subscribe_options opts;
            opts.deliver = client::deliver_policy::from_offset;
            opts.start_offset = nagare::offset{next};
            opts.ack = client::ack_policy::explicit_ack;
            opts.max_inflight = 256;
            opts.ack_wait = 30s;
            opts.dedup_ids_max = 1024;
            sub = _client->subscribe(
                stream_name, client::subscription_filter{project, patterns}, std::move(opts),
                [this, weak, loop, epoch, private_stream](const client::Message& m) {
                    auto e = render_event(m, epoch, private_stream || _private.matches_subject(m.subject()));
                    _post(loop, [weak, e, handle = m.handle()](loop_context&) {
                        if (auto s = weak.lock()) {
                            s->on_catchup_event(e, handle);
                        } else {
                            (void)handle.ack();
                        }
                    });
                });
        }
        std::uint64_t start = next;
        if (sub) {
            const auto starts = sub->start_positions();
            if (!starts.empty()) start = starts.front().second.value;
        }
        auto shared = std::make_shared<std::expected<client::Subscription, client::error>>(std::move(sub));
        _post(loop, [this, weak, shared, start](loop_context&) {
            auto s = weak.lock();
            if (!s) {
                if (*shared) release(std::move(**shared));
                return;
            }
            s->on_catchup_started(std::move(*shared), start);
        });
    });
}

void broker_link::release(client::Subscription subscription) {
    auto shared = std::make_shared<client::Subscription>(std::move(subscription));
    post_control([shared] { shared->unsubscribe(); });
}

}  // namespace nagare::gateway
