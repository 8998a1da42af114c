// The C API (nagare/nagare_c.h) over nagare::client::Client. No exception
// crosses it: a failed allocation becomes NAGARE_INTERNAL.
#include <algorithm>
#include <cstring>
#include <future>
#include <new>
#include <string>

#include "nagare/client.h"
#include "nagare/nagare_c.h"

struct nagare_client {
    std::unique_ptr<nagare::client::Client> client;
};

namespace {

using nagare::client::errc;

static_assert(NAGARE_BAD_SUBJECT == static_cast<int>(errc::bad_subject));
static_assert(NAGARE_NOT_AUTHORIZED == static_cast<int>(errc::not_authorized));
static_assert(NAGARE_OVERLOADED == static_cast<int>(errc::overloaded));
static_assert(NAGARE_INTERNAL == static_cast<int>(errc::internal));
static_assert(NAGARE_UNAVAILABLE == static_cast<int>(nagare::client::errc_unavailable));
static_assert(NAGARE_CLOSED == static_cast<int>(nagare::client::errc_closed));

thread_local std::string last_error_message;

int fail(const nagare::client::error& e) {
    last_error_message = e.message;
    return static_cast<int>(e.code);
}

int fail(int code, const char* message) {
    last_error_message = message;
    return code;
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

const char* nagare_error_string(int code) {
    if (code < 0 || code > 0xffff) return "UNKNOWN";
    // Every name is a string literal: data() is NUL-terminated.
    return nagare::client::errc_name(static_cast<errc>(code)).data();
}

const char* nagare_last_error_message(void) { return last_error_message.c_str(); }

}  // extern "C"
