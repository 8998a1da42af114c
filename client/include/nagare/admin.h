// admin_session: a blocking connection for stream admin from tools (the
// `nagare stream` commands): connect, Hello, then one request at a time.
// Not for the data path: publish with Client.
//
// One thread at a time.
#pragma once

#include <chrono>
#include <expected>
#include <memory>
#include <string_view>

#include "nagare/client.h"
#include "protocol/frame.h"

namespace nagare::client {

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
