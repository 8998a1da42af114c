// One client connection's protocol state (DESIGN.md section 6): Hello
// first, then pipelined requests. Publishes are validated here and handed
// message by message to the shard (session_host), which routes them to
// their partition's owner; acks come back through resolve() in any order
// and leave as PubAcks in request order (publish_tracker).
//
// Flow control: when the pending messages reach max_pending_publish, or
// the shard cannot take a message now (busy), the session stops reading
// its socket; frames already received are held (never dropped) and
// replayed from retry(). A framing error sends an Error frame and closes.
//
// Owned by the shard that accepted the socket; every call is made on it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "broker/config.h"
#include "broker/consumer.h"
#include "broker/io/tcp_connection.h"
#include "broker/partition.h"
#include "broker/publish_tracker.h"
#include "broker/streams.h"
#include "protocol/frame.h"

namespace nagare::broker {

class session;

// One live Subscribe of a connection (the consumer itself lives on the
// shards that own the stream's partitions; see broker/consumer.h).
struct session_subscription {
    std::uint64_t id = 0;
    subscriber_address address;  // this session and subscription, as the owners know it
    std::string stream;
    std::uint64_t stream_epoch = 0;
    std::uint32_t partitions = 0;
    bool ack_none = false;
    bool ready = false;                 // SubOk sent
    std::uint32_t replies_waiting = 0;  // owner shards yet to attach it
    protocol::errc error = protocol::errc::none;
    std::string error_message;
    std::vector<std::uint64_t> handles;  // [shard]: consumer handle there, 0 when none
    std::vector<std::pair<std::uint32_t, std::uint64_t>> start_positions;  // (partition, offset)
};

struct session_limits {
    std::size_t max_frame_bytes = protocol::frame_bytes_max_default;
    std::size_t max_payload_bytes = protocol::payload_bytes_max_default;
    std::uint32_t max_pending_publish = 4096;
    std::uint64_t ping_interval_ns = 15'000'000'000;
    std::size_t send_queue_bytes = 1u << 20;
};

// What a session needs from its shard.
class session_host {
public:
    [[nodiscard]] virtual const node_config& config() const noexcept = 0;
    [[nodiscard]] virtual const stream_table_ptr& streams() const noexcept = 0;
    [[nodiscard]] virtual std::span<const std::byte> hello_ok(protocol::frame_encoder& encoder) = 0;
    // Routes one validated message. busy: nothing was done; retry later.
    [[nodiscard]] virtual partition::accepted publish(const stream_info& stream,
                                                      const protocol::message_ref& message,
                                                      const publish_ticket& ticket) noexcept = 0;
    virtual void admin(session& from, const protocol::fb::Admin& request) = 0;
    virtual void subscribe(session& from, const protocol::fb::Subscribe& request) = 0;
    virtual void ack(session& from, const protocol::fb::Ack& request) = 0;
    virtual void unsubscribe(session& from, std::uint64_t subscription_id) = 0;
    // A Deliver frame handed to deliver() goes back to its owner (taken or not).
    virtual void return_frame(deliver_frame* frame) noexcept = 0;
    // The session stalled (busy or full): call retry() after the next turn.
    virtual void stalled(session& s) noexcept = 0;
    virtual void closed(session& s) noexcept = 0;
    [[nodiscard]] virtual std::uint64_t now_ns() const noexcept = 0;

protected:
    ~session_host() = default;
};

class session final : public io::connection_handler {
public:
    session(session_host& host, io::ring& ring, io::buffer_ring& buffers,
            const session_limits& limits, std::uint32_t slot);

    // REQUIRES: idle(). Takes the fd.
    void open(int fd) noexcept;
    [[nodiscard]] bool idle() const noexcept { return _connection.idle(); }
    [[nodiscard]] std::uint32_t slot() const noexcept { return _slot; }
    [[nodiscard]] std::uint32_t generation() const noexcept { return _generation; }

    // An outcome for ticket index `ticket_index` of this session.
    void resolve(std::uint32_t ticket_index, const protocol::fb::PubAckEntry& entry) noexcept;
    // Replays held frames (after a stall); true when nothing is held any more.
    bool retry() noexcept;
    // Pings an idle peer; closes one that missed two pings.
    void tick(std::uint64_t now_ns) noexcept;
    // Sends a frame, or closes the connection if the queue cannot take it.
    void send_or_close(std::span<const std::byte> frame) noexcept;
    // Queues a Deliver frame on the connection, or holds it while the
    // connection's send queue is over half full; the frame goes back through
    // the host either way once queued, refused or the connection closes.
    void deliver(deliver_frame* frame) noexcept;
    // Sends an Error about one request (or subscription).
    void fail_request(std::uint64_t request_id, protocol::errc code, std::string_view message) noexcept;
    [[nodiscard]] std::vector<session_subscription>& subscriptions() noexcept { return _subscriptions; }
    [[nodiscard]] session_subscription* find_subscription(std::uint64_t id) noexcept;
    void close() noexcept { _connection.close(); }
    void close_after_send() noexcept { _connection.close_after_send(); }
    [[nodiscard]] bool is_open() const noexcept { return _connection.is_open(); }
    [[nodiscard]] protocol::frame_encoder& encoder() noexcept { return _encoder; }
    [[nodiscard]] const token_config* token() const noexcept { return _token; }
    [[nodiscard]] std::size_t pending_messages() const noexcept {
        return _tracker.pending_messages();
    }

private:
    void on_data(std::span<const std::byte> bytes) noexcept override;
    void on_send_space() noexcept override;
    void on_closed(int error) noexcept override;

    // false: stop handing frames (stalled or closing).
    bool handle_frame(const protocol::frame_view& frame) noexcept;
    bool handle_hello(const protocol::fb::Hello& hello) noexcept;
    bool handle_publish(const protocol::fb::Publish& publish) noexcept;
    bool publish_from(const protocol::fb::Publish& publish, std::uint32_t index) noexcept;
    void fail(protocol::errc code, std::string_view message, bool close_after) noexcept;
    void hold(std::span<const std::byte> frame) noexcept;
    void send_ready_acks() noexcept;
    void update_reading() noexcept;
    [[nodiscard]] bool may_publish(std::string_view subject) const noexcept;

    session_host& _host;
    session_limits _limits;
    std::uint32_t _slot;
    std::uint32_t _generation = 0;
    io::tcp_connection _connection;
    protocol::frame_decoder _decoder;
    protocol::frame_encoder _encoder;
    publish_tracker _tracker;
    const token_config* _token = nullptr;
    bool _hello_done = false;
    bool _closing = false;
    bool _replaying = false;  // inside retry(): frames come from _held
    // Frames received but not yet handled, whole and verified, back to back.
    std::vector<std::byte> _held;
    std::size_t _held_consumed = 0;
    // Progress inside the first held Publish: its ticket base and next message.
    std::optional<std::uint32_t> _resume_base;
    std::uint32_t _resume_index = 0;
    std::uint64_t _last_heard_ns = 0;
    std::uint32_t _pings_unanswered = 0;
    std::vector<protocol::header_ref> _headers;  // scratch for one message
    std::vector<session_subscription> _subscriptions;
    std::vector<deliver_frame*> _held_frames;  // Deliver frames waiting for send space
    void send_held_frames() noexcept;
};

}  // namespace nagare::broker
