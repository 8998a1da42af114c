// nagare::client::Client: the public face of client_core.
#include "nagare/client.h"

#include <algorithm>
#include <string>

#include "client/client_core.h"
#include "client/limits.h"
#include "client/net.h"
#include "client/url.h"
#include "protocol/subject.h"
#include "protocol/validate.h"

namespace nagare::client {

namespace {

std::unexpected<error> fail(errc code, std::string message) {
    return std::unexpected(error{code, std::move(message)});
}

std::expected<void, error> check_options(const options& opts) {
    if (opts.max_inflight_messages == 0 || opts.max_inflight_messages > inflight_messages_max) {
        return fail(errc::bad_request, "max_inflight_messages must be in 1..1048576");
    }
    if (opts.max_batch_messages == 0 || opts.max_batch_messages > batch_messages_max) {
        return fail(errc::bad_request, "max_batch_messages must be in 1..4096");
    }
    if (opts.connect_timeout <= std::chrono::milliseconds::zero()) {
        return fail(errc::bad_request, "connect_timeout must be positive");
    }
    if (opts.reconnect_backoff.empty()) {
        return fail(errc::bad_request, "reconnect_backoff needs at least one delay");
    }
    for (const auto delay : opts.reconnect_backoff) {
        if (delay < std::chrono::milliseconds::zero() || delay > std::chrono::hours{24}) {
            return fail(errc::bad_request, "reconnect_backoff delays must be in 0..24 h");
        }
    }
    if (!(opts.reconnect_jitter >= 0.0 && opts.reconnect_jitter <= 1.0)) {
        return fail(errc::bad_request, "reconnect_jitter must be in 0..1");
    }
    if (opts.give_up_after && *opts.give_up_after < std::chrono::milliseconds::zero()) {
        return fail(errc::bad_request, "give_up_after must not be negative");
    }
    return {};
}

bool in_wire_ms(std::chrono::milliseconds ms) noexcept {
    return ms.count() >= 0 && ms.count() <= UINT32_MAX;
}

std::expected<void, error> check_filter(const subscription_filter& filter,
                                        const subscribe_options& o) {
    if (!filter.project.empty() && protocol::validate_project(filter.project) != errc::none) {
        return fail(errc::bad_project, "bad project filter: 1..128 bytes of [A-Za-z0-9_.:-]");
    }
    if (filter.subjects.size() > protocol::patterns_per_subscribe_max) {
        return fail(errc::bad_pattern, "too many subject patterns: at most " +
                                           std::to_string(protocol::patterns_per_subscribe_max));
    }
    for (const auto& pattern : filter.subjects) {
        if (protocol::validate_pattern(pattern) != errc::none) {
            return fail(errc::bad_pattern,
                        "bad subject pattern '" + pattern.substr(0, 64) +
                            "': 1..16 tokens of [A-Za-z0-9_-], '*', or a last '>', joined by '.'");
        }
    }
    if (o.deliver == deliver_policy::last_per_subject && filter.project.empty()) {
        return fail(errc::bad_request, "deliver policy last_per_subject needs a project filter");
    }
    return {};
}

}  // namespace

std::expected<void, error> validate_subscription(std::string_view stream,
                                                 const subscription_filter& filter,
                                                 const subscribe_options& o) {
    if (protocol::validate_stream_name(stream) != errc::none) {
        return fail(errc::bad_request, "bad stream name '" + std::string(stream.substr(0, 64)) +
                                           "': 1..64 bytes of [A-Za-z0-9_-]");
    }
    if (!o.consumer.empty() &&
        (o.consumer.starts_with('$') || protocol::validate_stream_name(o.consumer) != errc::none)) {
        return fail(errc::bad_request, "bad consumer name: 1..64 bytes of [A-Za-z0-9_-]");
    }
    if (auto valid = check_filter(filter, o); !valid) return valid;
    if (!in_wire_ms(o.ack_wait)) return fail(errc::bad_request, "ack_wait must be in 0..2^32-1 ms");
    if (o.backoff.size() > backoff_steps_max) {
        return fail(errc::bad_request,
                    "backoff has at most " + std::to_string(backoff_steps_max) + " delays");
    }
    if (!std::ranges::all_of(o.backoff, in_wire_ms)) {
        return fail(errc::bad_request, "backoff delays must be in 0..2^32-1 ms");
    }
    if (o.subscribe_timeout <= std::chrono::milliseconds::zero()) {
        return fail(errc::bad_request, "subscribe_timeout must be positive");
    }
    if (o.dedup_window <= std::chrono::milliseconds::zero()) {
        return fail(errc::bad_request, "dedup_window must be positive");
    }
    if (o.dedup_ids_max == 0 || o.dedup_ids_max > dedup_ids_limit) {
        return fail(errc::bad_request,
                    "dedup_ids_max must be in 1.." + std::to_string(dedup_ids_limit));
    }
    return {};
}

namespace {

message make_message(std::string_view project, std::string_view subject,
                     std::span<const std::byte> payload, const publish_options& opts) {
    return message{project, subject, payload, opts};
}

std::future<publish_result> ready_future(error e) {
    std::promise<publish_result> promise;
    promise.set_value(std::unexpected(std::move(e)));
    return promise.get_future();
}

std::future<publish_result> publish_future(detail::client_core& core, const message& m,
                                           bool may_block) {
    if (auto valid = core.validate(m); !valid) return ready_future(std::move(valid.error()));
    std::promise<publish_result> promise;
    auto future = promise.get_future();
    if (auto accepted = core.submit(m, std::move(promise), may_block); !accepted) {
        return ready_future(std::move(accepted.error()));
    }
    return future;
}

std::expected<void, error> publish_with(detail::client_core& core, const message& m,
                                        publish_callback&& on_done, bool may_block) {
    if (auto valid = core.validate(m); !valid) return valid;
    return core.submit(m, std::move(on_done), may_block);
}

std::expected<void, error> validate_batch(const detail::client_core& core,
                                          std::span<const message> messages) {
    for (std::size_t i = 0; i < messages.size(); ++i) {
        if (auto valid = core.validate(messages[i]); !valid) {
            return fail(valid.error().code,
                        "message " + std::to_string(i) + " of the batch: " + valid.error().message);
        }
    }
    return {};
}

}  // namespace

std::string_view errc_name(errc code) noexcept {
    if (code == errc_unavailable) return "UNAVAILABLE";
    if (code == errc_closed) return "CLOSED";
    return protocol::to_string(code);
}

std::expected<std::unique_ptr<Client>, error> Client::connect(std::string_view url, options opts) {
    auto where = parse_url(url);
    if (!where)
        return fail(errc::bad_request,
                    "bad url '" + std::string(url.substr(0, 128)) + "': " + where.error());
    if (auto valid = check_options(opts); !valid) return std::unexpected(valid.error());
    auto address = resolve(where->host, where->port);
    if (!address) return fail(errc_unavailable, address.error());
    auto core = std::make_unique<detail::client_core>(std::move(*where), *address, std::move(opts));
    if (auto started = core->start(); !started) return std::unexpected(started.error());
    return std::unique_ptr<Client>(new Client(std::move(core)));
}

Client::Client(std::unique_ptr<detail::client_core> core) noexcept : _core(std::move(core)) {}

Client::~Client() = default;

std::future<publish_result> Client::publish(std::string_view project, std::string_view subject,
                                            std::span<const std::byte> payload,
                                            const publish_options& opts) {
    return publish_future(*_core, make_message(project, subject, payload, opts), true);
}

std::expected<void, error> Client::publish(std::string_view project, std::string_view subject,
                                           std::span<const std::byte> payload,
                                           const publish_options& opts, publish_callback on_done) {
    return publish_with(*_core, make_message(project, subject, payload, opts), std::move(on_done),
                        true);
}

std::future<publish_result> Client::try_publish(std::string_view project, std::string_view subject,
                                                std::span<const std::byte> payload,
                                                const publish_options& opts) {
    return publish_future(*_core, make_message(project, subject, payload, opts), false);
}

std::expected<void, error> Client::try_publish(std::string_view project, std::string_view subject,
                                               std::span<const std::byte> payload,
                                               const publish_options& opts,
                                               publish_callback on_done) {
    return publish_with(*_core, make_message(project, subject, payload, opts), std::move(on_done),
                        false);
}

std::future<std::vector<publish_result>> Client::publish_batch(std::span<const message> messages) {
    auto state = std::make_shared<detail::batch_state>(messages.size());
    state->promise.emplace();
    auto future = state->promise->get_future();
    auto accepted = validate_batch(*_core, messages);
    if (accepted && !messages.empty()) accepted = _core->submit_batch(messages, state, true);
    if (!accepted) {
        std::vector<publish_result> failed(messages.size(), std::unexpected(accepted.error()));
        state->promise->set_value(std::move(failed));
    } else if (messages.empty()) {
        state->promise->set_value({});
    }
    return future;
}

std::expected<void, error> Client::publish_batch(std::span<const message> messages,
                                                 batch_each_callback on_each) {
    if (auto valid = validate_batch(*_core, messages); !valid) return valid;
    if (messages.empty()) return fail(errc::bad_request, "empty batch");
    auto state = std::make_shared<detail::batch_state>(messages.size());
    state->on_each = std::move(on_each);
    return _core->submit_batch(messages, state, true);
}

std::expected<void, error> Client::publish_batch(std::span<const message> messages,
                                                 batch_done_callback on_done) {
    if (auto valid = validate_batch(*_core, messages); !valid) return valid;
    if (messages.empty()) return fail(errc::bad_request, "empty batch");
    auto state = std::make_shared<detail::batch_state>(messages.size());
    state->on_done = std::move(on_done);
    return _core->submit_batch(messages, state, true);
}

std::expected<Subscription, error> Client::subscribe(std::string_view stream,
                                                     subscription_filter filter,
                                                     subscribe_options options,
                                                     message_handler handler) {
    if (auto valid = validate_subscription(stream, filter, options); !valid) {
        return std::unexpected(std::move(valid.error()));
    }
    if (!handler) return fail(errc::bad_request, "subscribe needs a handler");
    return _core->subscribe(stream, std::move(filter), std::move(options), std::move(handler));
}

bool Client::flush(std::chrono::milliseconds wait_max) { return _core->flush(wait_max); }

void Client::close() noexcept { _core->close(); }

client_stats Client::stats() const { return _core->stats(); }

const server_info& Client::server() const noexcept { return _core->server(); }

}  // namespace nagare::client
