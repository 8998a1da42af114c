#include "broker/timer_wheel.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "tests/protocol/alloc_counter.h"

namespace nagare::broker {
namespace {

constexpr std::uint64_t ms = 1'000'000;

// Fires due ids into a vector.
std::vector<std::uint32_t> advance(timer_wheel& wheel, std::uint64_t now_ns) {
    std::vector<std::uint32_t> fired;
    const auto count = wheel.advance(now_ns, [&](std::uint32_t id) {
        EXPECT_FALSE(wheel.armed(id)) << "disarmed before the call";
        fired.push_back(id);
    });
    EXPECT_EQ(count, fired.size());
    std::sort(fired.begin(), fired.end());
    return fired;
}

using ids = std::vector<std::uint32_t>;

TEST(TimerWheel, FiresAtItsExactDeadlineNotAtItsTick) {
    timer_wheel wheel(16, ms, 8, 0);
    wheel.schedule(3, 5 * ms + ms / 2);
    EXPECT_TRUE(wheel.armed(3));
    EXPECT_EQ(wheel.deadline_ns(3), 5 * ms + ms / 2);
    EXPECT_EQ(wheel.size(), 1u);
    EXPECT_EQ(advance(wheel, 5 * ms), ids{});
    EXPECT_EQ(advance(wheel, 5 * ms + ms / 2 - 1), ids{});
    EXPECT_EQ(advance(wheel, 5 * ms + ms / 2), ids{3});
    EXPECT_FALSE(wheel.armed(3));
    EXPECT_EQ(wheel.size(), 0u);
    EXPECT_EQ(advance(wheel, 100 * ms), ids{});  // fires once
}

TEST(TimerWheel, DeadlinesBeyondOneRevolutionWaitForTheirTime) {
    timer_wheel wheel(16, ms, 8, 0);
    wheel.schedule(1, 100 * ms);  // 12.5 revolutions ahead
    wheel.schedule(2, 4 * ms);    // the same slot as 100 ms
    for (std::uint64_t t = 1; t < 100; ++t) {
        const auto fired = advance(wheel, t * ms);
        EXPECT_EQ(fired, t == 4 ? ids{2} : ids{}) << "at " << t << " ms";
    }
    EXPECT_EQ(advance(wheel, 100 * ms), ids{1});
}

TEST(TimerWheel, PastDeadlinesFireAtTheNextAdvance) {
    timer_wheel wheel(16, ms, 8, 50 * ms);
    wheel.schedule(7, 10 * ms);  // before the wheel's time
    EXPECT_EQ(advance(wheel, 50 * ms), ids{7});
    ASSERT_EQ(advance(wheel, 60 * ms + 10), ids{});
    wheel.schedule(8, 60 * ms);  // inside the current tick, already past
    wheel.schedule(9, 0);
    EXPECT_EQ(advance(wheel, 60 * ms + 10), (ids{8, 9}));
}

TEST(TimerWheel, ANowBeforeTheLastAdvanceFiresOnlyWhatItReached) {
    timer_wheel wheel(16, ms, 8, 0);
    ASSERT_EQ(advance(wheel, 50 * ms), ids{});
    wheel.schedule(1, 40 * ms);
    wheel.schedule(2, 45 * ms);
    EXPECT_EQ(advance(wheel, 42 * ms), ids{1});  // a clock that stepped back
    EXPECT_EQ(advance(wheel, 45 * ms), ids{2});
}

TEST(TimerWheel, ScheduleMovesAnArmedIdAndCancelDisarms) {
    timer_wheel wheel(16, ms, 8, 0);
    wheel.schedule(1, 3 * ms);
    wheel.schedule(2, 3 * ms);
    wheel.schedule(1, 20 * ms);  // moved, not duplicated
    EXPECT_EQ(wheel.size(), 2u);
    wheel.cancel(2);
    wheel.cancel(2);   // not armed: a no-op
    wheel.cancel(15);  // never armed
    EXPECT_EQ(wheel.size(), 1u);
    EXPECT_FALSE(wheel.armed(2));
    EXPECT_EQ(advance(wheel, 10 * ms), ids{});
    wheel.schedule(1, 5 * ms);  // moved into the past
    EXPECT_EQ(advance(wheel, 10 * ms), ids{1});
    EXPECT_EQ(advance(wheel, 30 * ms), ids{});
    EXPECT_EQ(wheel.size(), 0u);
}

TEST(TimerWheel, ALongGapVisitsEachSlotOnceAndFiresEverythingDue) {
    timer_wheel wheel(1024, ms, 64, 0);
    std::mt19937_64 rng(7);
    for (std::uint32_t id = 0; id < 1024; ++id) wheel.schedule(id, rng() % (1000 * ms));
    const auto visited = wheel.slots_visited();
    EXPECT_EQ(advance(wheel, 1'000'000'000 * ms).size(), 1024u);  // 10^9 ticks later
    EXPECT_EQ(wheel.slots_visited() - visited, 64u);
    EXPECT_EQ(wheel.size(), 0u);
    // Time that reaches UINT64_MAX (a 1 ns tick) is no overflow either.
    timer_wheel fine(4, 1, 4, 0);
    fine.schedule(0, UINT64_MAX);
    EXPECT_EQ(advance(fine, UINT64_MAX - 1), ids{});
    EXPECT_EQ(advance(fine, UINT64_MAX), ids{0});
}

TEST(TimerWheel, TheCallbackMayCancelAndScheduleAnyId) {
    timer_wheel wheel(16, ms, 8, 0);
    wheel.schedule(1, 2 * ms);
    wheel.schedule(2, 2 * ms);  // same slot, due together with 1
    wheel.schedule(3, 3 * ms);
    std::vector<std::uint32_t> fired;
    const auto count = wheel.advance(3 * ms, [&](std::uint32_t id) {
        fired.push_back(id);
        if (id == 1 || id == 2) wheel.cancel(id == 1 ? 2 : 1);  // the other one
        if (id == 3) wheel.schedule(3, 50 * ms);                // re-arm itself
        wheel.schedule(10, 40 * ms);
    });
    EXPECT_EQ(count, 2u);  // 1 or 2 (whichever came first), and 3
    EXPECT_EQ(fired.size(), 2u);
    EXPECT_TRUE(std::find(fired.begin(), fired.end(), 3u) != fired.end());
    EXPECT_TRUE(wheel.armed(3));
    EXPECT_TRUE(wheel.armed(10));
    EXPECT_EQ(wheel.size(), 2u);
    EXPECT_EQ(advance(wheel, 45 * ms), ids{10});
    EXPECT_EQ(advance(wheel, 50 * ms), ids{3});
}

TEST(TimerWheel, AnIdRescheduledIntoThePastFromItsCallbackFiresAgainLater) {
    timer_wheel wheel(4, ms, 8, 0);
    wheel.schedule(0, 5 * ms);
    int calls = 0;
    const auto count = wheel.advance(5 * ms, [&](std::uint32_t id) {
        ++calls;
        wheel.schedule(id, 1 * ms);  // no endless loop
    });
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(advance(wheel, 5 * ms), ids{0});
}

TEST(TimerWheel, OperationsAllocateNothing) {
    timer_wheel wheel(4096, ms, 256, 0);
    std::mt19937_64 rng(3);
    std::uint64_t now_ns = 0;
    std::size_t fired = 0;
    const auto before = protocol::testing::allocations();
    for (int round = 0; round < 10'000; ++round) {
        const auto id = static_cast<std::uint32_t>(rng() % 4096);
        if (rng() % 4 == 0) {
            wheel.cancel(id);
        } else {
            wheel.schedule(id, now_ns + rng() % (1000 * ms));
        }
        now_ns += rng() % (2 * ms);
        fired += wheel.advance(now_ns, [&](std::uint32_t) {});
    }
    EXPECT_EQ(protocol::testing::allocations(), before);
    EXPECT_GT(fired, 0u);
}

// The wheel against a std::multimap of (deadline, id): random schedules
// (past, near, many revolutions ahead), cancels, advances by small steps and
// long gaps, and callbacks that schedule and cancel other ids.
TEST(TimerWheel, MatchesAMultimapModel) {
    constexpr std::uint32_t capacity = 512;
    constexpr std::uint64_t tick_ns = 1000;
    constexpr std::uint32_t slots = 32;
    std::mt19937_64 rng(2024);
    std::uint64_t now_ns = 1'000'000;
    timer_wheel wheel(capacity, tick_ns, slots, now_ns);
    std::multimap<std::uint64_t, std::uint32_t> model;
    std::vector<std::optional<std::multimap<std::uint64_t, std::uint32_t>::iterator>> where(
        capacity);
    const auto model_cancel = [&](std::uint32_t id) {
        if (where[id]) model.erase(*where[id]);
        where[id].reset();
    };
    const auto model_schedule = [&](std::uint32_t id, std::uint64_t deadline_ns) {
        model_cancel(id);
        where[id] = model.emplace(deadline_ns, id);
    };
    const auto random_deadline = [&] {
        switch (rng() % 4) {
            case 0:
                return now_ns - std::min(now_ns, rng() % (5 * tick_ns));  // past
            case 1:
                return now_ns + rng() % (2 * tick_ns);  // this tick or next
            case 2:
                return now_ns + rng() % (slots * tick_ns);  // this revolution
            default:
                return now_ns + rng() % (20 * slots * tick_ns);  // many ahead
        }
    };
    std::size_t fired_total = 0;
    for (int step = 0; step < 200'000; ++step) {
        const auto id = static_cast<std::uint32_t>(rng() % capacity);
        const auto op = rng() % 10;
        if (op < 5) {
            const auto deadline_ns = random_deadline();
            wheel.schedule(id, deadline_ns);
            model_schedule(id, deadline_ns);
        } else if (op < 7) {
            wheel.cancel(id);
            model_cancel(id);
        } else {
            now_ns += rng() % 50 == 0 ? rng() % (100 * slots * tick_ns) : rng() % (3 * tick_ns);
            std::map<std::uint32_t, bool> due;  // id -> fired
            for (auto it = model.begin(); it != model.end() && it->first <= now_ns; ++it) {
                due[it->second] = false;
            }
            const auto fired = wheel.advance(now_ns, [&](std::uint32_t fired_id) {
                const auto it = due.find(fired_id);
                ASSERT_TRUE(it != due.end() && !it->second) << "id " << fired_id;
                it->second = true;
                model_cancel(fired_id);
                // Callbacks change other ids; only in ways whose outcome does
                // not depend on the order ids fire in.
                const auto other = static_cast<std::uint32_t>(rng() % capacity);
                if (rng() % 4 == 0) {
                    const auto later_ns = now_ns + 1 + rng() % (40 * slots * tick_ns);
                    wheel.schedule(other, later_ns);
                    model_schedule(other, later_ns);
                    due.erase(other);
                } else if (rng() % 4 == 0) {
                    wheel.cancel(other);
                    model_cancel(other);
                    due.erase(other);
                }
            });
            for (const auto& [due_id, was_fired] : due) {
                ASSERT_TRUE(was_fired) << "id " << due_id << " due at " << now_ns;
            }
            fired_total += fired;
        }
        ASSERT_EQ(wheel.size(), model.size());
        ASSERT_EQ(wheel.armed(id), where[id].has_value());
        if (where[id]) {
            ASSERT_EQ(wheel.deadline_ns(id), (*where[id])->first);
        }
    }
    EXPECT_GT(fired_total, 10'000u);
    for (std::uint32_t id = 0; id < capacity; ++id) {
        ASSERT_EQ(wheel.armed(id), where[id].has_value());
    }
}

TEST(TimerWheelDeathTest, BadArgumentsAbort) {
    EXPECT_DEATH(timer_wheel(16, ms, 6, 0), "power of two");
    EXPECT_DEATH(timer_wheel(16, 0, 8, 0), "ticks take time");
    EXPECT_DEATH(timer_wheel(0, ms, 8, 0), "ticks take time");
    EXPECT_DEATH(timer_wheel(timer_wheel::nodes_max - 8, ms, 8, 0), "fit in a u32");
    timer_wheel wheel(16, ms, 8, 0);
    EXPECT_DEATH(wheel.schedule(16, ms), "below capacity");
    EXPECT_DEATH(wheel.cancel(16), "below capacity");
    EXPECT_DEATH((void)wheel.deadline_ns(1), "armed");
}

}  // namespace
}  // namespace nagare::broker
