#include "bench/nats_target.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include <nats/nats.h>

namespace nagare::bench {

namespace {

constexpr std::int64_t ns_per_s = 1'000'000'000;
constexpr std::int64_t duplicate_window_ns = 30 * ns_per_s;
// A blocked publish (window full) retries every stall_wait_ms until closed.
constexpr std::int64_t stall_wait_ms = 50;
// A fetch waits at most this long for messages; close() takes as long.
constexpr std::int64_t fetch_wait_ms = 100;
constexpr std::size_t fetch_batch_max = 4096;
constexpr std::int64_t connect_timeout_ms = 5000;

std::string status_text(natsStatus s, jsErrCode code = static_cast<jsErrCode>(0)) {
    std::string text = natsStatus_GetText(s);
    if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') {
        text += std::string(" (") + last + ")";
    }
    if (code != 0) text += " [jetstream error " + std::to_string(static_cast<int>(code)) + "]";
    return text;
}

// One natsConnection and its JetStream context; destroyed with the last owner.
struct nats_link {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;

    nats_link() = default;
    nats_link(const nats_link&) = delete;
    nats_link& operator=(const nats_link&) = delete;
    ~nats_link() {
        if (nc != nullptr) natsConnection_Close(nc);
        if (js != nullptr) jsCtx_Destroy(js);
        if (nc != nullptr) natsConnection_Destroy(nc);
    }
};

// Connects to `url`; `js_options` (may be null) configures the JetStream context.
std::expected<std::unique_ptr<nats_link>, std::string> open_link(const std::string& url,
                                                                 jsOptions* js_options) {
    auto link = std::make_unique<nats_link>();
    natsOptions* opts = nullptr;
    if (auto s = natsOptions_Create(&opts); s != NATS_OK) {
        return std::unexpected("nats options: " + status_text(s));
    }
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetName(opts, "nagare-bench");
    natsOptions_SetTimeout(opts, connect_timeout_ms);
    const auto s = natsConnection_Connect(&link->nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) return std::unexpected("connect " + url + ": " + status_text(s));
    if (auto j = natsConnection_JetStream(&link->js, link->nc, js_options); j != NATS_OK) {
        return std::unexpected("jetstream context: " + status_text(j));
    }
    return link;
}

class nats_connection final : public connection {
public:
    nats_connection(std::string url, const connection_options& options, publish_sink& sink)
        : _url(std::move(url)), _options(options), _sink(&sink) {}
    ~nats_connection() override {
        close();
        _link.reset();
    }

    std::expected<void, std::string> open() {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.PublishAsync.MaxPending = static_cast<std::int64_t>(_options.inflight_messages);
        jo.PublishAsync.AckHandler = &nats_connection::on_ack;
        jo.PublishAsync.AckHandlerClosure = this;
        jo.PublishAsync.StallWait = stall_wait_ms;
        auto link = open_link(_url, &jo);
        if (!link) return std::unexpected(link.error());
        _link = std::move(*link);
        return {};
    }

    std::expected<void, std::string> publish(const publish_request& request,
                                             std::uint64_t token) override {
        if (_closed.load(std::memory_order_acquire)) return std::unexpected("connection closed");
        _subject.assign(request.subject);
        natsMsg* msg = nullptr;
        if (auto s = natsMsg_Create(&msg, _subject.c_str(), nullptr,
                                    reinterpret_cast<const char*>(request.payload.data()),
                                    static_cast<int>(request.payload.size()));
            s != NATS_OK) {
            return std::unexpected("message: " + status_text(s));
        }
        jsPubOptions po;
        jsPubOptions_Init(&po);
        if (!request.msg_id.empty()) {
            _msg_id.assign(request.msg_id);
            po.MsgId = _msg_id.c_str();
        }
        {
            std::lock_guard lock(_mutex);
            _tokens.emplace(msg, token);
        }
        natsMsg* const key = msg;
        for (;;) {
            const auto s = js_PublishMsgAsync(_link->js, &msg, &po);
            if (s == NATS_OK) return {};  // the library owns msg now
            if (s == NATS_TIMEOUT && !_closed.load(std::memory_order_acquire)) {
                ++_stalls;
                continue;  // window full: wait again
            }
            {
                std::lock_guard lock(_mutex);
                _tokens.erase(key);
            }
            natsMsg_Destroy(msg);
            return std::unexpected("publish: " + status_text(s));
        }
    }

    bool flush(std::chrono::milliseconds wait_max) override {
        std::unique_lock lock(_mutex);
        return _resolved.wait_for(lock, wait_max, [this] {
            return _tokens.empty() || _closed.load(std::memory_order_acquire);
        }) && _tokens.empty();
    }

    void close() noexcept override {
        if (_closed.exchange(true)) return;
        if (_link && _link->nc != nullptr) natsConnection_Close(_link->nc);
        std::lock_guard lock(_mutex);
        _resolved.notify_all();
    }

    void add_counters(target_counters& into) const override {
        add_counter(into, "publish_acks", static_cast<double>(_acks.load()));
        add_counter(into, "publish_stalls", static_cast<double>(_stalls.load()));
    }

private:
    // The library's thread: one call per published message.
    static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae,
                       void* closure) noexcept {
        auto* self = static_cast<nats_connection*>(closure);
        std::uint64_t token = 0;
        bool known = false;
        {
            std::lock_guard lock(self->_mutex);
            if (auto it = self->_tokens.find(msg); it != self->_tokens.end()) {
                token = it->second;
                known = true;
                self->_tokens.erase(it);
            }
        }
        if (known) {
            ++self->_acks;
            if (pa != nullptr) {
                self->_sink->on_published(
                    token, pa->Duplicate ? publish_outcome::duplicate : publish_outcome::stored,
                    {});
            } else {
                std::string text = pae != nullptr && pae->ErrText != nullptr
                                       ? std::string(pae->ErrText)
                                       : std::string(natsStatus_GetText(
                                             pae != nullptr ? pae->Err : NATS_ERR));
                if (text.empty()) text = "publish failed";
                self->_sink->on_published(token, publish_outcome::failed, text);
            }
            std::lock_guard lock(self->_mutex);
            if (self->_tokens.empty()) self->_resolved.notify_all();
        }
        natsMsg_Destroy(msg);
    }

    std::string _url;
    connection_options _options;
    publish_sink* _sink;
    std::unique_ptr<nats_link> _link;
    std::string _subject;  // the producer thread's buffers
    std::string _msg_id;
    std::mutex _mutex;
    std::condition_variable _resolved;
    std::unordered_map<const natsMsg*, std::uint64_t> _tokens;  // accepted, unresolved
    std::atomic<bool> _closed{false};
    std::atomic<std::uint64_t> _acks{0};
    std::atomic<std::uint64_t> _stalls{0};
};

// The delivery count from a JetStream ack subject:
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> or,
// with domain and account hash, two tokens more before the stream.
std::uint32_t delivery_count_of(std::string_view reply) {
    std::string_view tokens[12];
    std::size_t n = 0;
    while (n < std::size(tokens)) {
        const auto dot = reply.find('.');
        tokens[n++] = reply.substr(0, dot);
        if (dot == std::string_view::npos) break;
        reply.remove_prefix(dot + 1);
    }
    const std::size_t at = n == 9 ? 4 : (n >= 11 ? 6 : 0);
    std::uint32_t count = 1;
    if (at != 0) std::from_chars(tokens[at].data(), tokens[at].data() + tokens[at].size(), count);
    return count;
}

// One pull subscription and the thread that fetches for it. Sinks of
// subscriptions sharing a connection are called under its `sink_lock`.
class nats_subscription final : public subscription {
public:
    nats_subscription(std::shared_ptr<nats_link> link, std::shared_ptr<std::mutex> sink_lock,
                      bool owns_link, delivery_sink& sink, bool explicit_acks, int batch)
        : _link(std::move(link)),
          _sink_lock(std::move(sink_lock)),
          _owns_link(owns_link),
          _sink(&sink),
          _explicit_acks(explicit_acks),
          _batch(batch) {}
    ~nats_subscription() override { close(); }

    void start(natsSubscription* sub) {
        _sub = sub;
        _fetcher = std::thread([this] { fetch_loop(); });
    }

    bool drain(std::chrono::milliseconds wait_max) override {
        // A PONG after our acks: the server has read them.
        return natsConnection_FlushTimeout(_link->nc, wait_max.count()) == NATS_OK &&
               _ack_errors.load() == 0;
    }

    void close() noexcept override {
        if (_closing.exchange(true)) return;
        if (_fetcher.joinable()) _fetcher.join();
        if (_sub != nullptr) {
            // Removes the consumer when the library created it (ephemeral);
            // a bound durable stays.
            natsSubscription_Unsubscribe(_sub);
            natsSubscription_Destroy(_sub);
            _sub = nullptr;
        }
        if (_owns_link && _link->nc != nullptr) natsConnection_Close(_link->nc);
    }

    void add_counters(target_counters& into) const override {
        add_counter(into, "delivered", static_cast<double>(_delivered.load()));
        add_counter(into, "redelivered", static_cast<double>(_redelivered.load()));
        add_counter(into, "acks_sent", static_cast<double>(_acks_sent.load()));
        add_counter(into, "fetches", static_cast<double>(_fetches.load()));
    }

private:
    void fetch_loop() {
        while (!_closing.load(std::memory_order_acquire)) {
            natsMsgList list{};
            jsErrCode code = static_cast<jsErrCode>(0);
            const auto s = natsSubscription_Fetch(&list, _sub, _batch, fetch_wait_ms, &code);
            ++_fetches;
            if (s == NATS_TIMEOUT) continue;
            if (s != NATS_OK) {
                if (!_closing.load(std::memory_order_acquire)) {
                    report("fetch: " + status_text(s, code));
                }
                return;
            }
            for (int i = 0; i < list.Count; ++i) deliver(list.Msgs[i]);
            natsMsgList_Destroy(&list);
        }
    }

    void deliver(natsMsg* msg) {
        const char* id = nullptr;
        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) != NATS_OK) id = nullptr;
        const char* reply = natsMsg_GetReply(msg);
        const auto count = reply != nullptr ? delivery_count_of(reply) : 1u;
        const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(msg));
        const delivery d{{},
                         natsMsg_GetSubject(msg),
                         id != nullptr ? std::string_view(id) : std::string_view{},
                         {data, static_cast<std::size_t>(natsMsg_GetDataLength(msg))},
                         count};
        {
            std::unique_lock lock(*_sink_lock);
            _sink->on_delivered(d);
        }
        ++_delivered;
        if (count > 1) ++_redelivered;
        if (_explicit_acks) {
            if (auto s = natsMsg_Ack(msg, nullptr); s != NATS_OK) {
                ++_ack_errors;
                report("ack: " + status_text(s));
            } else {
                ++_acks_sent;
            }
        }
    }

    void report(const std::string& text) {
        std::unique_lock lock(*_sink_lock);
        _sink->on_subscription_error(text);
    }

    std::shared_ptr<nats_link> _link;
    std::shared_ptr<std::mutex> _sink_lock;
    bool _owns_link;
    delivery_sink* _sink;
    bool _explicit_acks;
    int _batch;
    natsSubscription* _sub = nullptr;
    std::thread _fetcher;
    std::atomic<bool> _closing{false};
    std::atomic<std::uint64_t> _delivered{0};
    std::atomic<std::uint64_t> _redelivered{0};
    std::atomic<std::uint64_t> _acks_sent{0};
    std::atomic<std::uint64_t> _ack_errors{0};
    std::atomic<std::uint64_t> _fetches{0};
};

std::expected<std::unique_ptr<subscription>, std::string> subscribe_on(
    std::shared_ptr<nats_link> link, std::shared_ptr<std::mutex> sink_lock, bool owns_link,
    const subscribe_request& request, delivery_sink& sink) {
    const bool explicit_acks = request.ack == ack_mode::explicit_each;
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.FilterSubject = request.subject.c_str();
    cc.DeliverPolicy = request.start == start_position::first ? js_DeliverAll : js_DeliverNew;
    cc.AckPolicy = explicit_acks ? js_AckExplicit : js_AckNone;
    cc.MaxAckPending = static_cast<std::int64_t>(request.inflight_messages);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = request.stream.c_str();
    so.ManualAck = true;
    jsErrCode code = static_cast<jsErrCode>(0);
    if (!request.consumer.empty()) {
        // Durable: made here if missing (shared by its subscribers), then
        // bound, so closing one subscriber does not remove it.
        cc.Durable = request.consumer.c_str();
        jsConsumerInfo* ci = nullptr;
        if (auto s = js_AddConsumer(&ci, link->js, request.stream.c_str(), &cc, nullptr, &code);
            s != NATS_OK && code != JSConsumerNameExistErr) {
            return std::unexpected("consumer add " + request.consumer + ": " +
                                   status_text(s, code));
        }
        if (ci != nullptr) jsConsumerInfo_Destroy(ci);
        so.Consumer = request.consumer.c_str();
    } else {
        so.Config = cc;
    }
    natsSubscription* sub = nullptr;
    const char* durable = request.consumer.empty() ? nullptr : request.consumer.c_str();
    if (auto s = js_PullSubscribe(&sub, link->js, request.subject.c_str(), durable, nullptr, &so,
                                  &code);
        s != NATS_OK) {
        return std::unexpected("subscribe " + request.stream + ": " + status_text(s, code));
    }
    const auto batch = static_cast<int>(
        std::clamp<std::size_t>(request.inflight_messages, 1, fetch_batch_max));
    auto result = std::make_unique<nats_subscription>(std::move(link), std::move(sink_lock),
                                                      owns_link, sink, explicit_acks, batch);
    result->start(sub);
    return result;
}

class nats_subscriber_connection final : public subscriber_connection {
public:
    explicit nats_subscriber_connection(std::shared_ptr<nats_link> link)
        : _link(std::move(link)), _sink_lock(std::make_shared<std::mutex>()) {}
    ~nats_subscriber_connection() override { close(); }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        return subscribe_on(_link, _sink_lock, false, request, sink);
    }

    void close() noexcept override {
        if (_link->nc != nullptr) natsConnection_Close(_link->nc);
    }

private:
    std::shared_ptr<nats_link> _link;
    std::shared_ptr<std::mutex> _sink_lock;
};

class nats_target final : public target {
public:
    explicit nats_target(nats_target_options options) : _options(std::move(options)) {}

    std::string_view name() const noexcept override { return "nats"; }

    std::expected<stream_handle, std::string> prepare_stream(durability mode) override {
        const std::string tag(to_string(mode));
        stream_handle handle{"bench_" + tag, "bench." + tag + "."};
        auto link = open_link(_options.url, nullptr);
        if (!link) return std::unexpected(link.error());
        jsStreamInfo* si = nullptr;
        jsErrCode code = static_cast<jsErrCode>(0);
        auto s = js_GetStreamInfo(&si, (*link)->js, handle.stream.c_str(), nullptr, &code);
        if (s == NATS_OK) {
            const bool file = si->Config != nullptr && si->Config->Storage == js_FileStorage;
            jsStreamInfo_Destroy(si);
            if (!file) {
                return std::unexpected("stream " + handle.stream +
                                       " exists without file storage; remove it first");
            }
            return handle;
        }
        if (s != NATS_NOT_FOUND && code != JSStreamNotFoundErr) {
            return std::unexpected("stream info " + handle.stream + ": " + status_text(s, code));
        }
        const std::string subjects = "bench." + tag + ".>";
        const char* subject_list[] = {subjects.c_str()};
        jsStreamConfig sc;
        jsStreamConfig_Init(&sc);
        sc.Name = handle.stream.c_str();
        sc.Subjects = subject_list;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.Duplicates = duplicate_window_ns;
        code = static_cast<jsErrCode>(0);
        s = js_AddStream(&si, (*link)->js, &sc, nullptr, &code);
        if (s != NATS_OK) {
            return std::unexpected("stream add " + handle.stream + ": " + status_text(s, code));
        }
        jsStreamInfo_Destroy(si);
        return handle;
    }

    std::expected<std::unique_ptr<connection>, std::string> connect(
        const connection_options& options, publish_sink& sink) override {
        auto c = std::make_unique<nats_connection>(_options.url, options, sink);
        if (auto opened = c->open(); !opened) return std::unexpected(opened.error());
        return c;
    }

    std::expected<std::unique_ptr<subscription>, std::string> subscribe(
        const subscribe_request& request, delivery_sink& sink) override {
        auto link = open_link(_options.url, nullptr);
        if (!link) return std::unexpected(link.error());
        return subscribe_on(std::shared_ptr<nats_link>(std::move(*link)),
                            std::make_shared<std::mutex>(), true, request, sink);
    }

    std::expected<std::unique_ptr<subscriber_connection>, std::string> connect_subscriber()
        override {
        auto link = open_link(_options.url, nullptr);
        if (!link) return std::unexpected(link.error());
        return std::make_unique<nats_subscriber_connection>(
            std::shared_ptr<nats_link>(std::move(*link)));
    }

    std::expected<void, std::string> remove_consumer(std::string_view stream,
                                                     std::string_view consumer) override {
        auto link = open_link(_options.url, nullptr);
        if (!link) return std::unexpected(link.error());
        const std::string s_name(stream), c_name(consumer);
        jsErrCode code = static_cast<jsErrCode>(0);
        if (auto s = js_DeleteConsumer((*link)->js, s_name.c_str(), c_name.c_str(), nullptr,
                                       &code);
            s != NATS_OK) {
            return std::unexpected("consumer rm " + c_name + ": " + status_text(s, code));
        }
        return {};
    }

private:
    nats_target_options _options;
};

}  // namespace

std::unique_ptr<target> make_nats_target(nats_target_options options) {
    return std::make_unique<nats_target>(std::move(options));
}

}  // namespace nagare::bench
