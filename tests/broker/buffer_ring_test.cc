#include "broker/io/buffer_ring.h"

#include <vector>

#include "broker/io/tcp_connection.h"
#include "net_test_support.h"

namespace nagare::broker::io {
namespace {

using namespace test;
using namespace std::chrono_literals;

struct recorder final : connection_handler {
    std::vector<std::byte> received;
    std::vector<int> closed;
    std::size_t largest_delivery_bytes = 0;
    void on_data(std::span<const std::byte> bytes) noexcept override {
        received.insert(received.end(), bytes.begin(), bytes.end());
        largest_delivery_bytes = std::max(largest_delivery_bytes, bytes.size());
    }
    void on_send_space() noexcept override {}
    void on_closed(int error) noexcept override { closed.push_back(error); }
};

TEST(BufferRing, CreateRejectsBadShapes) {
    auto r = make_ring();
    ASSERT_NE(r, nullptr);
    EXPECT_EQ(buffer_ring::create(*r, 1, 0, 64).error(), EINVAL);
    EXPECT_EQ(buffer_ring::create(*r, 1, 3, 64).error(), EINVAL) << "not a power of two";
    EXPECT_EQ(buffer_ring::create(*r, 1, 65536, 64).error(), EINVAL) << "16-bit buffer ids";
    EXPECT_EQ(buffer_ring::create(*r, 1, 4, 0).error(), EINVAL);
}

TEST(BufferRing, ASecondRingWithTheSameGroupIdIsRefused) {
    auto r = make_ring();
    ASSERT_NE(r, nullptr);
    auto first = buffer_ring::create(*r, 7, 4, 64);
    ASSERT_TRUE(first.has_value()) << std::strerror(first ? 0 : first.error());
    auto second = buffer_ring::create(*r, 7, 4, 64);
    ASSERT_FALSE(second.has_value());
    EXPECT_EQ(second.error(), EEXIST);
    auto other = buffer_ring::create(*r, 8, 4, 64);
    EXPECT_TRUE(other.has_value());
}

TEST(BufferRing, ViewsAreDisjointBuffersOfTheRequestedSize) {
    auto r = make_ring();
    ASSERT_NE(r, nullptr);
    auto b = buffer_ring::create(*r, 2, 8, 100);
    ASSERT_TRUE(b.has_value());
    const buffer_ring& ring_of_buffers = **b;
    EXPECT_EQ(ring_of_buffers.count(), 8u);
    EXPECT_EQ(ring_of_buffers.buffer_bytes(), 100u);
    EXPECT_EQ(ring_of_buffers.buffer_group_id(), 2);
    for (std::uint16_t id = 1; id < 8; ++id) {
        const auto previous = ring_of_buffers.view(static_cast<std::uint16_t>(id - 1), 100);
        const auto current = ring_of_buffers.view(id, 100);
        EXPECT_EQ(previous.data() + 100, current.data());
        EXPECT_EQ(current.size(), 100u);
    }
}

// 2 buffers of 64 bytes against 64 KiB sent at once: the multishot recv
// empties the ring, ends with -ENOBUFS, is re-armed after the buffers are
// recycled, and every byte still arrives, in order.
TEST(BufferRing, ExhaustedRingIsRefilledAndDeliversEverything) {
    auto r = make_ring();
    ASSERT_NE(r, nullptr);
    auto b = buffer_ring::create(*r, 1, 2, 64);
    ASSERT_TRUE(b.has_value());
    socket_pair pair;
    ASSERT_NO_FATAL_FAILURE(make_pair(pair));
    recorder handler;
    tcp_connection c(*r, **b);
    c.open(pair.release_server(), handler);
    turn(*r);

    constexpr std::size_t total_bytes = 64u << 10;
    std::vector<std::byte> bytes(total_bytes);
    for (std::size_t i = 0; i < total_bytes; ++i) bytes[i] = pattern_byte(i);
    ASSERT_TRUE(write_all(pair.client, bytes.data(), bytes.size()));
    ASSERT_TRUE(run_until(
        *r, [&] { return handler.received.size() >= total_bytes; }, 30s));
    run_for(*r, 10ms);
    EXPECT_EQ(handler.received, bytes);
    EXPECT_GT(c.probe().recv_enobufs, 0u) << "the tiny ring ran dry";
    EXPECT_GE(c.probe().recv_sqes, c.probe().recv_enobufs + 1) << "each -ENOBUFS re-armed";
    EXPECT_LE(handler.largest_delivery_bytes, 64u);
    EXPECT_EQ((*b)->recycled_count(), c.probe().recv_cqes - c.probe().recv_enobufs)
        << "every delivered buffer went back";
    EXPECT_TRUE(handler.closed.empty());
    std::printf("64 KiB through 2 x 64 B: %llu recv SQEs, %llu recv CQEs, %llu -ENOBUFS\n",
                static_cast<unsigned long long>(c.probe().recv_sqes),
                static_cast<unsigned long long>(c.probe().recv_cqes),
                static_cast<unsigned long long>(c.probe().recv_enobufs));

    c.close();
    ASSERT_TRUE(run_until(
        *r, [&] { return c.idle(); }, 5s));
    EXPECT_EQ(handler.closed, std::vector<int>{0});
}

}  // namespace
}  // namespace nagare::broker::io
