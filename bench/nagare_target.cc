#include "bench/nagare_target.h"

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
        add(into, "publish_frames", static_cast<double>(s.frames_sent));
        add(into, "messages_sent", static_cast<double>(s.messages_sent));
        add(into, "messages_resent", static_cast<double>(s.messages_resent));
        add(into, "reconnects", static_cast<double>(s.reconnects));
        add(into, "sessions", static_cast<double>(s.sessions));
    }

private:
    static void add(target_counters& into, std::string_view name, double value) {
        for (auto& [n, v] : into) {
            if (n == name) {
                v += value;
                return;
            }
        }
        into.emplace_back(std::string(name), value);
    }

    std::unique_ptr<client::Client> _client;
    publish_sink* _sink;
};

class nagare_target final : public target {
public:
    explicit nagare_target(nagare_target_options options) : _options(std::move(options)) {}

    std::string_view name() const noexcept override { return "nagare"; }

    std::expected<stream_handle, std::string> prepare_stream(durability mode) override {
        const std::string tag(to_string(mode));
        stream_handle handle{"bench_" + tag, "bench." + tag + ".event"};
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
        co.token = _options.token;
        co.client_name = "nagare-bench";
        co.max_inflight_messages = options.inflight_messages;
        co.max_batch_messages = options.batch_messages;
        // A benchmark reports a lost broker as errors instead of waiting forever.
        co.give_up_after = std::chrono::seconds(10);
        auto c = client::Client::connect(_options.url, co);
        if (!c) return std::unexpected("connect " + _options.url + ": " + describe(c.error()));
        return std::make_unique<nagare_connection>(std::move(*c), sink);
    }

private:
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
