// admin_session: a blocking connection for stream and consumer admin from
// tools (the `nagare stream` and `nagare consumer` commands): connect, Hello,
// then one request at a time. Not for the data path: publish and subscribe
// with Client.
//
// One thread at a time.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nagare/client.h"
#include "protocol/frame.h"

namespace nagare::client {

// A durable consumer's definition and state (AdminResult.consumers[i]).
struct consumer_status {
    std::string stream;
    std::string name;
    std::string project;                // empty: every project
    std::vector<std::string> subjects;  // empty: every subject
    ack_policy ack = ack_policy::explicit_ack;
    std::uint32_t ack_wait_ms = 0;
    std::uint32_t max_deliver = 0;
    std::uint32_t max_inflight = 0;
    bool ordered = false;
    // Per partition, the offset below which every message is settled.
    std::vector<std::pair<partition_id, nagare::offset>> ack_floors;
    std::uint64_t pending = 0;        // delivered, not yet settled
    std::uint64_t redelivered = 0;    // deliveries with delivery_count > 1
    std::uint64_t dead_lettered = 0;  // copied to $dlq.<stream>.<consumer>
    std::uint64_t terminated = 0;     // settled by term
};

class admin_session {
public:
    [[nodiscard]] static std::expected<std::unique_ptr<admin_session>, error> connect(
        std::string_view url, std::string_view token,
        std::chrono::milliseconds timeout = std::chrono::seconds(5));
    ~admin_session();
    admin_session(const admin_session&) = delete;
    admin_session& operator=(const admin_session&) = delete;

    // Sends `request` (its request_id is replaced) and waits for the AdminResult.
    // A result carrying an error code is returned as that error.
    [[nodiscard]] std::expected<std::unique_ptr<protocol::fb::AdminResultT>, error> request(
        protocol::fb::AdminT request);

    // Durable consumers (CONSUMER_LIST, CONSUMER_INFO, CONSUMER_DELETE).
    // Errors: the broker's (NO_SUCH_STREAM, NO_SUCH_CONSUMER, NOT_AUTHORIZED).
    [[nodiscard]] std::expected<std::vector<consumer_status>, error> consumer_list(
        std::string_view stream);
    [[nodiscard]] std::expected<consumer_status, error> consumer_info(std::string_view stream,
                                                                      std::string_view name);
    [[nodiscard]] std::expected<void, error> consumer_delete(std::string_view stream,
                                                             std::string_view name);

private:
    explicit admin_session(int fd, std::chrono::milliseconds timeout) : _fd(fd), _timeout(timeout) {}
    [[nodiscard]] std::expected<std::unique_ptr<protocol::fb::FrameT>, error> next_frame();
    [[nodiscard]] std::expected<void, error> send(std::span<const std::byte> bytes);

    int _fd;
    std::chrono::milliseconds _timeout;
    std::uint64_t _next_request_id = 1;
    protocol::frame_decoder _decoder;
    std::vector<std::unique_ptr<protocol::fb::FrameT>> _frames;
};

}  // namespace nagare::client
