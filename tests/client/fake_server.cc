#include "fake_server.h"

#include <algorithm>
#include <cerrno>
#include <deque>
#include <stdexcept>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/routing.h"
#include "protocol/subject.h"
#include "protocol/validate.h"

namespace nagare::client::testing {

namespace fb = protocol::fb;

namespace {

constexpr std::size_t read_bytes = 256u << 10;
constexpr int poll_wait_ms_max = 100;

std::vector<std::byte> pack(fb::FrameT& frame) {
    flatbuffers::FlatBufferBuilder b;
    b.FinishSizePrefixed(fb::Frame::Pack(b, &frame), fb::FrameIdentifier());
    const auto* data = reinterpret_cast<const std::byte*>(b.GetBufferPointer());
    return {data, data + b.GetSize()};
}

template <class T>
std::vector<std::byte> pack_body(T body) {
    fb::FrameT frame;
    frame.body.Set(std::move(body));
    return pack(frame);
}

std::vector<std::byte> error_frame(std::uint64_t request_id, protocol::errc code,
                                   std::string message) {
    fb::ErrorT e;
    e.request_id = request_id;
    e.code = static_cast<fb::ErrorCode>(code);
    e.message = std::move(message);
    return pack_body(std::move(e));
}

void send_all(int fd, const std::vector<std::byte>& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the client went away: the next read sees it
        sent += static_cast<std::size_t>(n);
    }
}

std::vector<std::byte> deliver_frame(std::uint64_t subscription_id,
                                     const std::vector<fake_delivery>& messages) {
    fb::DeliverT d;
    d.subscription_id = subscription_id;
    for (const auto& m : messages) {
        auto out = std::make_unique<fb::DeliverMessageT>();
        out->partition = m.partition;
        out->offset = m.offset;
        out->project = m.project;
        out->subject = m.subject;
        out->msg_id = m.msg_id;
        out->timestamp_ns = m.timestamp_ns;
        out->delivery_count = m.delivery_count;
        out->payload.assign(m.payload.begin(), m.payload.end());
        for (const auto& [key, value] : m.headers) {
            auto h = std::make_unique<fb::HeaderT>();
            h->key = key;
            h->value = value;
            out->headers.push_back(std::move(h));
        }
        d.messages.push_back(std::move(out));
    }
    return pack_body(std::move(d));
}

std::pair<int, std::uint16_t> listen_loopback() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket failed");
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd, 64) != 0) {
        ::close(fd);
        throw std::runtime_error("bind/listen on 127.0.0.1 failed");
    }
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return {fd, ntohs(address.sin_port)};
}

}  // namespace

fb::ConsumerInfoT sample_consumer(std::string name) {
    fb::ConsumerInfoT c;
    c.stream = "events";
    c.name = std::move(name);
    c.project = "proj-1";
    c.subjects = {"task.*", "order.>"};
    c.ack = fb::AckPolicy::EXPLICIT;
    c.ack_wait_ms = 30000;
    c.max_deliver = 5;
    c.max_inflight = 1024;
    c.ordered = true;
    c.ack_floors = {fb::PartitionPosition(0, 12), fb::PartitionPosition(1, 7)};
    c.pending = 3;
    c.redelivered = 4;
    c.dead_lettered = 1;
    c.terminated = 2;
    return c;
}

struct fake_server::connection {
    struct reply {
        fake_clock::time_point due;
        std::vector<std::byte> bytes;
        std::size_t messages = 0;
    };

    int fd = -1;
    std::uint16_t port = 0;
    protocol::frame_decoder decoder;
    bool greeted = false;
    std::size_t unacked = 0;
    std::vector<std::uint64_t> subscriptions;  // live on this connection
    std::deque<reply> replies;
};

fake_server::fake_server(fake_options options)
    : _options(std::move(options)),
      _refuse_subscribe(_options.refuse_subscribe),
      _consumers(_options.consumers) {
    if (::pipe2(_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
    for (std::size_t i = 0; i <= _options.shard_ports; ++i) {
        const auto [fd, port] = listen_loopback();
        _listeners.push_back(fd);
        _listener_ports.push_back(port);
        if (i > 0) _shard_port_list.push_back(port);
    }
    _main_port = _listener_ports[0];
    _thread = std::thread([this] { run(); });
}

fake_server::~fake_server() {
    {
        std::lock_guard lock(_mutex);
        _stop = true;
    }
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
    _thread.join();
    for (const auto& c : _connections) ::close(c->fd);
    for (const int fd : _listeners) ::close(fd);
    ::close(_wake_pipe[0]);
    ::close(_wake_pipe[1]);
}

std::string fake_server::url() const { return "nagare://127.0.0.1:" + std::to_string(_main_port); }

void fake_server::refuse_next_hellos(std::size_t count) {
    std::lock_guard lock(_mutex);
    _refuse_hellos = count;
}

void fake_server::drop_connections() {
    std::unique_lock lock(_mutex);
    _drop_all = true;
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
    _controls_done.wait_for(lock, std::chrono::seconds{10}, [&] { return !_drop_all; });
}

void fake_server::hold_acks(bool hold) {
    {
        std::lock_guard lock(_mutex);
        _hold = hold;
    }
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
}

void fake_server::send_connection_error(protocol::errc code) {
    std::unique_lock lock(_mutex);
    _connection_error = code;
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
    _controls_done.wait_for(lock, std::chrono::seconds{10},
                            [&] { return !_connection_error.has_value(); });
}

void fake_server::send_ping(std::uint64_t nonce) {
    std::unique_lock lock(_mutex);
    _ping = nonce;
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
    _controls_done.wait_for(lock, std::chrono::seconds{10}, [&] { return !_ping.has_value(); });
}

std::vector<std::uint64_t> fake_server::pong_nonces() const { return read(_pongs); }

void fake_server::refuse_subscribes(std::optional<protocol::errc> code) {
    std::lock_guard lock(_mutex);
    _refuse_subscribe = code;
}

bool fake_server::deliver(std::uint64_t subscription_id,
                          const std::vector<fake_delivery>& messages) {
    delivery_request request{subscription_id, deliver_frame(subscription_id, messages),
                             std::nullopt};
    std::unique_lock lock(_mutex);
    _deliveries.push_back(&request);
    const char byte = 1;
    [[maybe_unused]] const auto n = ::write(_wake_pipe[1], &byte, 1);
    const bool done = _controls_done.wait_for(lock, std::chrono::seconds{10},
                                              [&] { return request.sent.has_value(); });
    if (!done) std::erase(_deliveries, &request);
    return done && *request.sent;
}

void fake_server::send_deliveries() {
    for (auto* request : _deliveries) {
        request->sent = false;
        for (auto c = _connections.rbegin(); c != _connections.rend(); ++c) {
            if (std::ranges::find((*c)->subscriptions, request->subscription_id) ==
                (*c)->subscriptions.end()) {
                continue;
            }
            send_all((*c)->fd, request->frame);
            request->sent = true;
            break;
        }
    }
    _deliveries.clear();
}

std::vector<fb::SubscribeT> fake_server::subscribes() const { return read(_subscribes); }
std::vector<received_ack> fake_server::acks() const { return read(_acks); }
std::vector<std::uint64_t> fake_server::unsubscribes() const { return read(_unsubscribes); }
std::vector<fb::Body> fake_server::frame_log() const { return read(_frame_log); }
std::size_t fake_server::live_subscriptions() const {
    return locked([&] {
        std::size_t live = 0;
        for (const auto& c : _connections) live += c->subscriptions.size();
        return live;
    });
}

void fake_server::inject_error(std::size_t publish_index, protocol::errc code) {
    std::lock_guard lock(_mutex);
    _inject = std::pair{publish_index, code};
}

std::vector<stored_message> fake_server::store() const { return read(_store); }
std::size_t fake_server::stored() const {
    return locked([&] { return _store.size(); });
}
std::size_t fake_server::received_messages() const { return read(_received); }
std::size_t fake_server::publish_frames() const { return read(_publish_frames); }
std::size_t fake_server::duplicates() const { return read(_duplicates); }
std::size_t fake_server::max_unacked() const { return read(_max_unacked); }
std::size_t fake_server::hellos() const { return read(_hellos); }
std::size_t fake_server::connections() const {
    return locked([&] { return _connections.size(); });
}
std::vector<std::string> fake_server::errored_msg_ids() const { return read(_errored_ids); }
std::vector<fake_clock::time_point> fake_server::accept_times() const {
    return read(_accept_times);
}
std::vector<fake_clock::time_point> fake_server::drop_times() const { return read(_drop_times); }
std::vector<std::string> fake_server::received_msg_ids() const { return read(_received_ids); }

int fake_server::poll_wait_ms(fake_clock::time_point now) const {
    auto wait = std::chrono::milliseconds{poll_wait_ms_max};
    if (_hold) return static_cast<int>(wait.count());
    for (const auto& c : _connections) {
        if (c->replies.empty()) continue;
        const auto due = c->replies.front().due;
        if (due <= now) return 0;
        wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(due - now));
    }
    return static_cast<int>(wait.count());
}

void fake_server::run() {
    std::vector<pollfd> fds;
    while (true) {
        fds.clear();
        std::size_t connection_count = 0;
        int wait_ms = 0;
        {
            std::lock_guard lock(_mutex);
            if (_stop) return;
            if (_drop_all) {
                _drop_all = false;
                while (!_connections.empty()) close_connection(_connections.size() - 1, true);
            }
            if (_connection_error) {
                for (const auto& c : _connections) {
                    send_all(c->fd, error_frame(0, *_connection_error, "connection error"));
                }
                _connection_error.reset();
            }
            if (_ping) {
                fb::PingT ping;
                ping.nonce = *_ping;
                const auto bytes = pack_body(std::move(ping));
                for (const auto& c : _connections) send_all(c->fd, bytes);
                _ping.reset();
            }
            send_deliveries();
            _controls_done.notify_all();
            fds.push_back({_wake_pipe[0], POLLIN, 0});
            for (const int fd : _listeners) fds.push_back({fd, POLLIN, 0});
            for (const auto& c : _connections) fds.push_back({c->fd, POLLIN, 0});
            connection_count = _connections.size();
            wait_ms = poll_wait_ms(fake_clock::now());
        }
        ::poll(fds.data(), fds.size(), wait_ms);
        std::lock_guard lock(_mutex);
        if ((fds[0].revents & POLLIN) != 0) {
            char drain[64];
            while (::read(_wake_pipe[0], drain, sizeof drain) > 0) {
            }
        }
        for (std::size_t i = 0; i < _listeners.size(); ++i) {
            if ((fds[1 + i].revents & POLLIN) != 0) accept_on(_listeners[i], _listener_ports[i]);
        }
        std::vector<std::size_t> to_close;
        for (std::size_t k = 0; k < connection_count; ++k) {
            const auto revents = fds[1 + _listeners.size() + k].revents;
            if ((revents & (POLLIN | POLLERR | POLLHUP)) != 0 && !read_from(*_connections[k])) {
                to_close.push_back(k);
            }
        }
        for (auto k = to_close.rbegin(); k != to_close.rend(); ++k) close_connection(*k, true);
        send_due_replies(fake_clock::now());
    }
}

void fake_server::accept_on(int listener, std::uint16_t port) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    const timeval send_wait{5, 0};  // never block the fake for long on a stuck client
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_wait, sizeof send_wait);
    const int one = 1;  // SubOk then Deliver must not wait for a delayed ACK (Nagle)
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto c = std::make_unique<connection>();
    c->fd = fd;
    c->port = port;
    _connections.push_back(std::move(c));
    _accept_times.push_back(fake_clock::now());
}

void fake_server::close_connection(std::size_t index, bool by_server) {
    ::close(_connections[index]->fd);
    _connections.erase(_connections.begin() + static_cast<std::ptrdiff_t>(index));
    if (by_server) _drop_times.push_back(fake_clock::now());
}

bool fake_server::read_from(connection& c) {
    std::vector<std::byte> buffer(read_bytes);
    const auto n = ::recv(c.fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    bool keep = true;
    const auto now = fake_clock::now();
    const auto fed =
        c.decoder.feed(std::span<const std::byte>(buffer).first(static_cast<std::size_t>(n)),
                       [&](const protocol::frame_view& frame) {
                           if (keep) keep = on_frame(c, frame, now);
                       });
    return keep && fed.has_value();
}

bool fake_server::on_frame(connection& c, const protocol::frame_view& frame,
                           fake_clock::time_point now) {
    if (frame.type() == fb::Body::Hello) {
        ++_hellos;
        if (_refuse_hellos > 0) {
            --_refuse_hellos;
            return false;
        }
        const auto* hello = frame.as<fb::Hello>();
        if (_options.refuse_version || hello->protocol_version() != protocol::protocol_version) {
            send_all(c.fd, error_frame(0, protocol::errc::unsupported_version, "version 1 only"));
            return false;
        }
        if (!_options.token.empty() && protocol::view(hello->auth_token()) != _options.token) {
            send_all(c.fd, error_frame(0, protocol::errc::not_authorized, "bad token"));
            return false;
        }
        fb::HelloOkT ok;
        ok.server_id = "fake";
        ok.protocol_version = protocol::protocol_version;
        ok.shard_count =
            static_cast<std::uint32_t>(std::max<std::size_t>(1, _shard_port_list.size()));
        if (_options.announce_shard_ports) ok.shard_ports = _shard_port_list;
        ok.max_payload_bytes = _options.max_payload_bytes;
        ok.max_pending_publish = _options.max_pending_publish;
        for (const auto& s : _options.streams) {
            auto route = std::make_unique<fb::StreamRouteT>();
            route->name = s.name;
            route->subjects = s.subjects;
            route->partitions = s.partitions;
            ok.streams.push_back(std::move(route));
        }
        send_all(c.fd, pack_body(std::move(ok)));
        c.greeted = true;
        return true;
    }
    _frame_log.push_back(frame.type());
    switch (frame.type()) {
        case fb::Body::Pong:
            _pongs.push_back(frame.as<fb::Pong>()->nonce());
            return true;
        case fb::Body::Publish:
            return on_publish(c, *frame.as<fb::Publish>(), now);
        case fb::Body::Subscribe:
            on_subscribe(c, *frame.as<fb::Subscribe>());
            return true;
        case fb::Body::Ack:
            on_ack(c, *frame.as<fb::Ack>());
            return true;
        case fb::Body::Admin:
            on_admin(c, *frame.as<fb::Admin>());
            return true;
        case fb::Body::Unsubscribe:
            _unsubscribes.push_back(frame.as<fb::Unsubscribe>()->subscription_id());
            std::erase(c.subscriptions, _unsubscribes.back());
            return true;
        default:
            return true;
    }
}

void fake_server::on_subscribe(connection& c, const fb::Subscribe& subscribe) {
    fb::SubscribeT copy;
    subscribe.UnPackTo(&copy);
    _subscribes.push_back(copy);
    const auto id = subscribe.subscription_id();
    if (_options.silent_subscribe) return;
    if (_refuse_subscribe) {
        send_all(c.fd, error_frame(id, *_refuse_subscribe, "refused by the fake"));
        return;
    }
    c.subscriptions.push_back(id);
    fb::SubOkT ok;
    ok.subscription_id = id;
    ok.stream_epoch = _options.stream_epoch;
    for (const auto& [partition, offset] : _options.sub_ok_start_positions) {
        ok.start_positions.emplace_back(partition, offset);
    }
    send_all(c.fd, pack_body(std::move(ok)));
    if (_options.deliver_stored_on_subscribe) deliver_stored(c, copy);
}

void fake_server::deliver_stored(connection& c, const fb::SubscribeT& subscribe) {
    std::vector<fake_delivery> matching;
    for (const auto& m : _store) {
        if (m.stream != subscribe.stream) continue;
        if (!subscribe.project.empty() && m.project != subscribe.project) continue;
        if (!subscribe.subjects.empty() &&
            std::ranges::none_of(subscribe.subjects, [&](const std::string& pattern) {
                return protocol::subject_matches(pattern, m.subject);
            })) {
            continue;
        }
        std::uint64_t start = subscribe.start_offset;
        for (const auto& p : subscribe.start_positions) {
            if (p.partition() == m.partition) start = p.offset();
        }
        if (subscribe.deliver == fb::DeliverPolicy::NEW ||
            (subscribe.deliver == fb::DeliverPolicy::FROM_OFFSET && m.offset < start)) {
            continue;
        }
        fake_delivery d;
        d.partition = m.partition;
        d.offset = m.offset;
        d.project = m.project;
        d.subject = m.subject;
        d.msg_id = m.msg_id;
        d.payload = m.payload;
        d.headers = m.headers;
        matching.push_back(std::move(d));
    }
    if (!matching.empty()) send_all(c.fd, deliver_frame(subscribe.subscription_id, matching));
}

void fake_server::on_ack(connection& c, const fb::Ack& ack) {
    received_ack r;
    r.subscription_id = ack.subscription_id();
    r.kind = ack.kind();
    r.nak_delay_ms = ack.nak_delay_ms();
    if (const auto* positions = ack.positions(); positions != nullptr) {
        for (const auto* p : *positions) r.positions.emplace_back(p->partition(), p->offset());
    }
    _acks.push_back(std::move(r));
    if (std::ranges::find(c.subscriptions, ack.subscription_id()) == c.subscriptions.end()) {
        send_all(c.fd, error_frame(ack.subscription_id(), protocol::errc::no_such_subscription,
                                   "no such subscription"));
    } else if (_options.ack_error) {
        send_all(c.fd, error_frame(ack.subscription_id(), *_options.ack_error, "ack refused"));
    }
}

void fake_server::on_admin(connection& c, const fb::Admin& admin) {
    fb::AdminResultT result;
    result.request_id = admin.request_id();
    const auto stream = protocol::view(admin.stream());
    const auto name = protocol::view(admin.consumer());
    const auto refuse = [&](fb::ErrorCode code, std::string message) {
        result.error = code;
        result.message = std::move(message);
    };
    const auto named = std::ranges::find_if(_consumers, [&](const fb::ConsumerInfoT& ci) {
        return ci.stream == stream && ci.name == name;
    });
    if (std::ranges::find(_options.streams, stream, &fake_stream::name) == _options.streams.end()) {
        refuse(fb::ErrorCode::NO_SUCH_STREAM, "no stream " + std::string(stream));
    } else if (admin.op() == fb::AdminOp::CONSUMER_LIST) {
        for (const auto& ci : _consumers) {
            if (ci.stream == stream)
                result.consumers.push_back(std::make_unique<fb::ConsumerInfoT>(ci));
        }
    } else if (admin.op() != fb::AdminOp::CONSUMER_INFO &&
               admin.op() != fb::AdminOp::CONSUMER_DELETE) {
        refuse(fb::ErrorCode::BAD_REQUEST, "the fake knows consumer ops only");
    } else if (named == _consumers.end()) {
        refuse(fb::ErrorCode::NO_SUCH_CONSUMER, "no consumer " + std::string(name));
    } else if (admin.op() == fb::AdminOp::CONSUMER_INFO) {
        result.consumers.push_back(std::make_unique<fb::ConsumerInfoT>(*named));
    } else {
        _consumers.erase(named);
    }
    send_all(c.fd, pack_body(std::move(result)));
}

bool fake_server::on_publish(connection& c, const fb::Publish& publish_frame,
                             fake_clock::time_point now) {
    const auto* publish = &publish_frame;
    if (!c.greeted) {
        send_all(c.fd, error_frame(publish->request_id(), protocol::errc::bad_request, "no Hello"));
        return true;
    }
    const auto index = _publish_frames++;
    const auto* messages = publish->messages();
    const std::size_t count = messages == nullptr ? 0 : messages->size();
    _received += count;
    c.unacked += count;
    _max_unacked = std::max(_max_unacked, c.unacked);
    connection::reply reply{now + _options.ack_delay, {}, count};
    if (_inject && _inject->first == index) {
        for (std::size_t i = 0; i < count; ++i) {
            _errored_ids.emplace_back(
                protocol::view(messages->Get(static_cast<unsigned>(i))->msg_id()));
            _received_ids.push_back(_errored_ids.back());
        }
        reply.bytes = error_frame(publish->request_id(), _inject->second, "injected");
        c.replies.push_back(std::move(reply));
        return true;
    }
    fb::PubAckT ack;
    ack.request_id = publish->request_id();
    const auto payload_max = _options.max_payload_bytes == 0 ? protocol::payload_bytes_max_default
                                                             : _options.max_payload_bytes;
    for (std::size_t i = 0; i < count; ++i) {
        const auto* m = messages->Get(static_cast<unsigned>(i));
        const std::string msg_id(protocol::view(m->msg_id()));
        _received_ids.push_back(msg_id);
        if (const auto bad = protocol::validate_message(*m, payload_max);
            bad != protocol::errc::none) {
            ack.entries.emplace_back(0, 0, 0, static_cast<fb::ErrorCode>(bad), false);
            continue;
        }
        if (!_options.reject_project.empty() &&
            protocol::view(m->project()) == _options.reject_project) {
            ack.entries.emplace_back(0, 0, 0, fb::ErrorCode::STORAGE_FULL, false);
            continue;
        }
        const auto subject = protocol::view(m->subject());
        const fake_stream* stream = nullptr;
        for (const auto& s : _options.streams) {
            if (s.name == "events") continue;
            if (std::ranges::any_of(s.subjects, [&](const std::string& p) {
                    return protocol::subject_matches(p, subject);
                })) {
                stream = &s;
                break;
            }
        }
        if (stream == nullptr) {
            stream =
                &*std::ranges::find(_options.streams, std::string("events"), &fake_stream::name);
        }
        const auto partition =
            protocol::partition_for_project(protocol::view(m->project()), stream->partitions).value;
        auto name_at = std::ranges::find(ack.streams, stream->name);
        if (name_at == ack.streams.end())
            name_at = ack.streams.insert(ack.streams.end(), stream->name);
        const auto stream_index = static_cast<std::uint16_t>(name_at - ack.streams.begin());
        const auto key = stream->name + "\n" + msg_id;
        if (const auto found = _dedup.find(key); found != _dedup.end()) {
            const auto& first = _store[found->second];
            ack.entries.emplace_back(first.offset, first.partition, stream_index,
                                     fb::ErrorCode::NONE, true);
            ++_duplicates;
            continue;
        }
        stored_message stored;
        stored.stream = stream->name;
        stored.partition = partition;
        stored.offset = _next_offset[{stream->name, partition}]++;
        stored.project = protocol::view(m->project());
        stored.subject = subject;
        stored.msg_id = msg_id;
        const auto payload = protocol::view(m->payload());
        stored.payload.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
        if (const auto* headers = m->headers(); headers != nullptr) {
            for (const auto* h : *headers) {
                stored.headers.emplace_back(protocol::view(h->key()), protocol::view(h->value()));
            }
        }
        stored.port = c.port;
        _dedup.emplace(key, _store.size());
        ack.entries.emplace_back(stored.offset, partition, stream_index, fb::ErrorCode::NONE,
                                 false);
        _store.push_back(std::move(stored));
    }
    reply.bytes = pack_body(std::move(ack));
    c.replies.push_back(std::move(reply));
    const auto& drops = _options.drop_after_messages;
    if (_next_drop < drops.size() && _received >= drops[_next_drop]) {
        ++_next_drop;
        return false;  // stored, never acknowledged: the client must re-send
    }
    return true;
}

void fake_server::send_due_replies(fake_clock::time_point now) {
    if (_hold) return;
    for (auto& c : _connections) {
        while (!c->replies.empty() && c->replies.front().due <= now) {
            send_all(c->fd, c->replies.front().bytes);
            c->unacked -= c->replies.front().messages;
            c->replies.pop_front();
        }
    }
}

}  // namespace nagare::client::testing
