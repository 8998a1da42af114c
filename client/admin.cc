#include "nagare/admin.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/net.h"
#include "client/url.h"
#include "protocol/frame.h"

namespace nagare::client {

namespace fb = protocol::fb;

namespace {

error failure(errc code, std::string message) { return error{code, std::move(message)}; }

consumer_status status_of(const fb::ConsumerInfoT& c) {
    consumer_status out;
    out.stream = c.stream;
    out.name = c.name;
    out.project = c.project;
    out.subjects = c.subjects;
    out.ack = c.ack == fb::AckPolicy::NONE ? ack_policy::none : ack_policy::explicit_ack;
    out.ack_wait_ms = c.ack_wait_ms;
    out.max_deliver = c.max_deliver;
    out.max_inflight = c.max_inflight;
    out.ordered = c.ordered;
    for (const auto& floor : c.ack_floors) {
        out.ack_floors.emplace_back(partition_id{floor.partition()},
                                    nagare::offset{floor.offset()});
    }
    out.pending = c.pending;
    out.redelivered = c.redelivered;
    out.dead_lettered = c.dead_lettered;
    out.terminated = c.terminated;
    return out;
}

fb::AdminT consumer_request(fb::AdminOp op, std::string_view stream, std::string_view name) {
    fb::AdminT request;
    request.op = op;
    request.stream = stream;
    request.consumer = name;
    return request;
}

}  // namespace

std::expected<std::unique_ptr<admin_session>, error> admin_session::connect(
    std::string_view url, std::string_view token, std::chrono::milliseconds timeout) {
    auto where = parse_url(url);
    if (!where) return std::unexpected(failure(errc::bad_request, where.error()));
    auto address = resolve(where->host, where->port);
    if (!address) return std::unexpected(failure(errc_unavailable, address.error()));
    auto fd = start_connect(*address);
    if (!fd) return std::unexpected(failure(errc_unavailable, errno_text(fd.error())));
    pollfd p{fd->get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0 || connect_error(fd->get()) != 0) {
        return std::unexpected(failure(errc_unavailable, "cannot connect to " + std::string(url) +
                                                             ": " + errno_text(connect_error(fd->get()))));
    }
    std::unique_ptr<admin_session> s(new admin_session(::dup(fd->get()), timeout));
    protocol::frame_encoder enc;
    if (auto ok = s->send(enc.hello("nagare-cli", token)); !ok) return std::unexpected(ok.error());
    auto reply = s->next_frame();
    if (!reply) return std::unexpected(reply.error());
    if ((*reply)->body.type == fb::Body::Error) {
        const auto* e = (*reply)->body.AsError();
        return std::unexpected(failure(static_cast<errc>(e->code), e->message));
    }
    if ((*reply)->body.type != fb::Body::HelloOk) {
        return std::unexpected(failure(errc::bad_frame, "expected HelloOk"));
    }
    return s;
}

admin_session::~admin_session() { ::close(_fd); }

std::expected<void, error> admin_session::send(std::span<const std::byte> bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        pollfd p{_fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(_timeout.count())) <= 0) {
            return std::unexpected(failure(errc_unavailable, "timed out sending"));
        }
        const auto n = ::send(_fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0) return std::unexpected(failure(errc_unavailable, errno_text(errno)));
        sent += static_cast<std::size_t>(n);
    }
    return {};
}

std::expected<std::unique_ptr<fb::FrameT>, error> admin_session::next_frame() {
    const auto deadline = std::chrono::steady_clock::now() + _timeout;
    std::byte chunk[65536];
    while (_frames.empty()) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{_fd, POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
            return std::unexpected(failure(errc_unavailable, "no answer from the broker"));
        }
        const auto n = ::recv(_fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EAGAIN) continue;
        if (n <= 0) return std::unexpected(failure(errc_unavailable, "the broker closed the connection"));
        const auto ok = _decoder.feed(std::span(chunk, static_cast<std::size_t>(n)),
                                      [&](const protocol::frame_view& f) {
                                          _frames.emplace_back(f.frame->UnPack());
                                      });
        if (!ok) return std::unexpected(failure(ok.error(), "bad frame from the broker"));
    }
    auto f = std::move(_frames.front());
    _frames.erase(_frames.begin());
    return f;
}

std::expected<std::unique_ptr<fb::AdminResultT>, error> admin_session::request(fb::AdminT request) {
    request.request_id = _next_request_id++;
    flatbuffers::FlatBufferBuilder b;
    fb::FrameT frame;
    frame.body.Set(std::move(request));
    b.FinishSizePrefixed(fb::Frame::Pack(b, &frame), fb::FrameIdentifier());
    if (auto ok = send({reinterpret_cast<const std::byte*>(b.GetBufferPointer()), b.GetSize()}); !ok) {
        return std::unexpected(ok.error());
    }
    for (;;) {
        auto reply = next_frame();
        if (!reply) return std::unexpected(reply.error());
        auto& body = (*reply)->body;
        if (body.type == fb::Body::Ping) continue;
        if (body.type == fb::Body::Error) {
            return std::unexpected(failure(static_cast<errc>(body.AsError()->code), body.AsError()->message));
        }
        if (body.type != fb::Body::AdminResult) continue;
        auto* result = body.AsAdminResult();
        if (result->error != fb::ErrorCode::NONE) {
            return std::unexpected(failure(static_cast<errc>(result->error), result->message));
        }
        return std::unique_ptr<fb::AdminResultT>(new fb::AdminResultT(std::move(*result)));
    }
}

std::expected<std::vector<consumer_status>, error> admin_session::consumer_list(
    std::string_view stream) {
    auto r = request(consumer_request(fb::AdminOp::CONSUMER_LIST, stream, {}));
    if (!r) return std::unexpected(r.error());
    std::vector<consumer_status> out;
    for (const auto& c : (*r)->consumers) out.push_back(status_of(*c));
    return out;
}

std::expected<consumer_status, error> admin_session::consumer_info(std::string_view stream,
                                                                   std::string_view name) {
    auto r = request(consumer_request(fb::AdminOp::CONSUMER_INFO, stream, name));
    if (!r) return std::unexpected(r.error());
    if ((*r)->consumers.empty()) {
        return std::unexpected(
            failure(errc::internal, "CONSUMER_INFO answered without a consumer"));
    }
    return status_of(*(*r)->consumers.front());
}

std::expected<void, error> admin_session::consumer_delete(std::string_view stream,
                                                          std::string_view name) {
    auto r = request(consumer_request(fb::AdminOp::CONSUMER_DELETE, stream, name));
    if (!r) return std::unexpected(r.error());
    return {};
}

}  // namespace nagare::client
