// fake_target: an in-process target for the scenario tests. Publishes are
// resolved at once (those whose msg_id ends in fail_suffix fail) and stored
// in a log; each subscription delivers the log's messages of its subject on
// a thread of its own, as they come (durable consumers share one cursor),
// and counts acks. Faults to inject: messages stored and never delivered
// (lose_suffix), delivered twice (repeat_suffix), refused connections and
// subscriptions, and a stuck broker (after resolve_max publishes per
// connection nothing resolves: publish blocks on the full window until
// close(), which fails what it held).
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bench/target.h"

namespace nagare::bench::fakes {

class fake_target final : public target {
public:
    struct stored {
        std::string project;
        std::string subject;
        std::string msg_id;
        std::string payload;
    };

    struct seen {
        std::mutex mutex;
        std::condition_variable grew;
        std::vector<stored> messages;  // stored, in order
        std::set<std::string> msg_ids;
        std::map<std::string, std::uint64_t> per_project;
        std::set<std::string> subjects;
        std::size_t payload_bytes = 0;
        std::optional<durability> prepared;
        std::vector<subscribe_request> subscriptions;
        std::map<std::string, std::size_t> durable_cursors;  // next message per durable consumer
        std::vector<std::string> removed_consumers;
        std::uint64_t acks = 0;
    };

    std::string fail_suffix;    // publish fails
    std::string lose_suffix;    // stored, never delivered
    std::string repeat_suffix;  // delivered twice
    bool refuse_connect = false;
    bool refuse_subscribe = false;
    std::uint64_t resolve_max = UINT64_MAX;  // per connection
    std::shared_ptr<seen> log = std::make_shared<seen>();

    std::string_view name() const noexcept override { return "fake"; }

    std::expected<stream_handle, std::string> prepare_stream(durability mode) override {
        const std::lock_guard lock(log->mutex);
        log->prepared = mode;
        return stream_handle{"bench_x", "bench.x."};
    }

    std::expected<std::unique_ptr<connection>, std::string> connect(
        const connection_options& options, publish_sink& sink) override {
        if (refuse_connect) return std::unexpected("refused");
        return std::make_unique<fake_connection>(sink, log, fail_suffix, resolve_max,
                                                 options.inflight_messages);
    }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        if (refuse_subscribe) return std::unexpected("subscribe refused");
        return std::make_unique<fake_subscription>(request, sink, log, lose_suffix, repeat_suffix);
    }

    std::expected<std::unique_ptr<subscriber_connection>, std::string> connect_subscriber()
        override {
        if (refuse_connect) return std::unexpected("refused");
        return std::make_unique<fake_subscriber_connection>(log, refuse_subscribe, lose_suffix,
                                                            repeat_suffix);
    }

    std::expected<void, std::string> remove_consumer(std::string_view,
                                                     std::string_view consumer) override {
        const std::lock_guard lock(log->mutex);
        log->removed_consumers.emplace_back(consumer);
        return {};
    }

private:
    class fake_connection final : public connection {
    public:
        fake_connection(publish_sink& sink, std::shared_ptr<seen> log, std::string fail_suffix,
                        std::uint64_t resolve_max, std::size_t window)
            : _sink(sink),
              _log(std::move(log)),
              _fail_suffix(std::move(fail_suffix)),
              _resolve_max(resolve_max),
              _window(window) {}

        std::expected<void, std::string> publish(const publish_request& r,
                                                 std::uint64_t token) override {
            if (_published >= _resolve_max) return hold(token);
            const bool fails = !_fail_suffix.empty() && r.msg_id.ends_with(_fail_suffix);
            {
                const std::lock_guard lock(_log->mutex);
                EXPECT_TRUE(_log->msg_ids.emplace(r.msg_id).second)
                    << "msg_id reused: " << r.msg_id;
                _log->per_project[std::string(r.project)] += 1;
                _log->subjects.emplace(r.subject);
                _log->payload_bytes = r.payload.size();
                if (!fails) {
                    _log->messages.push_back(
                        {std::string(r.project), std::string(r.subject), std::string(r.msg_id),
                         std::string(reinterpret_cast<const char*>(r.payload.data()),
                                     r.payload.size())});
                }
            }
            _log->grew.notify_all();
            _sink.on_published(token, fails ? publish_outcome::failed : publish_outcome::stored,
                               fails ? "STORAGE_ERROR" : "");
            ++_published;
            return {};
        }
        bool flush(std::chrono::milliseconds) override {
            std::unique_lock lock(_hold_mutex);
            return _held.empty();
        }
        void close() noexcept override {
            std::vector<std::uint64_t> held;
            {
                const std::lock_guard lock(_hold_mutex);
                _closed = true;
                held.swap(_held);
            }
            _hold_changed.notify_all();
            for (const auto token : held)
                _sink.on_published(token, publish_outcome::failed, "closed");
        }
        void add_counters(target_counters& into) const override {
            add_counter(into, "published", static_cast<double>(_published));
        }

    private:
        // The stuck broker: accepted, never resolved; blocks on a full window.
        std::expected<void, std::string> hold(std::uint64_t token) {
            std::unique_lock lock(_hold_mutex);
            _hold_changed.wait(lock, [&] { return _closed || _held.size() < _window; });
            if (_closed) return std::unexpected("closed");
            _held.push_back(token);
            return {};
        }

        publish_sink& _sink;
        std::shared_ptr<seen> _log;
        std::string _fail_suffix;
        std::uint64_t _resolve_max;
        std::size_t _window;
        std::uint64_t _published = 0;
        std::mutex _hold_mutex;
        std::condition_variable _hold_changed;
        std::vector<std::uint64_t> _held;
        bool _closed = false;
    };

    class fake_subscription final : public subscription {
    public:
        fake_subscription(subscribe_request request, delivery_sink& sink, std::shared_ptr<seen> log,
                          std::string lose_suffix, std::string repeat_suffix)
            : _request(std::move(request)),
              _sink(sink),
              _log(std::move(log)),
              _lose_suffix(std::move(lose_suffix)),
              _repeat_suffix(std::move(repeat_suffix)) {
            const std::lock_guard lock(_log->mutex);
            _log->subscriptions.push_back(_request);
            const auto start = _request.start == start_position::first ? 0 : _log->messages.size();
            if (!_request.consumer.empty())
                _log->durable_cursors.try_emplace(_request.consumer, start);
            _cursor = start;
            _thread = std::thread([this] { deliver(); });
        }
        ~fake_subscription() override { close(); }

        bool drain(std::chrono::milliseconds) override { return true; }
        void close() noexcept override {
            {
                const std::lock_guard lock(_log->mutex);
                _closed = true;
            }
            _log->grew.notify_all();
            if (_thread.joinable()) _thread.join();
        }
        void add_counters(target_counters& into) const override {
            add_counter(into, "delivered", static_cast<double>(_delivered));
        }

    private:
        std::size_t& cursor() {
            return _request.consumer.empty() ? _cursor : _log->durable_cursors[_request.consumer];
        }

        // Takes the next message (a copy: the log may grow meanwhile); nullopt once closed.
        std::optional<stored> next() {
            std::unique_lock lock(_log->mutex);
            _log->grew.wait(lock, [&] { return _closed || cursor() < _log->messages.size(); });
            if (_closed) return std::nullopt;
            return _log->messages[cursor()++];
        }

        void deliver() {
            while (auto m = next()) {
                if (m->subject != _request.subject) continue;
                if (!_lose_suffix.empty() && m->msg_id.ends_with(_lose_suffix)) continue;
                const delivery d{m->project, m->subject, m->msg_id,
                                 std::as_bytes(std::span(m->payload)), 1};
                _sink.on_delivered(d);
                ++_delivered;
                if (!_repeat_suffix.empty() && m->msg_id.ends_with(_repeat_suffix)) {
                    auto again = d;
                    again.delivery_count = 2;
                    _sink.on_delivered(again);
                    ++_delivered;
                }
                if (_request.ack == ack_mode::explicit_each) {
                    const std::lock_guard lock(_log->mutex);
                    _log->acks += 1;
                }
            }
        }

        subscribe_request _request;
        delivery_sink& _sink;
        std::shared_ptr<seen> _log;
        std::string _lose_suffix;
        std::string _repeat_suffix;
        std::size_t _cursor = 0;  // ephemeral; guarded by the log's mutex
        bool _closed = false;     // guarded by the log's mutex
        std::uint64_t _delivered = 0;
        std::thread _thread;
    };

    // Many ephemeral subscriptions, one delivering thread (like one Client's
    // I/O thread): message i goes to every open subscription of its subject
    // that started at or before i.
    class fake_subscriber_connection final : public subscriber_connection {
    public:
        fake_subscriber_connection(std::shared_ptr<seen> log, bool refuse, std::string lose_suffix,
                                   std::string repeat_suffix)
            : _log(std::move(log)),
              _refuse(refuse),
              _lose_suffix(std::move(lose_suffix)),
              _repeat_suffix(std::move(repeat_suffix)) {}
        ~fake_subscriber_connection() override { close(); }

        std::expected<std::unique_ptr<subscription>, std::string> subscribe(
            const subscribe_request& request, delivery_sink& sink) override {
            if (_refuse) return std::unexpected("subscribe refused");
            std::size_t start = 0;
            {
                const std::lock_guard lock(_log->mutex);
                _log->subscriptions.push_back(request);
                start = request.start == start_position::first ? 0 : _log->messages.size();
            }
            const std::lock_guard lock(_shared->mutex);
            _shared->entries.push_back(
                std::make_unique<entry>(entry{request.subject, &sink, start}));
            if (!_thread.joinable()) {
                _next = start;
                _thread = std::thread([this] { deliver(); });
            }
            return std::make_unique<shared_subscription>(_shared, *_shared->entries.back());
        }

        void close() noexcept override {
            {
                const std::lock_guard lock(_log->mutex);
                _closed = true;
            }
            _log->grew.notify_all();
            if (_thread.joinable()) _thread.join();
        }

    private:
        struct entry {
            std::string subject;
            delivery_sink* sink;
            std::size_t start;
            bool open = true;  // guarded by the shared mutex
        };

        // What the subscriptions share with the connection; they may outlive it.
        struct shared {
            std::mutex mutex;
            std::vector<std::unique_ptr<entry>> entries;
        };

        class shared_subscription final : public subscription {
        public:
            shared_subscription(std::shared_ptr<shared> state, entry& e)
                : _state(std::move(state)), _entry(e) {}
            ~shared_subscription() override { close(); }
            bool drain(std::chrono::milliseconds) override { return true; }
            void close() noexcept override {
                const std::lock_guard lock(_state->mutex);
                _entry.open = false;
            }
            void add_counters(target_counters& into) const override {
                add_counter(into, "subscriptions", 1);
            }

        private:
            std::shared_ptr<shared> _state;
            entry& _entry;
        };

        // The next message and its index; nullopt once closed.
        std::optional<std::pair<std::size_t, stored>> next() {
            std::unique_lock lock(_log->mutex);
            _log->grew.wait(lock, [&] { return _closed || _next < _log->messages.size(); });
            if (_closed) return std::nullopt;
            const auto i = _next++;
            return std::pair{i, _log->messages[i]};
        }

        void deliver() {
            while (auto item = next()) {
                const auto index = item->first;
                const auto* m = &item->second;
                if (!_lose_suffix.empty() && m->msg_id.ends_with(_lose_suffix)) continue;
                const bool twice = !_repeat_suffix.empty() && m->msg_id.ends_with(_repeat_suffix);
                const delivery d{m->project, m->subject, m->msg_id,
                                 std::as_bytes(std::span(m->payload)), 1};
                const std::lock_guard lock(_shared->mutex);
                for (auto& e : _shared->entries) {
                    if (!e->open || e->subject != m->subject || e->start > index) continue;
                    e->sink->on_delivered(d);
                    if (twice) e->sink->on_delivered(d);
                }
            }
        }

        std::shared_ptr<seen> _log;
        bool _refuse;
        std::string _lose_suffix;
        std::string _repeat_suffix;
        std::shared_ptr<shared> _shared = std::make_shared<shared>();
        std::size_t _next = 0;  // guarded by the log's mutex
        bool _closed = false;   // guarded by the log's mutex
        std::thread _thread;
    };
};

}  // namespace nagare::bench::fakes
