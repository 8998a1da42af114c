// An in-process fake nagare node for client tests: one thread, listening
// sockets on 127.0.0.1 (a main port and optionally one port per shard),
// blocking writes, frames through protocol/frame.h.
//
// It answers Hello with HelloOk (shard count and ports, streams) or refuses
// it (bad token, unsupported version, or "close without answering" on
// demand); stores Publish messages per (stream, partition) with dense
// offsets and dedup by msg_id (a repeat gets the first offset and
// duplicate=true); can delay or hold PubAcks, cut connections after a
// number of received messages, and answer one Publish with an Error.
// It records what a test needs to check: the store (with the port each
// message arrived on), received and duplicate counts, the largest number of
// messages it held unacknowledged on one connection, accept and drop times.
//
// Subscriptions: it answers Subscribe with SubOk (start positions from the
// options) or with Error (refuse_subscribe), or not at all
// (silent_subscribe); records every Subscribe, Ack and Unsubscribe, and
// delivers what a test hands to deliver() (or, with
// deliver_stored_on_subscribe, the stored messages that match the filter).
// Admin: CONSUMER_LIST, CONSUMER_INFO and CONSUMER_DELETE over the consumers
// of the options (unknown stream or consumer: the broker's codes).
//
// Every public method is thread-safe. The destructor stops the thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/errc.h"
#include "protocol/frame.h"

namespace nagare::client::testing {

using fake_clock = std::chrono::steady_clock;

struct fake_stream {
    std::string name;
    std::vector<std::string> subjects;
    std::uint32_t partitions = 4;
};

struct fake_options {
    std::size_t shard_ports = 0;       // extra listening ports, one per shard
    bool announce_shard_ports = true;  // false: HelloOk without shard_ports
    std::vector<fake_stream> streams{{"events", {}, 4}};
    std::string token;                             // non-empty: Hello must carry it
    bool refuse_version = false;                   // answer Hello with UNSUPPORTED_VERSION
    std::vector<std::size_t> drop_after_messages;  // cut the connection once this many were
                                                   // received (ascending, cumulative)
    std::chrono::milliseconds ack_delay{0};
    std::uint32_t max_payload_bytes = 0;    // HelloOk value; 0: default
    std::uint32_t max_pending_publish = 0;  // HelloOk value; 0: no limit
    std::string reject_project;             // entries of this project fail with STORAGE_FULL
    // Subscriptions.
    std::optional<protocol::errc> refuse_subscribe;  // answer Subscribe with Error(code)
    bool silent_subscribe = false;                   // never answer Subscribe
    std::vector<std::pair<std::uint32_t, std::uint64_t>> sub_ok_start_positions;
    std::uint64_t stream_epoch = 7;
    std::optional<protocol::errc> ack_error;   // answer every Ack with Error(code)
    bool deliver_stored_on_subscribe = false;  // deliver matching stored messages after SubOk
    // Durable consumers for the admin ops CONSUMER_LIST / INFO / DELETE.
    std::vector<protocol::fb::ConsumerInfoT> consumers;
};

struct fake_delivery {
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::string project = "p";
    std::string subject = "task.updated";
    std::string msg_id;
    std::uint32_t delivery_count = 1;
    std::uint64_t timestamp_ns = 0;
    std::string payload;
    std::vector<std::pair<std::string, std::string>> headers;
};

// A durable consumer as CONSUMER_INFO describes it: events/`name`, project
// proj-1, subjects task.* and order.>, ordered, ack floors 12 (partition 0)
// and 7 (partition 1), pending 3, redelivered 4, dead-lettered 1, terminated 2.
[[nodiscard]] protocol::fb::ConsumerInfoT sample_consumer(std::string name);

struct received_ack {
    std::uint64_t subscription_id = 0;
    protocol::fb::AckKind kind = protocol::fb::AckKind::ACK;
    std::uint32_t nak_delay_ms = 0;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> positions;
};

struct stored_message {
    std::string stream;
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::string project;
    std::string subject;
    std::string msg_id;
    std::string payload;
    std::vector<std::pair<std::string, std::string>> headers;
    std::uint16_t port = 0;  // the port it arrived on
};

class fake_server {
public:
    explicit fake_server(fake_options options = {});
    ~fake_server();
    fake_server(const fake_server&) = delete;
    fake_server& operator=(const fake_server&) = delete;

    [[nodiscard]] std::uint16_t port() const noexcept { return _main_port; }
    [[nodiscard]] const std::vector<std::uint16_t>& shard_ports() const noexcept {
        return _shard_port_list;
    }
    [[nodiscard]] std::string url() const;

    // Controls.
    void refuse_next_hellos(std::size_t count);  // close at Hello, no answer
    void drop_connections();                     // cut every client connection; returns once done
    void hold_acks(bool hold);                   // while held, nothing is answered
    // Send Error {request_id 0, code} on every connection, keeping them open; returns once sent.
    void send_connection_error(protocol::errc code);
    // Send Ping {nonce} on every connection; returns once sent.
    void send_ping(std::uint64_t nonce);
    // Answer the Publish frame with this 0-based index (over all connections) with Error.
    void inject_error(std::size_t publish_index, protocol::errc code);
    // Answer later Subscribes with Error(code); nullopt: with SubOk again.
    void refuse_subscribes(std::optional<protocol::errc> code);
    // Sends one Deliver frame with `messages` on the connection where the
    // subscription is live; returns once sent. False: no such subscription.
    bool deliver(std::uint64_t subscription_id, const std::vector<fake_delivery>& messages);

    // Observations.
    [[nodiscard]] std::vector<stored_message> store() const;
    [[nodiscard]] std::size_t stored() const;
    [[nodiscard]] std::size_t received_messages() const;  // counting re-sends
    [[nodiscard]] std::size_t publish_frames() const;
    [[nodiscard]] std::size_t duplicates() const;
    [[nodiscard]] std::size_t max_unacked() const;  // on one connection, at any time
    [[nodiscard]] std::size_t hellos() const;
    [[nodiscard]] std::size_t connections() const;  // open now
    [[nodiscard]] std::vector<std::string> errored_msg_ids() const;
    [[nodiscard]] std::vector<fake_clock::time_point> accept_times() const;
    [[nodiscard]] std::vector<fake_clock::time_point> drop_times() const;
    [[nodiscard]] std::vector<std::string> received_msg_ids() const;  // in arrival order
    [[nodiscard]] std::vector<std::uint64_t> pong_nonces() const;
    [[nodiscard]] std::vector<protocol::fb::SubscribeT> subscribes() const;  // in arrival order
    [[nodiscard]] std::vector<received_ack> acks() const;                    // in arrival order
    [[nodiscard]] std::vector<std::uint64_t> unsubscribes() const;
    // Every frame type received after Hello, in arrival order (over all connections).
    [[nodiscard]] std::vector<protocol::fb::Body> frame_log() const;
    // Subscriptions live now (subscribed, not unsubscribed, connection open).
    [[nodiscard]] std::size_t live_subscriptions() const;

private:
    struct connection;

    void run();
    void accept_on(int listener, std::uint16_t port);
    bool read_from(connection& c);  // false: close it
    bool on_frame(connection& c, const protocol::frame_view& frame, fake_clock::time_point now);
    bool on_publish(connection& c, const protocol::fb::Publish& publish,
                    fake_clock::time_point now);
    void on_subscribe(connection& c, const protocol::fb::Subscribe& subscribe);
    void on_ack(connection& c, const protocol::fb::Ack& ack);
    void on_admin(connection& c, const protocol::fb::Admin& admin);
    void deliver_stored(connection& c, const protocol::fb::SubscribeT& subscribe);
    void send_deliveries();
    void send_due_replies(fake_clock::time_point now);
    void close_connection(std::size_t index, bool by_server);
    [[nodiscard]] int poll_wait_ms(fake_clock::time_point now) const;
    // What `f` returns, computed under the mutex; read(field): a copy of it.
    template <class F>
    auto locked(F&& f) const {
        std::lock_guard lock(_mutex);
        return f();
    }
    template <class T>
    T read(const T& field) const {
        return locked([&] { return field; });
    }

    const fake_options _options;
    int _wake_pipe[2] = {-1, -1};
    std::vector<int> _listeners;  // [0]: main port, then one per shard
    std::vector<std::uint16_t> _listener_ports;
    std::uint16_t _main_port = 0;
    std::vector<std::uint16_t> _shard_port_list;

    mutable std::mutex _mutex;
    std::condition_variable _controls_done;  // _drop_all / _connection_error handled
    bool _stop = false;
    std::vector<std::unique_ptr<connection>> _connections;
    std::map<std::pair<std::string, std::uint32_t>, std::uint64_t> _next_offset;
    std::map<std::string, std::size_t> _dedup;  // stream + '\n' + msg_id -> index in _store
    std::vector<stored_message> _store;
    std::size_t _received = 0;
    std::size_t _publish_frames = 0;
    std::size_t _duplicates = 0;
    std::size_t _max_unacked = 0;
    std::size_t _hellos = 0;
    std::size_t _refuse_hellos = 0;
    std::size_t _next_drop = 0;  // index into _options.drop_after_messages
    bool _hold = false;
    std::optional<std::pair<std::size_t, protocol::errc>> _inject;
    bool _drop_all = false;
    std::optional<protocol::errc> _connection_error;
    std::optional<std::uint64_t> _ping;
    struct delivery_request {
        std::uint64_t subscription_id = 0;
        std::vector<std::byte> frame;
        std::optional<bool> sent;  // set by the server thread
    };
    std::vector<delivery_request*> _deliveries;
    std::vector<protocol::fb::SubscribeT> _subscribes;
    std::vector<received_ack> _acks;
    std::vector<std::uint64_t> _unsubscribes;
    std::vector<protocol::fb::Body> _frame_log;
    std::optional<protocol::errc> _refuse_subscribe;
    std::vector<protocol::fb::ConsumerInfoT> _consumers;
    std::vector<std::uint64_t> _pongs;
    std::vector<std::string> _errored_ids;
    std::vector<std::string> _received_ids;
    std::vector<fake_clock::time_point> _accept_times;
    std::vector<fake_clock::time_point> _drop_times;

    std::thread _thread;
};

}  // namespace nagare::client::testing
