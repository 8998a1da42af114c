#include "bench/nagare_target.h"

#include <atomic>
#include <thread>
#include <utility>

#include "nagare/admin.h"
#include "nagare/client.h"

namespace nagare::bench {

namespace {

namespace fb = protocol::fb;

std::string describe(const client::error& e) {
    return std::string(client::errc_name(e.code)) + ": " + e.message;
}

fb::Durability wire_durability(durability mode) noexcept {
    switch (mode) {
        case durability::fsync:
            return fb::Durability::FSYNC;
        case durability::interval:
            return fb::Durability::INTERVAL;
        case durability::none:
            return fb::Durability::NONE;
    }
    return fb::Durability::FSYNC;
}

class nagare_connection final : public connection {
public:
    nagare_connection(std::unique_ptr<client::Client> c, publish_sink& sink)
        : _client(std::move(c)), _sink(&sink) {}
    ~nagare_connection() override { close(); }

    std::expected<void, std::string> publish(const publish_request& request,
                                             std::uint64_t token) override {
        client::publish_options po;
        po.msg_id = request.msg_id;
        // Two words: fits std::function's inline buffer (no allocation).
        auto on_done = [sink = _sink, token](const client::publish_result& r) {
            if (!r) {
                const auto& e = r.error();
                sink->on_published(token, publish_outcome::failed,
                                   e.message.empty() ? client::errc_name(e.code) : e.message);
            } else {
                sink->on_published(
                    token, r->duplicate ? publish_outcome::duplicate : publish_outcome::stored, {});
            }
        };
        static_assert(sizeof(on_done) <= 2 * sizeof(void*));
        auto accepted = _client->publish(request.project, request.subject, request.payload, po,
                                         std::move(on_done));
        if (!accepted) return std::unexpected(describe(accepted.error()));
        return {};
    }

    bool flush(std::chrono::milliseconds wait_max) override { return _client->flush(wait_max); }

    void close() noexcept override { _client->close(); }

    void add_counters(target_counters& into) const override {
        const auto s = _client->stats();
        add_counter(into, "publish_frames", static_cast<double>(s.frames_sent));
        add_counter(into, "messages_sent", static_cast<double>(s.messages_sent));
        add_counter(into, "messages_resent", static_cast<double>(s.messages_resent));
        add_counter(into, "reconnects", static_cast<double>(s.reconnects));
        add_counter(into, "sessions", static_cast<double>(s.sessions));
    }

private:
    std::unique_ptr<client::Client> _client;
    publish_sink* _sink;
};

// One Subscription on a Client: its own (subscribe(), closed with it) or a
// shared one (subscriber_connection, closed by its owner). The handler hands
// each message to the sink, then (explicit acks) queues its ack: the
// client's I/O thread sends the acks of one loop turn as one Ack frame.
class nagare_subscription final : public subscription {
public:
    nagare_subscription(std::shared_ptr<client::Client> c, bool owns_client)
        : _client(std::move(c)), _owns_client(owns_client) {}
    ~nagare_subscription() override { close(); }

    [[nodiscard]] client::Client& client() noexcept { return *_client; }
    // The subscription of client(), once subscribe() returned it.
    void adopt(client::Subscription sub) { _sub = std::move(sub); }

    bool drain(std::chrono::milliseconds wait_max) override {
        const auto deadline = std::chrono::steady_clock::now() + wait_max;
        for (;;) {
            const auto s = _sub.stats();
            if (s.acks_dropped != 0) return false;  // never to be written
            // A redelivery the LRU dropped is acked again: sent, never queued.
            if (s.acks_sent >= s.acks_queued + s.duplicates_dropped) return true;
            if (std::chrono::steady_clock::now() >= deadline) return false;
            std::this_thread::sleep_for(ack_drain_poll);
        }
    }

    void close() noexcept override {
        _sub.unsubscribe();  // sends the queued acks first
        if (_owns_client) _client->close();
    }

    void add_counters(target_counters& into) const override {
        const auto s = _sub.stats();
        add_counter(into, "delivered", static_cast<double>(s.delivered));
        add_counter(into, "redelivered", static_cast<double>(s.redelivered));
        add_counter(into, "duplicates_dropped", static_cast<double>(s.duplicates_dropped));
        add_counter(into, "acks_sent", static_cast<double>(s.acks_sent));
        add_counter(into, "ack_frames_sent", static_cast<double>(s.ack_frames_sent));
        add_counter(into, "acks_dropped", static_cast<double>(s.acks_dropped));
        add_counter(into, "resubscribes", static_cast<double>(s.resubscribes));
        add_counter(into, "dedup_evicted_early", static_cast<double>(s.dedup_evicted_early));
    }

private:
    static constexpr std::chrono::milliseconds ack_drain_poll{1};

    std::shared_ptr<client::Client> _client;
    bool _owns_client;
    client::Subscription _sub;
};

// Subscribes `request` on `c`, handing messages to `sink`.
std::expected<std::unique_ptr<subscription>, std::string> subscribe_on(
    std::shared_ptr<client::Client> c, bool owns_client, const subscribe_request& request,
    delivery_sink& sink) {
    client::subscribe_options so;
    so.consumer = request.consumer;
    so.deliver = request.start == start_position::first ? client::deliver_policy::all
                                                        : client::deliver_policy::new_only;
    const bool explicit_acks = request.ack == ack_mode::explicit_each;
    so.ack = explicit_acks ? client::ack_policy::explicit_ack : client::ack_policy::none;
    so.max_inflight = static_cast<std::uint32_t>(request.inflight_messages);
    so.on_error = [sink = &sink](const client::error& e) {
        sink->on_subscription_error(describe(e));
    };
    auto handler = [sink = &sink, explicit_acks](const client::Message& m) {
        sink->on_delivered({m.project(), m.subject(), m.msg_id(), m.payload(), m.delivery_count()});
        if (!explicit_acks) return;
        if (auto acked = m.ack(); !acked) sink->on_subscription_error(describe(acked.error()));
    };
    auto result = std::make_unique<nagare_subscription>(std::move(c), owns_client);
    auto sub = result->client().subscribe(request.stream, {{}, {request.subject}}, std::move(so),
                                          std::move(handler));
    if (!sub) {
        return std::unexpected("subscribe " + request.stream + ": " + describe(sub.error()));
    }
    result->adopt(std::move(*sub));
    return result;
}

// One Client carrying many subscriptions (their handlers share its I/O thread).
class nagare_subscriber_connection final : public subscriber_connection {
public:
    explicit nagare_subscriber_connection(std::shared_ptr<client::Client> c)
        : _client(std::move(c)) {}
    ~nagare_subscriber_connection() override { close(); }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        return subscribe_on(_client, false, request, sink);
    }

    void close() noexcept override { _client->close(); }

private:
    std::shared_ptr<client::Client> _client;
};

class nagare_target final : public target {
public:
    explicit nagare_target(nagare_target_options options) : _options(std::move(options)) {}

    std::string_view name() const noexcept override { return "nagare"; }

    std::expected<stream_handle, std::string> prepare_stream(durability mode) override {
        const std::string tag(to_string(mode));
        stream_handle handle{"bench_" + tag, "bench." + tag + "."};
        auto session = client::admin_session::connect(_options.url, _options.token);
        if (!session) return std::unexpected("admin session: " + describe(session.error()));
        fb::AdminT info;
        info.op = fb::AdminOp::STREAM_INFO;
        info.stream = handle.stream;
        auto existing = (*session)->request(std::move(info));
        if (existing) return check_existing(**existing, handle, mode);
        if (existing.error().code != protocol::errc::no_such_stream) {
            return std::unexpected("stream info " + handle.stream + ": " +
                                   describe(existing.error()));
        }
        fb::AdminT create;
        create.op = fb::AdminOp::STREAM_CREATE;
        create.stream = handle.stream;
        create.config = std::make_unique<fb::StreamConfigT>();
        create.config->name = handle.stream;
        create.config->subjects = {"bench." + tag + ".>"};
        create.config->durability = wire_durability(mode);
        auto created = (*session)->request(std::move(create));
        if (!created) {
            return std::unexpected("stream add " + handle.stream + ": " +
                                   describe(created.error()));
        }
        return handle;
    }

    std::expected<std::unique_ptr<connection>, std::string> connect(
        const connection_options& options, publish_sink& sink) override {
        client::options co;
        co.max_inflight_messages = options.inflight_messages;
        co.max_batch_messages = options.batch_messages;
        auto c = open_client(co);
        if (!c) return std::unexpected(c.error());
        return std::make_unique<nagare_connection>(std::move(*c), sink);
    }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        auto c = open_client({});
        if (!c) return std::unexpected(c.error());
        return subscribe_on(std::move(*c), true, request, sink);
    }

    std::expected<std::unique_ptr<subscriber_connection>, std::string> connect_subscriber()
        override {
        auto c = open_client({});
        if (!c) return std::unexpected(c.error());
        return std::make_unique<nagare_subscriber_connection>(std::move(*c));
    }

    std::expected<void, std::string> remove_consumer(std::string_view stream,
                                                     std::string_view consumer) override {
        auto session = client::admin_session::connect(_options.url, _options.token);
        if (!session) return std::unexpected("admin session: " + describe(session.error()));
        if (auto removed = (*session)->consumer_delete(stream, consumer); !removed) {
            return std::unexpected("consumer rm " + std::string(consumer) + ": " +
                                   describe(removed.error()));
        }
        return {};
    }

private:
    // Our url, token and name; a lost broker becomes errors after 10 s
    // instead of waiting forever.
    std::expected<std::unique_ptr<client::Client>, std::string> open_client(client::options co) {
        co.token = _options.token;
        co.client_name = "nagare-bench";
        co.give_up_after = std::chrono::seconds(10);
        auto c = client::Client::connect(_options.url, co);
        if (!c) return std::unexpected("connect " + _options.url + ": " + describe(c.error()));
        return std::move(*c);
    }

    static std::expected<stream_handle, std::string> check_existing(const fb::AdminResultT& result,
                                                                    stream_handle handle,
                                                                    durability mode) {
        if (result.streams.empty() || !result.streams.front()->config) {
            return std::unexpected("stream info " + handle.stream + ": empty answer");
        }
        if (result.streams.front()->config->durability != wire_durability(mode)) {
            return std::unexpected("stream " + handle.stream +
                                   " exists with another durability; remove it first");
        }
        return handle;
    }

    nagare_target_options _options;
};

}  // namespace

std::unique_ptr<target> make_nagare_target(nagare_target_options options) {
    return std::make_unique<nagare_target>(std::move(options));
}

}  // namespace nagare::bench
