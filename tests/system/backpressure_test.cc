// A producer that never reads its acks is throttled: the broker stops
// reading its socket once max_pending_publish messages wait, so the
// producer's sends block, and the broker's memory stays bounded.
#include <fcntl.h>
#include <gtest/gtest.h>

#include "tests/system/nagared_process.h"

namespace nagare::testing {
namespace {

TEST(Backpressure, ProducerThatNeverReadsAcksIsThrottledAndMemoryStaysBounded) {
    const auto dir = temp_dir("backpressure");
    nagared_process broker(dir / "data");
    ASSERT_TRUE(broker.start());
    raw_client c(broker.port());
    ASSERT_TRUE(c.hello());
    const int small = 64 << 10;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ::fcntl(c.fd(), F_SETFL, ::fcntl(c.fd(), F_GETFL) | O_NONBLOCK);
    const auto rss_start_kib = broker.rss_kib();
    const std::string payload(1024, 'x');
    std::vector<std::string> ids(64);
    std::vector<protocol::message_ref> batch(64);
    std::uint64_t sent_bytes = 0;
    std::uint64_t messages_sent = 0;
    bool throttled = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::vector<std::byte> pending;
    while (std::chrono::steady_clock::now() < deadline && !throttled) {
        if (pending.empty()) {
            for (std::size_t i = 0; i < batch.size(); ++i) {
                ids[i] = "bp-" + std::to_string(messages_sent + i);
                batch[i] = {"proj-bp", "task.updated",
                            ids[i], {}, std::as_bytes(std::span{payload})};
            }
            const auto frame = c.encoder().publish(messages_sent, batch);
            pending.assign(frame.begin(), frame.end());
            messages_sent += batch.size();
        }
        // Throttled: the socket stays full for a whole second.
        pollfd p{c.fd(), POLLOUT, 0};
        if (::poll(&p, 1, 1000) == 0) {
            throttled = true;
            break;
        }
        const auto n = ::send(c.fd(), pending.data(), pending.size(), MSG_NOSIGNAL);
        if (n > 0) {
            sent_bytes += static_cast<std::uint64_t>(n);
            pending.erase(pending.begin(), pending.begin() + n);
        }
    }
    EXPECT_TRUE(throttled) << "sent " << sent_bytes << " bytes without being throttled";
    // The broker accepted at most about max_pending_publish (4096) messages
    // plus what the socket buffers hold; its memory did not follow the sender.
    const auto rss_end_kib = broker.rss_kib();
    std::printf("backpressure: throttled after %llu bytes (%llu messages); broker RSS %zu -> %zu KiB\n",
                static_cast<unsigned long long>(sent_bytes),
                static_cast<unsigned long long>(messages_sent), rss_start_kib, rss_end_kib);
    // Once throttled, nothing more is taken: the sender stays blocked.
    pollfd p{c.fd(), POLLOUT, 0};
    EXPECT_EQ(::poll(&p, 1, 2000), 0) << "the broker read again although no ack was read";
    // Bounded: fixed buffers, plus the dedup window of the ids stored
    // (at most 1,000,000 × ~40 B per partition, allocated up front, touched as it fills).
    EXPECT_LT(rss_end_kib, rss_start_kib + 96 * 1024);
    EXPECT_EQ(broker.stop(), 0);
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace nagare::testing
