#include "broker/io/tcp_connection.h"

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "net_test_support.h"

namespace nagare::broker::io {
namespace {

using namespace test;
using namespace std::chrono_literals;

// Records what a connection reports.
struct recorder : connection_handler {
    std::vector<std::byte> received;
    std::vector<int> closed;
    int send_space_calls = 0;

    recorder() { received.reserve(1u << 20); }
    void on_data(std::span<const std::byte> bytes) noexcept override {
        received.insert(received.end(), bytes.begin(), bytes.end());
    }
    void on_send_space() noexcept override { ++send_space_calls; }
    void on_closed(int error) noexcept override { closed.push_back(error); }
};

std::vector<std::byte> pattern(std::uint64_t first, std::size_t bytes) {
    std::vector<std::byte> out(bytes);
    for (std::size_t i = 0; i < bytes; ++i) out[i] = pattern_byte(first + i);
    return out;
}

// Index of the first byte that breaks the pattern, or bytes.size().
std::size_t pattern_mismatch(std::span<const std::byte> bytes, std::uint64_t first = 0) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] != pattern_byte(first + i)) return i;
    }
    return bytes.size();
}

class TcpConnection : public ::testing::Test {
protected:
    void SetUp() override {
        _ring = make_ring();
        ASSERT_NE(_ring, nullptr);
        auto b = buffer_ring::create(*_ring, 1, 64, 4096);
        ASSERT_TRUE(b.has_value()) << std::strerror(b ? 0 : b.error());
        _buffers = std::move(*b);
    }
    // Closes `c` if needed and turns the loop until it is idle.
    void close_and_wait(tcp_connection& c) {
        c.close();
        ASSERT_TRUE(run_until(
            *_ring, [&] { return c.idle(); }, 5s));
    }

    std::unique_ptr<ring> _ring;
    std::unique_ptr<buffer_ring> _buffers;
};

// Echoes everything back; when the send queue is full it keeps the rest,
// pauses reading and continues on on_send_space.
struct echo_handler final : recorder {
    tcp_connection* connection = nullptr;
    std::vector<std::byte> pending;
    std::size_t pending_offset = 0;
    std::uint64_t pauses = 0;

    echo_handler() { pending.reserve(1u << 20); }
    void on_data(std::span<const std::byte> bytes) noexcept override {
        pending.insert(pending.end(), bytes.begin(), bytes.end());
        flush();
    }
    void on_send_space() noexcept override {
        recorder::on_send_space();
        flush();
    }
    void flush() noexcept {
        while (pending_offset < pending.size()) {
            const std::size_t n = std::min<std::size_t>(pending.size() - pending_offset, 16u << 10);
            if (!connection->send(std::span{pending}.subspan(pending_offset, n))) {
                if (!connection->reading_paused()) ++pauses;
                connection->pause_reading();
                return;
            }
            pending_offset += n;
        }
        pending.clear();
        pending_offset = 0;
        connection->resume_reading();
    }
};

TEST_F(TcpConnection, EchoesTenMebibytesOfRandomChunksInOrder) {
    constexpr std::size_t total_bytes = 10u << 20;
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_receive_timeout(pair.client, 30s);
    echo_handler echo;
    tcp_connection c(*_ring, *_buffers, 64u << 10);
    echo.connection = &c;
    c.open(pair.release_server(), echo);

    const int client = pair.client;
    std::thread writer([client] {
        std::mt19937_64 random(42);
        std::uniform_int_distribution<std::size_t> chunk(1, 64u << 10);
        std::uint64_t position = 0;
        while (position < total_bytes) {
            const std::size_t n = std::min(chunk(random), total_bytes - position);
            const auto bytes = pattern(position, n);
            if (!write_all(client, bytes.data(), n)) return;
            position += n;
        }
    });
    std::atomic<bool> reader_done{false};
    std::size_t echoed_mismatch = 0;
    bool echoed_complete = false;
    std::thread reader([&] {
        std::vector<std::byte> back(total_bytes);
        echoed_complete = read_all(client, back.data(), back.size());
        echoed_mismatch = pattern_mismatch(back);
        reader_done.store(true, std::memory_order_release);
    });
    const bool done = run_until(
        *_ring, [&] { return reader_done.load(std::memory_order_acquire); }, 60s);
    if (!done) ::shutdown(client, SHUT_RDWR);  // unblock the threads before failing
    writer.join();
    reader.join();
    ASSERT_TRUE(done);
    EXPECT_TRUE(echoed_complete);
    EXPECT_EQ(echoed_mismatch, total_bytes) << "first wrong byte of the echo";
    EXPECT_EQ(c.probe().received_bytes, total_bytes);
    EXPECT_EQ(c.probe().sent_bytes, total_bytes);
    std::printf("echo: %llu recv CQEs, %llu send SQEs (%llu wrapped), %llu partial, %llu pauses\n",
                static_cast<unsigned long long>(c.probe().recv_cqes),
                static_cast<unsigned long long>(c.probe().send_sqes),
                static_cast<unsigned long long>(c.probe().sendmsg_sqes),
                static_cast<unsigned long long>(c.probe().send_partials),
                static_cast<unsigned long long>(echo.pauses));

    // The peer's close ends it with 0.
    ::close(pair.client);
    pair.client = -1;
    ASSERT_TRUE(run_until(
        *_ring, [&] { return !echo.closed.empty(); }, 5s));
    EXPECT_EQ(echo.closed, std::vector<int>{0});
    EXPECT_TRUE(c.idle());
}

TEST_F(TcpConnection, ManySmallSendsInOneTurnGoOutInOneSqe) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_receive_timeout(pair.client, 10s);
    recorder r;
    tcp_connection c(*_ring, *_buffers);
    c.open(pair.release_server(), r);
    turn(*_ring);

    constexpr std::size_t sends_count = 1000;
    constexpr std::size_t send_bytes = 10;
    const auto bytes = pattern(0, sends_count * send_bytes);
    for (std::size_t i = 0; i < sends_count; ++i) {
        ASSERT_TRUE(c.send(std::span{bytes}.subspan(i * send_bytes, send_bytes)));
    }
    EXPECT_EQ(c.probe().send_sqes, 0u) << "nothing goes out before the turn's submit";
    EXPECT_EQ(c.send_queued_bytes(), bytes.size());
    ASSERT_TRUE(run_until(*_ring, [&] { return c.probe().sent_bytes == bytes.size(); }));
    EXPECT_EQ(c.probe().send_sqes, 1u);
    EXPECT_EQ(c.probe().send_cqes, 1u);
    EXPECT_EQ(c.send_queued_bytes(), 0u);

    std::vector<std::byte> back(bytes.size());
    ASSERT_TRUE(read_all(pair.client, back.data(), back.size()));
    EXPECT_EQ(back, bytes);
    close_and_wait(c);
    EXPECT_EQ(r.closed, std::vector<int>{0});
}

TEST_F(TcpConnection, WrappedQueueGoesOutAsOneSendmsgWithTwoParts) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_receive_timeout(pair.client, 10s);
    recorder r;
    tcp_connection c(*_ring, *_buffers, 1000);
    c.open(pair.release_server(), r);
    const auto bytes = pattern(0, 1150);
    const auto part = [&](std::size_t from, std::size_t n) {
        return std::span{bytes}.subspan(from, n);
    };

    ASSERT_TRUE(c.send(part(0, 800)));
    ASSERT_EQ(_ring->submit_and_wait(1), 0);  // the 800 are in flight, their CQE not yet dispatched
    ASSERT_TRUE(c.send(part(800, 150)));      // queued behind them: [800, 950)
    EXPECT_EQ(c.send_space_bytes(), 50u);
    _ring->dispatch();                    // 800 sent: [800, 950) remains and is scheduled
    ASSERT_TRUE(c.send(part(950, 200)));  // [950, 1000) + [0, 150): the queue wraps
    ASSERT_TRUE(run_until(*_ring, [&] { return c.probe().sent_bytes == bytes.size(); }));
    EXPECT_EQ(c.probe().send_sqes, 2u);
    EXPECT_EQ(c.probe().sendmsg_sqes, 1u);

    std::vector<std::byte> back(bytes.size());
    ASSERT_TRUE(read_all(pair.client, back.data(), back.size()));
    EXPECT_EQ(pattern_mismatch(back), bytes.size());
    close_and_wait(c);
}

TEST_F(TcpConnection, PeerCloseReportsClosedWithZeroOnce) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    recorder r;
    tcp_connection c(*_ring, *_buffers);
    const int server = pair.release_server();
    c.open(server, r);
    const auto hello = pattern(0, 100);
    ASSERT_TRUE(write_all(pair.client, hello.data(), hello.size()));
    ::close(pair.client);
    pair.client = -1;
    ASSERT_TRUE(run_until(
        *_ring, [&] { return !r.closed.empty(); }, 5s));
    run_for(*_ring, 20ms);
    EXPECT_EQ(r.closed, std::vector<int>{0});
    EXPECT_EQ(r.received, hello) << "bytes before the FIN are delivered";
    EXPECT_TRUE(c.idle());
    EXPECT_EQ(c.fd(), -1);
    EXPECT_EQ(::fcntl(server, F_GETFD), -1) << "the socket is closed";
    EXPECT_FALSE(c.send(hello)) << "a closed connection refuses sends";
}

TEST_F(TcpConnection, ResetByPeerReportsConnreset) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    recorder r;
    tcp_connection c(*_ring, *_buffers);
    c.open(pair.release_server(), r);
    turn(*_ring);
    const linger abortive{1, 0};
    ASSERT_EQ(::setsockopt(pair.client, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive)), 0);
    ::close(pair.client);  // sends an RST
    pair.client = -1;
    ASSERT_TRUE(run_until(
        *_ring, [&] { return !r.closed.empty(); }, 5s));
    EXPECT_EQ(r.closed, std::vector<int>{-ECONNRESET});
    EXPECT_TRUE(c.idle());
}

TEST_F(TcpConnection, PauseReadingThrottlesThePeerAndResumeDeliversEveryByteOnce) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair, 4096));
    set_buffer_bytes(pair.client, SO_SNDBUF, 4096);
    ASSERT_EQ(::fcntl(pair.client, F_SETFL, ::fcntl(pair.client, F_GETFL) | O_NONBLOCK), 0);
    recorder r;
    tcp_connection c(*_ring, *_buffers);
    c.open(pair.release_server(), r);

    std::uint64_t written = 0;
    const auto write_some = [&](std::size_t n) -> bool {  // false on EAGAIN
        const auto bytes = pattern(written, n);
        const ssize_t sent = ::send(pair.client, bytes.data(), n, MSG_NOSIGNAL);
        if (sent < 0) {
            EXPECT_EQ(errno, EAGAIN) << std::strerror(errno);
            return false;
        }
        written += static_cast<std::uint64_t>(sent);
        return true;
    };
    ASSERT_TRUE(write_some(1000));
    ASSERT_TRUE(run_until(*_ring, [&] { return r.received.size() == written; }));

    c.pause_reading();
    EXPECT_TRUE(c.reading_paused());
    run_for(*_ring, 20ms);  // the cancel lands
    // Keep writing while the loop turns; the peer must hit EAGAIN and stay there.
    bool stalled = false;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!stalled && std::chrono::steady_clock::now() < deadline && written < (64u << 20)) {
        if (write_some(4096)) continue;
        run_for(*_ring, 30ms);
        stalled = !write_some(4096);
    }
    ASSERT_TRUE(stalled) << "the peer never blocked; wrote " << written;
    const std::size_t received_while_paused = r.received.size();
    run_for(*_ring, 50ms);
    EXPECT_EQ(r.received.size(), received_while_paused) << "no delivery while paused";
    EXPECT_LT(received_while_paused, written) << "unread bytes wait in the kernel";

    c.resume_reading();
    EXPECT_FALSE(c.reading_paused());
    ASSERT_TRUE(run_until(*_ring, [&] { return r.received.size() >= written; }));
    run_for(*_ring, 20ms);
    EXPECT_EQ(r.received.size(), written) << "every byte exactly once";
    EXPECT_EQ(pattern_mismatch(r.received), r.received.size());
    EXPECT_GE(c.probe().recv_sqes, 2u) << "resume re-arms the recv";
    close_and_wait(c);
}

TEST_F(TcpConnection, FullSendQueueRefusesAndSignalsSpaceOnceDrained) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_receive_timeout(pair.client, 10s);
    recorder r;
    constexpr std::size_t capacity_bytes = 64u << 10;
    tcp_connection c(*_ring, *_buffers, capacity_bytes);
    c.open(pair.release_server(), r);

    const auto bytes = pattern(0, capacity_bytes + (16u << 10));
    const auto chunk = [&](std::size_t i) {
        return std::span{bytes}.subspan(i * (16u << 10), 16u << 10);
    };
    for (std::size_t i = 0; i < 4; ++i) ASSERT_TRUE(c.send(chunk(i)));
    EXPECT_EQ(c.send_space_bytes(), 0u);
    EXPECT_FALSE(c.send(chunk(4)));
    EXPECT_FALSE(c.send(chunk(4)));
    EXPECT_EQ(c.probe().send_refusals, 2u);
    EXPECT_EQ(c.send_queued_bytes(), capacity_bytes) << "a refused send queues nothing";

    std::vector<std::byte> back(capacity_bytes);
    bool read_ok = false;
    std::thread reader([&] { read_ok = read_all(pair.client, back.data(), back.size()); });
    ASSERT_TRUE(run_until(*_ring, [&] { return r.send_space_calls > 0; }));
    reader.join();
    ASSERT_TRUE(read_ok);
    run_for(*_ring, 20ms);
    EXPECT_EQ(r.send_space_calls, 1);
    EXPECT_EQ(pattern_mismatch(back), back.size());
    ASSERT_TRUE(c.send(chunk(4))) << "the producer continues after on_send_space";
    std::vector<std::byte> rest(16u << 10);
    ASSERT_TRUE(run_until(*_ring, [&] { return c.send_queued_bytes() == 0; }));
    ASSERT_TRUE(read_all(pair.client, rest.data(), rest.size()));
    EXPECT_EQ(pattern_mismatch(rest, capacity_bytes), rest.size());
    close_and_wait(c);
}

// Destroys its connection inside on_closed, as a connection pool would recycle it.
struct destroying_recorder final : recorder {
    std::unique_ptr<tcp_connection> connection;
    void on_closed(int error) noexcept override {
        recorder::on_closed(error);
        EXPECT_TRUE(connection->idle());
        connection.reset();
    }
};

TEST_F(TcpConnection, CloseWithRecvAndSendInFlightClosesOnceAfterTheirCqes) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_buffer_bytes(pair.client, SO_RCVBUF, 4096);
    set_buffer_bytes(pair.server, SO_SNDBUF, 8192);  // no autotuning: the send must stall
    destroying_recorder r;
    constexpr std::size_t queue_bytes = 1u << 20;
    r.connection = std::make_unique<tcp_connection>(*_ring, *_buffers, queue_bytes);
    tcp_connection& c = *r.connection;
    const int server = pair.release_server();
    c.open(server, r);
    const auto bytes = pattern(0, queue_bytes);
    ASSERT_TRUE(c.send(bytes));
    run_for(*_ring, 50ms);
    ASSERT_GT(c.probe().send_sqes, 0u);
    ASSERT_LT(c.probe().sent_bytes, queue_bytes) << "the send is still in flight";
    ASSERT_EQ(c.probe().recv_cqes, 0u) << "the recv is still armed";

    c.close();
    EXPECT_FALSE(c.is_open());
    EXPECT_FALSE(c.idle()) << "the fd stays open until the recv and send CQEs are back";
    EXPECT_GE(::fcntl(server, F_GETFD), 0);
    ASSERT_TRUE(run_until(
        *_ring, [&] { return !r.closed.empty(); }, 5s));
    EXPECT_EQ(r.connection, nullptr);
    run_for(*_ring, 30ms);
    EXPECT_EQ(r.closed, std::vector<int>{0});
    EXPECT_EQ(::fcntl(server, F_GETFD), -1);
}

TEST_F(TcpConnection, CloseAfterSendDeliversTheQueueThenEof) {
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    set_receive_timeout(pair.client, 10s);
    recorder r;
    tcp_connection c(*_ring, *_buffers);
    c.open(pair.release_server(), r);
    const auto bytes = pattern(0, 200u << 10);
    ASSERT_TRUE(c.send(bytes));
    c.close_after_send();
    EXPECT_FALSE(c.is_open());

    std::vector<std::byte> back(bytes.size());
    bool read_ok = false;
    char extra = 0;
    ssize_t after = -2;
    std::thread reader([&] {
        read_ok = read_all(pair.client, back.data(), back.size());
        after = ::recv(pair.client, &extra, 1, 0);
    });
    ASSERT_TRUE(run_until(*_ring, [&] { return !r.closed.empty(); }));
    reader.join();
    EXPECT_TRUE(read_ok);
    EXPECT_EQ(back, bytes);
    EXPECT_EQ(after, 0) << "EOF after the queued bytes";
    EXPECT_EQ(r.closed, std::vector<int>{0});
    EXPECT_TRUE(c.idle());
}

TEST_F(TcpConnection, ReopenAfterCloseServesANewSocket) {
    recorder first;
    recorder second;
    tcp_connection c(*_ring, *_buffers);
    {
        socket_pair pair;
        ASSERT_NO_FATAL_FAILURE(make_pair(pair));
        c.open(pair.release_server(), first);
        close_and_wait(c);
    }
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    c.open(pair.release_server(), second);
    const auto bytes = pattern(0, 5000);
    ASSERT_TRUE(write_all(pair.client, bytes.data(), bytes.size()));
    ASSERT_TRUE(run_until(*_ring, [&] { return second.received.size() == bytes.size(); }));
    EXPECT_EQ(second.received, bytes);
    EXPECT_TRUE(first.received.empty());
    EXPECT_EQ(first.closed, std::vector<int>{0});
    close_and_wait(c);
    EXPECT_EQ(second.closed, std::vector<int>{0});
}

}  // namespace
}  // namespace nagare::broker::io
