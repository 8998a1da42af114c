#include "broker/io/waker.h"

#include <atomic>
#include <cstdio>
#include <thread>

#include "net_test_support.h"

namespace nagare::broker::io {
namespace {

using namespace test;
using namespace std::chrono_literals;

struct counting_handler final : wake_handler {
    const std::atomic<std::uint64_t>* counter = nullptr;
    std::uint64_t last_seen = 0;
    std::uint64_t wakes = 0;
    void on_wake() noexcept override {
        ++wakes;
        if (counter != nullptr) last_seen = counter->load(std::memory_order_acquire);
    }
};

TEST(Waker, WakesArePendingOnceUntilTheTargetDrains) {
    auto a = make_ring();
    auto b = make_ring();
    counting_handler handler;
    auto target = wake_target::create(*b, handler);
    ASSERT_TRUE(target.has_value());
    (*target)->start();
    waker w(*a, **target);

    for (int i = 0; i < 100; ++i) w.wake();
    EXPECT_EQ(w.wakes_sent(), 1u);
    EXPECT_EQ(w.wakes_coalesced(), 99u);
    ASSERT_TRUE(run_until(
        *a, [&] { return w.idle(); }, 5s));
    ASSERT_TRUE(run_until(
        *b, [&] { return handler.wakes == 1; }, 5s));
    w.wake();  // the drain cleared the flag: this one goes out
    EXPECT_EQ(w.wakes_sent(), 2u);
    ASSERT_TRUE(run_until(
        *a, [&] { return w.idle(); }, 5s));
    ASSERT_TRUE(run_until(
        *b, [&] { return handler.wakes == 2; }, 5s));
    run_for(*b, 20ms);
    EXPECT_EQ(handler.wakes, 2u);
    EXPECT_EQ((*target)->wakes_received(), 2u);

    (*target)->stop();
    ASSERT_TRUE(run_until(
        *b, [&] { return (*target)->idle(); }, 5s));
}

class WakerAcrossThreads : public ::testing::TestWithParam<wake_path> {};

// Thread A stores 1..10,000 into a shared counter and wakes B after each
// store; B, on its own ring, must end having read 10,000, and must have
// received every wake A sent (coalesced ones are never sent).
TEST_P(WakerAcrossThreads, TenThousandWakesEndWithTheLastValue) {
    constexpr std::uint64_t wakes_count = 10'000;
    std::atomic<std::uint64_t> counter{0};
    std::atomic<wake_target*> shared_target{nullptr};
    std::atomic<std::uint64_t> a_sent{0};
    std::atomic<bool> a_done{false};
    std::atomic<bool> b_gave_up{false};
    wake_path a_path = GetParam();
    std::uint64_t a_failures = 0;
    std::uint64_t a_coalesced = 0;
    std::uint64_t b_last_seen = 0;
    std::uint64_t b_received = 0;
    bool b_ok = false;

    std::thread b_thread([&] {
        auto b = make_ring();  // SINGLE_ISSUER: created on the thread that drives it
        counting_handler handler;
        handler.counter = &counter;
        auto target = wake_target::create(*b, handler);
        if (!b || !target) return;
        (*target)->start();
        turn(*b);
        shared_target.store(target->get(), std::memory_order_release);
        b_ok = run_until(
            *b,
            [&] {
                return a_done.load(std::memory_order_acquire) && handler.last_seen == wakes_count &&
                       (*target)->wakes_received() == a_sent.load(std::memory_order_acquire);
            },
            30s);
        if (!b_ok) b_gave_up.store(true, std::memory_order_release);
        run_for(*b, 20ms);  // nothing more may arrive
        b_last_seen = handler.last_seen;
        b_received = (*target)->wakes_received();
        (*target)->stop();
        (void)run_until(
            *b, [&] { return (*target)->idle(); }, 5s);
    });
    std::thread a_thread([&] {
        auto a = make_ring();
        wake_target* target = nullptr;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while ((target = shared_target.load(std::memory_order_acquire)) == nullptr) {
            if (std::chrono::steady_clock::now() > deadline) return;
            std::this_thread::yield();
        }
        waker w(*a, *target, GetParam());
        for (std::uint64_t i = 1; i <= wakes_count; ++i) {
            counter.store(i, std::memory_order_release);
            w.wake();
            if (a->submit_and_wait(0) != 0) break;
            a->dispatch();
        }
        (void)run_until(
            *a, [&] { return w.idle(); }, 10s);
        a_path = w.path();
        a_failures = w.msg_ring_failures();
        a_coalesced = w.wakes_coalesced();
        a_sent.store(w.wakes_sent(), std::memory_order_release);
        a_done.store(true, std::memory_order_release);
    });
    a_thread.join();
    b_thread.join();

    std::printf("wake path: %s; sent %llu, coalesced %llu, received %llu, MSG_RING failures %llu\n",
                to_string(a_path), static_cast<unsigned long long>(a_sent.load()),
                static_cast<unsigned long long>(a_coalesced),
                static_cast<unsigned long long>(b_received),
                static_cast<unsigned long long>(a_failures));
    ASSERT_TRUE(a_done.load());
    EXPECT_TRUE(b_ok);
    EXPECT_FALSE(b_gave_up.load());
    EXPECT_EQ(b_last_seen, wakes_count);
    EXPECT_EQ(b_received, a_sent.load()) << "every wake sent arrives, once";
    EXPECT_EQ(a_sent.load() + a_coalesced, wakes_count);
    EXPECT_GE(a_sent.load(), 1u);
    if (GetParam() == wake_path::msg_ring) {
        // MSG_RING (kernel >= 5.18) is expected; the eventfd fallback is
        // accepted only when the kernel refused MSG_RING (printed above).
        if (a_path == wake_path::msg_ring) {
            EXPECT_EQ(a_failures, 0u);
        } else {
            EXPECT_GT(a_failures, 0u) << "switched to the eventfd without a refusal";
        }
    } else {
        EXPECT_EQ(a_path, wake_path::eventfd);
    }
}

INSTANTIATE_TEST_SUITE_P(Paths, WakerAcrossThreads,
                         ::testing::Values(wake_path::msg_ring, wake_path::eventfd),
                         [](const auto& param_info) {
                             return std::string(to_string(param_info.param));
                         });

}  // namespace
}  // namespace nagare::broker::io
