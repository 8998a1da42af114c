// The C API (nagare/nagare_c.h) over nagare::client::Client. No exception
// crosses it: a failed allocation becomes NAGARE_INTERNAL.
#include <algorithm>
#include <array>
#include <cstring>
#include <future>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "client/subscription_state.h"
#include "nagare/client.h"
#include "nagare/nagare_c.h"

struct nagare_client {
    std::unique_ptr<nagare::client::Client> client;
};

namespace {

// What the C callback and the ack functions share. The handler holds it too,
// so it outlives a nagare_unsubscribe called from the callback itself.
struct c_subscription_data {
    nagare_message_fn on_message = nullptr;
    void* user_data = nullptr;
    nagare_subscription* handle = nullptr;
    std::vector<nagare_header> headers;  // I/O thread: scratch for one message

    // The msg_id keys of recent deliveries by position, so an ack by position
    // also enters the msg_id LRU. Direct-mapped: a position whose entry was
    // overwritten is acked without its key (a redelivery then reaches the
    // callback again, which at-least-once allows).
    struct recent {
        std::uint32_t partition = 0;
        std::uint64_t offset = 0;
        nagare::client::msg_key key;
        bool used = false;
    };
    static constexpr std::size_t recent_count = 4096;
    std::mutex recent_mutex;
    std::array<recent, recent_count> recent_keys{};

    static std::size_t slot(std::uint32_t partition, std::uint64_t offset) noexcept {
        return static_cast<std::size_t>((offset * 0x9e3779b97f4a7c15ULL) ^ partition) %
               recent_count;
    }
    void remember(std::uint32_t partition, std::uint64_t offset, nagare::client::msg_key key) {
        std::lock_guard lock(recent_mutex);
        recent_keys[slot(partition, offset)] = {partition, offset, key, true};
    }
    std::optional<nagare::client::msg_key> key_of(std::uint32_t partition, std::uint64_t offset) {
        std::lock_guard lock(recent_mutex);
        const auto& r = recent_keys[slot(partition, offset)];
        if (!r.used || r.partition != partition || r.offset != offset) return std::nullopt;
        return r.key;
    }
};

}  // namespace

struct nagare_subscription {
    nagare::client::Subscription subscription;
    std::shared_ptr<c_subscription_data> data;
};

namespace {

using nagare::client::errc;

static_assert(NAGARE_BAD_SUBJECT == static_cast<int>(errc::bad_subject));
static_assert(NAGARE_NOT_AUTHORIZED == static_cast<int>(errc::not_authorized));
static_assert(NAGARE_OVERLOADED == static_cast<int>(errc::overloaded));
static_assert(NAGARE_INTERNAL == static_cast<int>(errc::internal));
static_assert(NAGARE_UNAVAILABLE == static_cast<int>(nagare::client::errc_unavailable));
static_assert(NAGARE_CLOSED == static_cast<int>(nagare::client::errc_closed));
static_assert(NAGARE_DELIVER_NEW == static_cast<int>(nagare::client::deliver_policy::new_only));
static_assert(NAGARE_DELIVER_LAST_PER_SUBJECT ==
              static_cast<int>(nagare::client::deliver_policy::last_per_subject));

thread_local std::string last_error_message;

int fail(const nagare::client::error& e) {
    last_error_message = e.message;
    return static_cast<int>(e.code);
}

int fail(int code, const char* message) {
    last_error_message = message;
    return code;
}

int succeed() {
    last_error_message.clear();
    return NAGARE_OK;
}

const char* or_empty(const char* text) { return text == nullptr ? "" : text; }

nagare::client::subscribe_options options_from_c(const nagare_subscribe_options& o) {
    namespace nc = nagare::client;
    nc::subscribe_options out;
    out.consumer = or_empty(o.consumer);
    out.deliver = static_cast<nc::deliver_policy>(o.deliver);
    out.start_offset = nagare::offset{o.start_offset};
    out.start_time_ns = o.start_time_ns;
    out.ack = o.ack == NAGARE_ACK_NONE ? nc::ack_policy::none : nc::ack_policy::explicit_ack;
    out.ack_wait = std::chrono::milliseconds{o.ack_wait_ms};
    out.max_deliver = o.max_deliver;
    for (std::size_t i = 0; i < o.backoff_count; ++i) {
        out.backoff.emplace_back(o.backoff_ms[i]);
    }
    out.max_inflight = o.max_inflight;
    out.ordered = o.ordered != 0;
    if (o.subscribe_timeout_ms > 0) {
        out.subscribe_timeout = std::chrono::milliseconds{o.subscribe_timeout_ms};
    }
    return out;
}

// The C callback for one message, on the I/O thread.
void call_c(c_subscription_data& data, const nagare::client::Message& m) {
    data.headers.clear();
    for (const auto& h : m.headers()) {
        // FlatBuffers strings end with a NUL: the views are C strings.
        data.headers.push_back({h.key.data(), h.key.size(), h.value.data(), h.value.size()});
    }
    data.remember(m.partition().value, m.offset().value,
                  nagare::client::detail::subscription_access::key(m.handle()));
    const nagare_message message{.subscription = data.handle,
                                 .partition = m.partition().value,
                                 .offset = m.offset().value,
                                 .project = m.project().data(),
                                 .project_bytes = m.project().size(),
                                 .subject = m.subject().data(),
                                 .subject_bytes = m.subject().size(),
                                 .msg_id = m.msg_id().data(),
                                 .msg_id_bytes = m.msg_id().size(),
                                 .timestamp_ns = m.timestamp_ns(),
                                 .delivery_count = m.delivery_count(),
                                 .headers = data.headers.data(),
                                 .header_count = data.headers.size(),
                                 .payload = m.payload().data(),
                                 .payload_bytes = m.payload().size()};
    data.on_message(&message, data.user_data);  // may free data.handle: touch nothing after
}

int queue_verb(nagare_subscription* s, nagare::protocol::fb::AckKind kind, std::uint32_t partition,
               std::uint64_t offset, std::uint32_t delay_ms) {
    if (s == nullptr) return fail(NAGARE_BAD_REQUEST, "subscription is required");
    const auto& state = nagare::client::detail::subscription_access::state(s->subscription);
    if (!state) return fail(NAGARE_CLOSED, "the subscription is closed");
    try {
        const auto key = s->data->key_of(partition, offset);
        auto queued =
            state->queue(kind, std::chrono::milliseconds{delay_ms}, nagare::partition_id{partition},
                         nagare::offset{offset}, key ? &*key : nullptr);
        if (!queued) return fail(queued.error());
        return succeed();
    } catch (const std::bad_alloc&) {
        return fail(NAGARE_INTERNAL, "out of memory");
    }
}

}  // namespace

extern "C" {

int nagare_connect(const char* url, const char* token, nagare_client** out) {
    if (url == nullptr || out == nullptr)
        return fail(NAGARE_BAD_REQUEST, "url and out are required");
    *out = nullptr;
    try {
        nagare::client::options opts;
        if (token != nullptr) opts.token = token;
        opts.client_name = "nagare-c";
        auto connected = nagare::client::Client::connect(url, std::move(opts));
        if (!connected) return fail(connected.error());
        *out = new nagare_client{std::move(*connected)};
        last_error_message.clear();
        return NAGARE_OK;
    } catch (const std::bad_alloc&) {
        return fail(NAGARE_INTERNAL, "out of memory");
    } catch (const std::system_error& e) {
        return fail(NAGARE_INTERNAL, e.what());
    }
}

int nagare_publish(nagare_client* client, const char* project, const char* subject,
                   const void* payload, size_t payload_bytes, const char* msg_id,
                   nagare_position* out) {
    if (client == nullptr || project == nullptr || subject == nullptr ||
        (payload == nullptr && payload_bytes != 0)) {
        return fail(NAGARE_BAD_REQUEST, "client, project, subject and payload are required");
    }
    try {
        nagare::client::publish_options opts;
        if (msg_id != nullptr) {
            opts.msg_id = msg_id;
            if (opts.msg_id.empty()) return fail(NAGARE_BAD_MSG_ID, "empty msg_id");
        }
        const auto bytes =
            std::span<const std::byte>(static_cast<const std::byte*>(payload), payload_bytes);
        auto result = client->client->publish(project, subject, bytes, opts).get();
        if (!result) return fail(result.error());
        if (out != nullptr) {
            const auto length =
                std::min(result->stream.size(), std::size_t{NAGARE_STREAM_BYTES_MAX});
            std::memcpy(out->stream, result->stream.data(), length);
            out->stream[length] = '\0';
            out->partition = result->partition.value;
            out->offset = result->offset.value;
            out->duplicate = result->duplicate ? 1 : 0;
        }
        last_error_message.clear();
        return NAGARE_OK;
    } catch (const std::bad_alloc&) {
        return fail(NAGARE_INTERNAL, "out of memory");
    } catch (const std::future_error& e) {
        return fail(NAGARE_INTERNAL, e.what());
    }
}

int nagare_flush(nagare_client* client, int64_t timeout_ms) {
    if (client == nullptr) return fail(NAGARE_BAD_REQUEST, "client is required");
    const auto wait =
        timeout_ms < 0 ? std::chrono::milliseconds::max() : std::chrono::milliseconds{timeout_ms};
    if (!client->client->flush(wait)) return fail(NAGARE_OVERLOADED, "flush timed out");
    last_error_message.clear();
    return NAGARE_OK;
}

void nagare_close(nagare_client* client) {
    if (client == nullptr) return;
    client->client->close();
    delete client;
}

int nagare_subscribe(nagare_client* client, const char* stream,
                     const nagare_subscribe_options* options, nagare_message_fn on_message,
                     void* user_data, nagare_subscription** out) {
    if (client == nullptr || stream == nullptr || on_message == nullptr || out == nullptr) {
        return fail(NAGARE_BAD_REQUEST, "client, stream, on_message and out are required");
    }
    *out = nullptr;
    const nagare_subscribe_options none{};
    const auto& o = options != nullptr ? *options : none;
    if ((o.subjects == nullptr && o.subject_count != 0) ||
        (o.backoff_ms == nullptr && o.backoff_count != 0)) {
        return fail(NAGARE_BAD_REQUEST, "subjects and backoff_ms must hold their counts");
    }
    if (o.deliver < NAGARE_DELIVER_ALL || o.deliver > NAGARE_DELIVER_LAST_PER_SUBJECT ||
        (o.ack != NAGARE_ACK_EXPLICIT && o.ack != NAGARE_ACK_NONE)) {
        return fail(NAGARE_BAD_REQUEST, "unknown deliver or ack policy");
    }
    try {
        nagare::client::subscription_filter filter;
        filter.project = or_empty(o.project);
        for (std::size_t i = 0; i < o.subject_count; ++i) {
            filter.subjects.emplace_back(or_empty(o.subjects[i]));
        }
        auto handle = std::make_unique<nagare_subscription>();
        handle->data = std::make_shared<c_subscription_data>();
        handle->data->on_message = on_message;
        handle->data->user_data = user_data;
        handle->data->handle = handle.get();
        auto subscribed = client->client->subscribe(
            stream, std::move(filter), options_from_c(o),
            [data = handle->data](const nagare::client::Message& m) { call_c(*data, m); });
        if (!subscribed) return fail(subscribed.error());
        handle->subscription = std::move(*subscribed);
        *out = handle.release();
        return succeed();
    } catch (const std::bad_alloc&) {
        return fail(NAGARE_INTERNAL, "out of memory");
    }
}

int nagare_ack(nagare_subscription* subscription, uint32_t partition, uint64_t offset) {
    return queue_verb(subscription, nagare::protocol::fb::AckKind::ACK, partition, offset, 0);
}

int nagare_nak(nagare_subscription* subscription, uint32_t partition, uint64_t offset,
               uint32_t delay_ms) {
    return queue_verb(subscription, nagare::protocol::fb::AckKind::NAK, partition, offset,
                      delay_ms);
}

int nagare_in_progress(nagare_subscription* subscription, uint32_t partition, uint64_t offset) {
    return queue_verb(subscription, nagare::protocol::fb::AckKind::IN_PROGRESS, partition, offset,
                      0);
}

int nagare_term(nagare_subscription* subscription, uint32_t partition, uint64_t offset) {
    return queue_verb(subscription, nagare::protocol::fb::AckKind::TERM, partition, offset, 0);
}

void nagare_unsubscribe(nagare_subscription* subscription) {
    if (subscription == nullptr) return;
    subscription->subscription.unsubscribe();
    delete subscription;
}

const char* nagare_error_string(int code) {
    if (code < 0 || code > 0xffff) return "UNKNOWN";
    // Every name is a string literal: data() is NUL-terminated.
    return nagare::client::errc_name(static_cast<errc>(code)).data();
}

const char* nagare_last_error_message(void) { return last_error_message.c_str(); }

}  // extern "C"
