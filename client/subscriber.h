// subscriber: the I/O thread's side of a client's subscriptions, all on the
// session to the url's port.
//
// Each loop turn the client core hands it new subscriptions (adopt) and, when
// something changed, lets it write frames (service): Subscribe for each
// subscription not yet subscribed on this connection, the queued ack verbs as
// one Ack frame per subscription, kind (and nak delay) and at most
// ack_positions_per_frame_max positions, and Unsubscribe for those being
// closed. Frames from the server arrive through on_sub_ok, on_deliver and
// on_error; a lost connection through on_connection_lost.
//
// Invariants:
// - A subscription is in _subs from adopt() until it is finished (closed by
//   its owner, refused by the broker, or the client closes); then it is
//   removed and its state told (subscription_state::finish).
// - wire == live only between this connection's SubOk and its loss.
// - The msg_id LRU holds the ids of the verbs ACK and TERM that were taken
//   from the queue; a delivery whose id it holds is acked (or termed) again
//   instead of reaching the handler.
//
// I/O thread only; no lock of its own. The handler runs with no lock held.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "client/msg_id_lru.h"
#include "client/subscription_state.h"
#include "protocol/frame.h"

namespace nagare::client::detail {

// Per partition, the offset an ephemeral subscription resumes at after a
// reconnect: SubOk's start, then the last delivered offset + 1.
class resume_positions {
public:
    // Raises the partition's resume offset to `next` (never lowers it). At
    // most resume_partitions_max partitions are tracked; more are ignored.
    void raise(std::uint32_t partition, std::uint64_t next) noexcept;
    [[nodiscard]] const std::vector<protocol::fb::PartitionPosition>& list() const noexcept {
        return _list;
    }

private:
    std::vector<protocol::fb::PartitionPosition> _list;
    std::size_t _last = 0;  // index of the last partition raised: deliveries come in runs
};

class subscriber {
public:
    using clock = std::chrono::steady_clock;

    subscriber();

    // Takes the subscriptions in `incoming` (which it empties).
    void adopt(std::vector<std::shared_ptr<subscription_state>>& incoming);

    // Drains queued verbs; when `ready`, appends frames to `out`; else drops
    // the verbs (counted). Closing subscriptions leave the list; their
    // owners are told by release_closed(), once `out` was written.
    void service(bool ready, std::vector<std::byte>& out, clock::time_point now);
    void release_closed() noexcept;

    void on_sub_ok(const protocol::fb::SubOk& ok);
    void on_deliver(const protocol::fb::Deliver& deliver, clock::time_point now);
    // An Error frame whose request_id is a subscription id.
    void on_error(std::uint64_t subscription_id, const error& why);
    // Every subscription must be subscribed again on the next connection.
    void on_connection_lost(clock::time_point now);
    // The client is closing: ends every subscription, with those in `incoming`.
    void shutdown(std::vector<std::shared_ptr<subscription_state>>& incoming);

    // Frames written by service() since the last call asked for another
    // service turn (re-acks of duplicates): the caller keeps servicing.
    [[nodiscard]] bool wants_service() const noexcept { return _wants_service; }
    [[nodiscard]] std::size_t size() const noexcept { return _subs.size(); }

private:
    enum class wire_state : std::uint8_t { unsent, awaiting_ok, live };

    struct live_subscription {
        explicit live_subscription(std::shared_ptr<subscription_state> s);

        std::shared_ptr<subscription_state> state;
        wire_state wire = wire_state::unsent;
        bool ever_sent = false;  // a Subscribe went out on some connection
        bool ever_live = false;  // a SubOk came on some connection
        bool closing = false;    // its owner asked to close it
        msg_id_lru lru;
        resume_positions resume;
        std::vector<queued_ack> outbox;  // taken from the queue, not yet sent
    };

    [[nodiscard]] live_subscription* find(std::uint64_t id) noexcept;
    // Moves queued verbs to the outbox; ACK and TERM ids enter the LRU.
    void drain(live_subscription& sub, clock::time_point now);
    void write_subscribe(live_subscription& sub, std::vector<std::byte>& out);
    void write_acks(live_subscription& sub, std::vector<std::byte>& out);
    void write_unsubscribe(const live_subscription& sub, std::vector<std::byte>& out);
    void drop_outbox(live_subscription& sub) noexcept;
    void deliver_one(live_subscription& sub, const protocol::fb::DeliverMessage& m, Message& msg,
                     clock::time_point now);

    std::vector<std::unique_ptr<live_subscription>> _subs;
    std::vector<std::shared_ptr<subscription_state>> _closed;  // to release_closed()
    protocol::frame_encoder _encoder;
    std::vector<protocol::fb::PartitionPosition> _positions;  // scratch
    std::vector<received_header> _headers;                    // scratch
    bool _wants_service = false;
};

}  // namespace nagare::client::detail
