// Helpers shared by the client tests: options with short delays, bounded waits.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "fake_server.h"
#include "nagare/client.h"
#include "tests/wait_until.h"

namespace nagare::client::testing {

using namespace std::chrono_literals;

// Short timeouts and backoff, no jitter: tests can reason about delays.
inline options fast_options() {
    options o;
    o.client_name = "client-test";
    o.connect_timeout = 2s;
    o.reconnect_backoff = {10ms, 20ms};
    o.reconnect_jitter = 0;
    return o;
}

inline std::unique_ptr<Client> connect_or_fail(const fake_server& server,
                                               options o = fast_options()) {
    auto connected = Client::connect(server.url(), std::move(o));
    EXPECT_TRUE(connected.has_value()) << (connected ? "" : connected.error().message);
    return connected ? std::move(*connected) : nullptr;
}

// Closes the client when the test's scope ends, even on an early ASSERT
// return: declared after the state its callbacks touch, it runs first.
struct close_guard {
    explicit close_guard(Client* c) noexcept : client(c) {}
    close_guard(const close_guard&) = delete;
    close_guard& operator=(const close_guard&) = delete;
    ~close_guard() {
        if (client != nullptr) client->close();
    }
    Client* client;
};

using nagare::testing::wait_until;

// The future's value, or an INTERNAL error when it is not ready within `limit`.
template <class T>
T get_within(std::future<T>& future, std::chrono::milliseconds limit = 10s) {
    if (future.wait_for(limit) != std::future_status::ready) {
        if constexpr (std::is_same_v<T, publish_result>) {
            return std::unexpected(error{errc::internal, "future not ready in time"});
        } else {
            ADD_FAILURE() << "future not ready in time";
            return T{};
        }
    }
    return future.get();
}

}  // namespace nagare::client::testing
