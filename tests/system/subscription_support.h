// Helpers for subscription system tests over raw frames (tests/system).
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/system/nagared_process.h"

namespace nagare::testing {

namespace fb = protocol::fb;

struct delivered {
    std::uint64_t subscription = 0;
    std::uint32_t partition = 0;
    std::uint64_t offset = 0;
    std::string project, subject, msg_id, payload;
    std::uint32_t delivery_count = 0;
    std::map<std::string, std::string> headers;
};

// A broker on a fresh data directory, removed unless the test failed.
struct broker_fixture {
    std::filesystem::path dir;
    std::unique_ptr<nagared_process> broker;
    explicit broker_fixture(const std::string& name, nagared_process::options o = {}) {
        dir = temp_dir(name);
        broker = std::make_unique<nagared_process>(dir / "data", o);
    }
    ~broker_fixture() {
        broker.reset();
        if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
    }
};

inline fb::SubscribeT subscribe_all(std::uint64_t id, std::string stream = "events") {
    fb::SubscribeT s;
    s.subscription_id = id;
    s.stream = std::move(stream);
    s.deliver = fb::DeliverPolicy::ALL;
    s.ack = fb::AckPolicy::EXPLICIT;
    return s;
}

inline bool send_subscribe(raw_client& c, const fb::SubscribeT& s) {
    auto& enc = c.encoder();
    enc.reset();
    return c.send_bytes(enc.finish(fb::CreateSubscribe(enc.builder(), &s)));
}

inline bool send_ack(raw_client& c, std::uint64_t subscription, fb::AckKind kind,
                     const std::vector<std::pair<std::uint32_t, std::uint64_t>>& positions,
                     std::uint32_t nak_delay_ms = 0) {
    auto& enc = c.encoder();
    enc.reset();
    auto& b = enc.builder();
    std::vector<fb::PartitionPosition> ps;
    for (const auto& [p, o] : positions) ps.emplace_back(p, o);
    return c.send_bytes(enc.finish(fb::CreateAck(b, subscription, kind, nak_delay_ms, b.CreateVectorOfStructs(ps))));
}

inline bool send_unsubscribe(raw_client& c, std::uint64_t subscription) {
    auto& enc = c.encoder();
    enc.reset();
    return c.send_bytes(enc.finish(fb::CreateUnsubscribe(enc.builder(), subscription)));
}

// Waits for SubOk (true) or an Error (false, code in *error).
inline bool await_sub_ok(raw_client& c, std::uint64_t id, fb::ErrorCode* error = nullptr,
                         std::vector<delivered>* early = nullptr) {
    while (auto f = c.next(std::chrono::seconds(10))) {
        const auto& body = (*f)->body;
        if (body.type == fb::Body::SubOk && body.AsSubOk()->subscription_id == id) return true;
        if (body.type == fb::Body::Error && body.AsError()->request_id == id) {
            if (error != nullptr) *error = body.AsError()->code;
            return false;
        }
        if (body.type == fb::Body::Deliver && early != nullptr) {
            for (const auto& m : body.AsDeliver()->messages) {
                delivered d{body.AsDeliver()->subscription_id, m->partition, m->offset, m->project,
                            m->subject, m->msg_id,
                            std::string(m->payload.begin(), m->payload.end()), m->delivery_count, {}};
                early->push_back(std::move(d));
            }
        }
    }
    if (error != nullptr) *error = fb::ErrorCode::INTERNAL;
    return false;
}

// Subscribes `c` to every subject of `stream` through the durable consumer
// `consumer` (explicit acks, deliver all) and waits for SubOk.
inline bool subscribe_durable(raw_client& c, std::uint64_t id, const std::string& consumer,
                              std::string stream = "events") {
    auto s = subscribe_all(id, std::move(stream));
    s.consumer = consumer;
    return send_subscribe(c, s) && await_sub_ok(c, id);
}

// Reads frames until `count` messages arrived or `timeout` passed without a frame.
// Errors seen are appended to *errors when given.
inline std::vector<delivered> receive(raw_client& c, std::size_t count,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                      std::vector<fb::ErrorCode>* errors = nullptr) {
    std::vector<delivered> out;
    while (out.size() < count) {
        auto f = c.next(timeout);
        if (!f) break;
        const auto& body = (*f)->body;
        if (body.type == fb::Body::Error && errors != nullptr) errors->push_back(body.AsError()->code);
        if (body.type != fb::Body::Deliver) continue;
        for (const auto& m : body.AsDeliver()->messages) {
            delivered d{body.AsDeliver()->subscription_id, m->partition, m->offset, m->project,
                        m->subject, m->msg_id, std::string(m->payload.begin(), m->payload.end()),
                        m->delivery_count, {}};
            for (const auto& h : m->headers) d.headers[h->key] = h->value;
            out.push_back(std::move(d));
        }
    }
    return out;
}

// Publishes (project, subject, payload) messages in frames of up to 512 and
// waits for every PubAck. msg_ids are "<prefix>-<n>".
inline bool publish_messages(raw_client& c, const std::vector<std::array<std::string, 3>>& messages,
                             const std::string& prefix = "m") {
    std::vector<std::string> ids;
    ids.reserve(messages.size());
    for (std::size_t i = 0; i < messages.size(); ++i) ids.push_back(prefix + "-" + std::to_string(i));
    std::uint64_t request = 1'000'000;
    std::size_t frames = 0;
    for (std::size_t from = 0; from < messages.size(); from += 512) {
        std::vector<protocol::message_ref> refs;
        for (std::size_t i = from; i < std::min(messages.size(), from + 512); ++i) {
            const auto& m = messages[i];
            refs.push_back({m[0], m[1], ids[i], {},
                            std::span(reinterpret_cast<const std::byte*>(m[2].data()), m[2].size())});
        }
        if (!c.send_bytes(c.encoder().publish(++request, refs))) return false;
        ++frames;
    }
    std::size_t acks = 0;
    while (acks < frames) {
        auto f = c.next(std::chrono::seconds(20));
        if (!f) return false;
        if ((*f)->body.type == fb::Body::PubAck) {
            for (const auto& e : (*f)->body.AsPubAck()->entries) {
                if (e.error() != fb::ErrorCode::NONE) return false;
            }
            ++acks;
        }
    }
    return true;
}

// A connection that got its HelloOk. Right after a kill -9 the dead process's
// listening socket can linger while the kernel tears down its io_uring (its
// multishot accept holds the socket), and a connection queued there is reset:
// retry a few times.
inline std::unique_ptr<raw_client> connect_after_restart(std::uint16_t port) {
    for (int attempt = 0; attempt < 50; ++attempt) {
        auto c = std::make_unique<raw_client>(port);
        if (c->connected() && c->hello()) return c;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return nullptr;
}

// CONSUMER_INFO / LIST / DELETE over the wire; the AdminResult, or nullptr.
inline std::unique_ptr<fb::AdminResultT> consumer_admin(raw_client& c, fb::AdminOp op, const std::string& stream,
                                                        const std::string& name = "") {
    fb::AdminT admin;
    admin.request_id = 77;
    admin.op = op;
    admin.stream = stream;
    admin.consumer = name;
    auto& enc = c.encoder();
    enc.reset();
    if (!c.send_bytes(enc.finish(fb::CreateAdmin(enc.builder(), &admin)))) return nullptr;
    while (auto f = c.next(std::chrono::seconds(10))) {
        if ((*f)->body.type == fb::Body::AdminResult) {
            return std::make_unique<fb::AdminResultT>(std::move(*(*f)->body.AsAdminResult()));
        }
    }
    return nullptr;
}

}  // namespace nagare::testing
