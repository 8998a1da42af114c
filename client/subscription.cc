// subscription_state, and the public Subscription / ack_handle over it.
#include <string>

#include "client/client_core.h"
#include "client/subscription_state.h"
#include "protocol/assert.h"
#include "protocol/frame.h"

namespace nagare::client {

namespace fb = protocol::fb;

namespace detail {

namespace {

error closed_error() { return {errc_closed, "the subscription is closed"}; }

}  // namespace

subscription_state::subscription_state(std::uint64_t sub_id, std::string stream_name,
                                       subscription_filter sub_filter,
                                       subscribe_options sub_options, message_handler on_message,
                                       client_core& core)
    : id(sub_id),
      stream(std::move(stream_name)),
      filter(std::move(sub_filter)),
      options(std::move(sub_options)),
      handler(std::move(on_message)),
      _core(&core) {}

std::expected<void, error> subscription_state::queue(fb::AckKind kind,
                                                     std::chrono::milliseconds delay,
                                                     partition_id partition, nagare::offset offset,
                                                     const msg_key* key) {
    if (options.ack == ack_policy::none) {
        return std::unexpected(error{errc::bad_request, "the subscription's ack policy is none"});
    }
    std::lock_guard lock(_mutex);
    if (_core == nullptr || _closing || _phase == phase::ended) {
        return std::unexpected(closed_error());
    }
    const bool first = _acks.empty();
    _acks.push_back({kind, static_cast<std::uint32_t>(delay.count()), partition, offset,
                     key != nullptr ? *key : msg_key{}, key != nullptr});
    count.acks_queued.fetch_add(1, std::memory_order_relaxed);
    // Later verbs find the queue non-empty: the I/O thread has been told.
    if (first) _core->notify_subscriptions();
    return {};
}

void subscription_state::unsubscribe() noexcept {
    std::unique_lock lock(_mutex);
    if (_core == nullptr || _finished) {
        _phase = phase::ended;
        return;
    }
    if (!_closing) {
        _closing = true;
        _stopping.store(true, std::memory_order_release);
        _phase = phase::ended;
        _core->notify_subscriptions();
    }
    if (_core->on_io_thread()) return;  // from a handler: it is the one running
    // The I/O thread lets go within a loop turn, unless a handler of this
    // subscription is running: that one must return first (no bound: the
    // guarantee is that no handler call outlives this).
    _changed.wait(lock, [&] { return (_finished || _core == nullptr) && !_in_handler; });
}

std::vector<std::pair<partition_id, nagare::offset>> subscription_state::start_positions() const {
    std::lock_guard lock(_mutex);
    return _start_positions;
}

subscription_stats subscription_state::stats() const {
    subscription_stats out;
    const auto get = [](const std::atomic<std::uint64_t>& v) {
        return v.load(std::memory_order_relaxed);
    };
    out.delivered = get(count.delivered);
    out.redelivered = get(count.redelivered);
    out.duplicates_dropped = get(count.duplicates_dropped);
    out.acks_queued = get(count.acks_queued);
    out.acks_sent = get(count.acks_sent);
    out.ack_frames_sent = get(count.ack_frames_sent);
    out.acks_dropped = get(count.acks_dropped);
    out.resubscribes = get(count.resubscribes);
    out.server_errors = get(count.server_errors);
    out.dedup_evicted_early = get(count.dedup_evicted_early);
    out.stream_epoch = get(count.stream_epoch);
    std::lock_guard lock(_mutex);
    out.active = _phase == phase::active && !_closing;
    return out;
}

std::expected<void, error> subscription_state::wait_subscribed() {
    std::unique_lock lock(_mutex);
    _changed.wait_for(lock, options.subscribe_timeout,
                      [&] { return _phase != phase::subscribing; });
    if (_phase == phase::active) return {};
    if (_phase == phase::ended) return std::unexpected(_error);
    // Timed out: the I/O thread withdraws it (Unsubscribe, should SubOk still come).
    _phase = phase::ended;
    _closing = true;
    _stopping.store(true, std::memory_order_release);
    if (_core != nullptr) _core->notify_subscriptions();
    return std::unexpected(
        error{errc_unavailable, "no answer to Subscribe within " +
                                    std::to_string(options.subscribe_timeout.count()) + " ms"});
}

bool subscription_state::take_acks(std::vector<queued_ack>& into) {
    std::lock_guard lock(_mutex);
    into.insert(into.end(), _acks.begin(), _acks.end());
    _acks.clear();
    return _closing;
}

void subscription_state::on_subscribed(
    std::uint64_t stream_epoch, std::vector<std::pair<partition_id, nagare::offset>> starts) {
    count.stream_epoch.store(stream_epoch, std::memory_order_relaxed);
    std::lock_guard lock(_mutex);
    if (_phase != phase::subscribing) return;
    _phase = phase::active;
    _start_positions = std::move(starts);
    _changed.notify_all();
}

void subscription_state::on_refused(const error& why) {
    std::lock_guard lock(_mutex);
    if (_phase == phase::subscribing) _error = why;
    _phase = phase::ended;
    _closing = true;
    _stopping.store(true, std::memory_order_release);
    _changed.notify_all();
}

bool subscription_state::begin_delivery() {
    std::lock_guard lock(_mutex);
    if (_closing) return false;
    _in_handler = true;
    return true;
}

void subscription_state::end_delivery() {
    std::lock_guard lock(_mutex);
    _in_handler = false;
    if (_closing) _changed.notify_all();
}

void subscription_state::finish() {
    std::lock_guard lock(_mutex);
    if (_phase == phase::subscribing) {
        _error = error{errc_closed, "the client closed before the broker answered Subscribe"};
    }
    _phase = phase::ended;
    _closing = true;
    _stopping.store(true, std::memory_order_release);
    _finished = true;
    _core = nullptr;
    _changed.notify_all();
}

void subscription_access::fill(Message& m, const fb::DeliverMessage& d, const msg_key& key,
                               std::span<const received_header> headers) noexcept {
    m._handle._partition = partition_id{d.partition()};
    m._handle._offset = nagare::offset{d.offset()};
    m._handle._msg_key = {key.low, key.high};
    m._project = protocol::view(d.project());
    m._subject = protocol::view(d.subject());
    m._msg_id = protocol::view(d.msg_id());
    m._timestamp_ns = d.timestamp_ns();
    m._delivery_count = d.delivery_count();
    m._headers = headers;
    m._payload = protocol::view(d.payload());
}

}  // namespace detail

namespace {

std::expected<void, error> queue_verb(const ack_handle& h, fb::AckKind kind,
                                      std::chrono::milliseconds delay) {
    const auto& state = detail::subscription_access::state(h);
    if (!state) return std::unexpected(error{errc::bad_request, "an empty ack_handle"});
    const auto key = detail::subscription_access::key(h);
    return state->queue(kind, delay, h.partition(), h.offset(), &key);
}

}  // namespace

std::expected<void, error> ack_handle::ack() const {
    return queue_verb(*this, fb::AckKind::ACK, {});
}

std::expected<void, error> ack_handle::nak(std::chrono::milliseconds delay) const {
    if (delay.count() < 0 || delay.count() > UINT32_MAX) {
        return std::unexpected(error{errc::bad_request, "nak delay must be in 0..2^32-1 ms"});
    }
    return queue_verb(*this, fb::AckKind::NAK, delay);
}

std::expected<void, error> ack_handle::in_progress() const {
    return queue_verb(*this, fb::AckKind::IN_PROGRESS, {});
}

std::expected<void, error> ack_handle::term() const {
    return queue_verb(*this, fb::AckKind::TERM, {});
}

Subscription::~Subscription() { unsubscribe(); }

Subscription& Subscription::operator=(Subscription&& other) noexcept {
    if (this != &other) {
        unsubscribe();
        _state = std::move(other._state);
    }
    return *this;
}

void Subscription::unsubscribe() noexcept {
    if (_state) _state->unsubscribe();
}

std::uint64_t Subscription::id() const noexcept { return _state ? _state->id : 0; }

std::vector<std::pair<partition_id, nagare::offset>> Subscription::start_positions() const {
    return _state ? _state->start_positions()
                  : std::vector<std::pair<partition_id, nagare::offset>>{};
}

subscription_stats Subscription::stats() const {
    return _state ? _state->stats() : subscription_stats{};
}

}  // namespace nagare::client
