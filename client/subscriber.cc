#include "client/subscriber.h"

#include <algorithm>
#include <utility>

#include "client/limits.h"
#include "protocol/assert.h"

namespace nagare::client::detail {

namespace fb = protocol::fb;

namespace {

fb::DeliverPolicy wire_policy(deliver_policy p) noexcept {
    switch (p) {
        case deliver_policy::all:
            return fb::DeliverPolicy::ALL;
        case deliver_policy::new_only:
            return fb::DeliverPolicy::NEW;
        case deliver_policy::from_offset:
            return fb::DeliverPolicy::FROM_OFFSET;
        case deliver_policy::from_time:
            return fb::DeliverPolicy::FROM_TIME;
        case deliver_policy::last_per_subject:
            return fb::DeliverPolicy::LAST_PER_SUBJECT;
    }
    return fb::DeliverPolicy::ALL;
}

std::uint32_t wire_ms(std::chrono::milliseconds ms) noexcept {
    return static_cast<std::uint32_t>(std::clamp<std::int64_t>(ms.count(), 0, UINT32_MAX));
}

void append(std::vector<std::byte>& out, std::span<const std::byte> frame) {
    out.insert(out.end(), frame.begin(), frame.end());
}

// Subscribe as defined; `resume_at` non-empty: FROM_OFFSET there (an
// ephemeral subscription coming back after a reconnect).
std::span<const std::byte> encode_subscribe(protocol::frame_encoder& encoder,
                                            const subscription_state& s,
                                            std::span<const fb::PartitionPosition> resume_at) {
    encoder.reset();
    auto& b = encoder.builder();
    const auto& o = s.options;
    const auto stream = b.CreateString(s.stream);
    const auto consumer = b.CreateString(o.consumer);
    const auto project = b.CreateString(s.filter.project);
    const auto subjects =
        s.filter.subjects.empty() ? 0 : b.CreateVectorOfStrings(s.filter.subjects);
    flatbuffers::Offset<flatbuffers::Vector<std::uint32_t>> backoff = 0;
    if (!o.backoff.empty()) {
        std::uint32_t* delays = nullptr;
        backoff = b.CreateUninitializedVector(o.backoff.size(), &delays);
        for (const auto delay : o.backoff) *delays++ = wire_ms(delay);
    }
    const auto starts =
        resume_at.empty() ? 0 : b.CreateVectorOfStructs(resume_at.data(), resume_at.size());
    fb::SubscribeBuilder sub(b);
    sub.add_subscription_id(s.id);
    sub.add_stream(stream);
    sub.add_consumer(consumer);
    sub.add_project(project);
    if (!subjects.IsNull()) sub.add_subjects(subjects);
    sub.add_deliver(resume_at.empty() ? wire_policy(o.deliver) : fb::DeliverPolicy::FROM_OFFSET);
    sub.add_start_offset(o.start_offset.value);
    sub.add_start_time_ns(o.start_time_ns);
    sub.add_ack(o.ack == ack_policy::none ? fb::AckPolicy::NONE : fb::AckPolicy::EXPLICIT);
    sub.add_ack_wait_ms(wire_ms(o.ack_wait));
    sub.add_max_deliver(o.max_deliver);
    if (!backoff.IsNull()) sub.add_backoff_ms(backoff);
    sub.add_max_inflight(o.max_inflight);
    sub.add_ordered(o.ordered);
    if (!starts.IsNull()) sub.add_start_positions(starts);
    return encoder.finish(sub.Finish());
}

std::span<const std::byte> encode_ack(protocol::frame_encoder& encoder, std::uint64_t id,
                                      fb::AckKind kind, std::uint32_t nak_delay_ms,
                                      std::span<const fb::PartitionPosition> positions) {
    encoder.reset();
    auto& b = encoder.builder();
    const auto list = b.CreateVectorOfStructs(positions.data(), positions.size());
    return encoder.finish(fb::CreateAck(b, id, kind, nak_delay_ms, list));
}

}  // namespace

void resume_positions::raise(std::uint32_t partition, std::uint64_t next) noexcept {
    if (_last >= _list.size() || _list[_last].partition() != partition) {
        const auto found = std::ranges::find_if(
            _list, [&](const fb::PartitionPosition& p) { return p.partition() == partition; });
        if (found == _list.end()) {
            if (_list.size() >= resume_partitions_max) return;
            _list.emplace_back(partition, next);
            _last = _list.size() - 1;
            return;
        }
        _last = static_cast<std::size_t>(found - _list.begin());
    }
    if (_list[_last].offset() < next) _list[_last] = fb::PartitionPosition(partition, next);
}

subscriber::live_subscription::live_subscription(std::shared_ptr<subscription_state> s)
    : state(std::move(s)),
      lru(state->options.dedup_ids_max,
          std::chrono::duration_cast<clock::duration>(state->options.dedup_window)) {}

subscriber::subscriber() : _encoder(4096) {}

void subscriber::adopt(std::vector<std::shared_ptr<subscription_state>>& incoming) {
    for (auto& state : incoming)
        _subs.push_back(std::make_unique<live_subscription>(std::move(state)));
    incoming.clear();
}

subscriber::live_subscription* subscriber::find(std::uint64_t id) noexcept {
    for (auto& sub : _subs) {
        if (sub->state->id == id) return sub.get();
    }
    return nullptr;
}

void subscriber::drain(live_subscription& sub, clock::time_point now) {
    const auto from = sub.outbox.size();
    if (sub.state->take_acks(sub.outbox)) sub.closing = true;
    for (auto i = from; i < sub.outbox.size(); ++i) {
        const auto& a = sub.outbox[i];
        if (a.has_key && (a.kind == fb::AckKind::ACK || a.kind == fb::AckKind::TERM)) {
            sub.lru.insert(a.key, static_cast<std::uint8_t>(a.kind), now);
        }
    }
}

void subscriber::drop_outbox(live_subscription& sub) noexcept {
    sub.state->count.acks_dropped.fetch_add(sub.outbox.size(), std::memory_order_relaxed);
    sub.outbox.clear();
}

void subscriber::service(bool ready, std::vector<std::byte>& out, clock::time_point now) {
    _wants_service = false;
    for (std::size_t i = 0; i < _subs.size();) {
        auto& sub = *_subs[i];
        drain(sub, now);
        if (sub.closing) {
            if (ready && sub.wire == wire_state::live) write_acks(sub, out);
            if (ready && sub.wire != wire_state::unsent) write_unsubscribe(sub, out);
            drop_outbox(sub);
            _closed.push_back(std::move(sub.state));
            _subs.erase(_subs.begin() + static_cast<std::ptrdiff_t>(i));
            continue;
        }
        if (!ready) {
            drop_outbox(sub);
        } else if (sub.wire == wire_state::unsent) {
            write_subscribe(sub, out);
        } else if (sub.wire == wire_state::live) {
            write_acks(sub, out);
        }
        ++i;
    }
}

void subscriber::release_closed() noexcept {
    for (auto& state : _closed) state->finish();
    _closed.clear();
}

void subscriber::write_subscribe(live_subscription& sub, std::vector<std::byte>& out) {
    const bool resume = sub.ever_live && sub.state->options.consumer.empty();
    append(out, encode_subscribe(_encoder, *sub.state,
                                 resume ? std::span(sub.resume.list())
                                        : std::span<const fb::PartitionPosition>{}));
    if (sub.ever_sent) sub.state->count.resubscribes.fetch_add(1, std::memory_order_relaxed);
    sub.ever_sent = true;
    sub.wire = wire_state::awaiting_ok;
}

void subscriber::write_acks(live_subscription& sub, std::vector<std::byte>& out) {
    auto& box = sub.outbox;
    if (box.empty()) return;
    // Group by kind and delay; the order inside a frame does not matter.
    std::ranges::sort(box, [](const queued_ack& a, const queued_ack& b) {
        return std::tie(a.kind, a.nak_delay_ms, a.partition, a.offset) <
               std::tie(b.kind, b.nak_delay_ms, b.partition, b.offset);
    });
    std::size_t frames = 0;
    for (std::size_t first = 0; first < box.size();) {
        _positions.clear();
        std::size_t last = first;
        while (last < box.size() && box[last].kind == box[first].kind &&
               box[last].nak_delay_ms == box[first].nak_delay_ms &&
               _positions.size() < ack_positions_per_frame_max) {
            _positions.emplace_back(box[last].partition.value, box[last].offset.value);
            ++last;
        }
        append(out, encode_ack(_encoder, sub.state->id, box[first].kind, box[first].nak_delay_ms,
                               _positions));
        ++frames;
        first = last;
    }
    sub.state->count.acks_sent.fetch_add(box.size(), std::memory_order_relaxed);
    sub.state->count.ack_frames_sent.fetch_add(frames, std::memory_order_relaxed);
    box.clear();
}

void subscriber::write_unsubscribe(const live_subscription& sub, std::vector<std::byte>& out) {
    _encoder.reset();
    append(out, _encoder.finish(fb::CreateUnsubscribe(_encoder.builder(), sub.state->id)));
}

void subscriber::on_sub_ok(const fb::SubOk& ok) {
    auto* sub = find(ok.subscription_id());
    if (sub == nullptr || sub->closing || sub->wire != wire_state::awaiting_ok) return;
    sub->wire = wire_state::live;
    std::vector<std::pair<partition_id, nagare::offset>> starts;
    if (const auto* positions = ok.start_positions(); positions != nullptr) {
        for (const auto* p : *positions) {
            sub->resume.raise(p->partition(), p->offset());
            if (!sub->ever_live)
                starts.emplace_back(partition_id{p->partition()}, nagare::offset{p->offset()});
        }
    }
    sub->ever_live = true;
    sub->state->on_subscribed(ok.stream_epoch(), std::move(starts));
    _wants_service = !sub->outbox.empty();
}

void subscriber::on_deliver(const fb::Deliver& deliver, clock::time_point now) {
    auto* sub = find(deliver.subscription_id());
    const auto* messages = deliver.messages();
    if (sub == nullptr || sub->closing || messages == nullptr) return;
    drain(*sub, now);  // acks queued since the last turn enter the LRU first
    auto& state = *sub->state;
    if (sub->closing || !state.begin_delivery()) return;
    Message msg;
    subscription_access::bind(msg, sub->state);
    for (const auto* m : *messages) {
        if (state.stopping()) break;
        deliver_one(*sub, *m, msg, now);
    }
    state.end_delivery();
    state.count.dedup_evicted_early.store(sub->lru.evicted_early(), std::memory_order_relaxed);
}

void subscriber::deliver_one(live_subscription& sub, const fb::DeliverMessage& m, Message& msg,
                             clock::time_point now) {
    auto& state = *sub.state;
    const auto key = msg_key_of(protocol::view(m.msg_id()));
    if (state.options.ack == ack_policy::explicit_ack) {
        if (const auto kind = sub.lru.find(key, now)) {
            sub.outbox.push_back({static_cast<fb::AckKind>(*kind), 0, partition_id{m.partition()},
                                  nagare::offset{m.offset()}, key, true});
            state.count.duplicates_dropped.fetch_add(1, std::memory_order_relaxed);
            _wants_service = true;
            return;
        }
    }
    sub.resume.raise(m.partition(), m.offset() + 1);
    _headers.clear();
    if (const auto* headers = m.headers(); headers != nullptr) {
        for (const auto* h : *headers) {
            _headers.push_back({protocol::view(h->key()), protocol::view(h->value())});
        }
    }
    subscription_access::fill(msg, m, key, _headers);
    state.count.delivered.fetch_add(1, std::memory_order_relaxed);
    if (m.delivery_count() > 1) state.count.redelivered.fetch_add(1, std::memory_order_relaxed);
    state.handler(msg);
}

void subscriber::on_error(std::uint64_t subscription_id, const error& why) {
    auto* sub = find(subscription_id);
    if (sub == nullptr) return;
    auto state = sub->state;  // keeps it alive through on_error
    if (sub->wire != wire_state::awaiting_ok) {
        state->count.server_errors.fetch_add(1, std::memory_order_relaxed);
        if (state->options.on_error) state->options.on_error(why);
        return;
    }
    // The broker refused the Subscribe: the subscription is over.
    const bool was_live = sub->ever_live;
    state->on_refused(why);
    drop_outbox(*sub);
    state->finish();
    std::erase_if(_subs, [&](const auto& s) { return s.get() == sub; });
    if (was_live && state->options.on_error) state->options.on_error(why);
}

void subscriber::on_connection_lost(clock::time_point now) {
    for (auto& sub : _subs) {
        drain(*sub, now);
        drop_outbox(*sub);
        sub->wire = wire_state::unsent;
    }
}

void subscriber::shutdown(std::vector<std::shared_ptr<subscription_state>>& incoming) {
    adopt(incoming);
    release_closed();
    for (auto& sub : _subs) {
        drop_outbox(*sub);
        sub->state->finish();
    }
    _subs.clear();
}

}  // namespace nagare::client::detail
