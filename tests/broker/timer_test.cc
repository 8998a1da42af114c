#include "broker/io/timer.h"

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "net_test_support.h"

namespace nagare::broker::io {
namespace {

using namespace test;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct fire_recorder final : timer_handler {
    std::vector<clock_type::time_point> fired_at;
    std::function<void()> then;
    void on_timer() noexcept override {
        fired_at.push_back(clock_type::now());
        if (then) then();
    }
};

constexpr std::uint64_t ms_ns = 1'000'000;

TEST(Timer, FiresOnceNoEarlierThanItsDuration) {
    auto r = make_ring();
    fire_recorder handler;
    timer t(*r, handler);
    const auto armed_at = clock_type::now();
    t.arm(50 * ms_ns);
    EXPECT_TRUE(t.armed());
    EXPECT_FALSE(t.idle());
    ASSERT_TRUE(run_until(
        *r, [&] { return !handler.fired_at.empty(); }, 5s));
    const auto waited = handler.fired_at.front() - armed_at;
    EXPECT_GE(waited, 50ms);
    EXPECT_LT(waited, 2s);
    run_for(*r, 100ms);
    EXPECT_EQ(handler.fired_at.size(), 1u) << "one-shot";
    EXPECT_EQ(t.fired_count(), 1u);
    EXPECT_FALSE(t.armed());
    EXPECT_TRUE(t.idle());
}

TEST(Timer, CancelPreventsFiring) {
    auto r = make_ring();
    fire_recorder handler;
    timer t(*r, handler);
    t.arm(50 * ms_ns);
    turn(*r);  // the timeout is in the kernel
    t.cancel();
    EXPECT_FALSE(t.armed());
    t.cancel();  // idempotent
    run_for(*r, 150ms);
    EXPECT_TRUE(handler.fired_at.empty());
    EXPECT_TRUE(t.idle());
    EXPECT_EQ(t.fired_count(), 0u);
}

TEST(Timer, CancelAfterTheKernelExpiredItStillSuppressesTheCallback) {
    auto r = make_ring();
    fire_recorder handler;
    timer t(*r, handler);
    t.arm(1 * ms_ns);
    ASSERT_EQ(r->submit_and_wait(0), 0);
    std::this_thread::sleep_for(20ms);
    ASSERT_EQ(r->submit_and_wait(0), 0);
    ASSERT_EQ(r->completions_ready(), 1u) << "the expiry CQE is posted, not yet dispatched";
    t.cancel();
    ASSERT_TRUE(run_until(
        *r, [&] { return t.idle(); }, 5s));
    EXPECT_TRUE(handler.fired_at.empty());
}

TEST(Timer, PeriodicFiresEveryIntervalUntilCancelled) {
    auto r = make_ring();
    fire_recorder handler;
    timer t(*r, handler);
    const auto armed_at = clock_type::now();
    t.arm_periodic(20 * ms_ns);
    ASSERT_TRUE(run_until(
        *r, [&] { return handler.fired_at.size() >= 5; }, 5s));
    EXPECT_GE(handler.fired_at[4] - armed_at, 100ms) << "ticks on absolute deadlines";
    for (std::size_t i = 1; i < handler.fired_at.size(); ++i) {
        EXPECT_GT(handler.fired_at[i], handler.fired_at[i - 1]);
    }
    EXPECT_TRUE(t.armed());
    t.cancel();
    const std::size_t fired = handler.fired_at.size();
    ASSERT_TRUE(run_until(
        *r, [&] { return t.idle(); }, 5s));
    run_for(*r, 60ms);
    EXPECT_EQ(handler.fired_at.size(), fired);
    EXPECT_FALSE(t.armed());
}

TEST(Timer, HandlerMayRearmOrCancel) {
    auto r = make_ring();
    fire_recorder one_shot;
    timer again(*r, one_shot);
    one_shot.then = [&] {
        if (one_shot.fired_at.size() < 3) again.arm(5 * ms_ns);
    };
    again.arm(5 * ms_ns);

    fire_recorder periodic;
    timer ticking(*r, periodic);
    periodic.then = [&] {
        if (periodic.fired_at.size() == 2) ticking.cancel();
    };
    ticking.arm_periodic(5 * ms_ns);

    ASSERT_TRUE(run_until(
        *r, [&] { return again.idle() && ticking.idle(); }, 5s));
    run_for(*r, 30ms);
    EXPECT_EQ(one_shot.fired_at.size(), 3u);
    EXPECT_EQ(periodic.fired_at.size(), 2u);
}

}  // namespace
}  // namespace nagare::broker::io
