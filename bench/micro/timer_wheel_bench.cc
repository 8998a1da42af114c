// timer_wheel with the broker's shape: 65,536 ids (in-flight deliveries of a
// shard), a 1 ms tick, 4,096 slots, deadlines ack_wait (30 s, ~7 revolutions)
// ahead, half the ids armed:
//  - schedule + cancel of one id (a delivery acked before its deadline);
//    items/s counts pairs;
//  - schedule + fire: each iteration arms one id 30 s ahead and advances the
//    clock by 30 s / armed ids, so about one deadline fires per iteration (a
//    steady stream of redeliveries); items/s counts ids fired.
#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "broker/timer_wheel.h"

namespace nagare::broker {
namespace {

constexpr std::uint32_t ids_max = 65'536;
constexpr std::uint32_t armed_ids = ids_max / 2;
constexpr std::uint64_t tick_ns = 1'000'000;
constexpr std::uint32_t slots = 4096;
constexpr std::uint64_t ack_wait_ns = 30'000'000'000;

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// Ids [0, armed_ids) armed at deadlines spread over one ack_wait.
void arm_half(timer_wheel& wheel, std::uint64_t now_ns) {
    for (std::uint32_t id = 0; id < armed_ids; ++id) {
        wheel.schedule(id, now_ns + ack_wait_ns * id / armed_ids);
    }
}

void BM_TimerWheelScheduleCancel(benchmark::State& state) {
    std::uint64_t now_ns = 0;
    timer_wheel wheel(ids_max, tick_ns, slots, now_ns);
    arm_half(wheel, now_ns);
    std::uint64_t random = 1;
    for (auto _ : state) {
        random = splitmix64(random);
        const auto id = armed_ids + static_cast<std::uint32_t>(random % armed_ids);
        wheel.schedule(id, now_ns + ack_wait_ns + random % tick_ns);
        wheel.cancel(id);
    }
    if (wheel.size() != armed_ids) state.SkipWithError("lost an id");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TimerWheelScheduleCancel);

void BM_TimerWheelScheduleFire(benchmark::State& state) {
    std::uint64_t now_ns = 0;
    timer_wheel wheel(ids_max, tick_ns, slots, now_ns);
    arm_half(wheel, now_ns);
    constexpr std::uint64_t step_ns = ack_wait_ns / armed_ids;
    std::uint32_t free_id = armed_ids;              // fired ids are re-used in turn
    std::vector<std::uint32_t> fired_ids(ids_max);  // a ring of ids free to re-use
    std::uint32_t fired_head = 0;
    std::uint32_t fired_tail = 0;
    std::int64_t fired = 0;
    for (auto _ : state) {
        std::uint32_t id = 0;
        if (free_id < ids_max) {
            id = free_id++;
        } else {
            id = fired_ids[fired_head++ % ids_max];
        }
        wheel.schedule(id, now_ns + ack_wait_ns);
        now_ns += step_ns;
        fired += static_cast<std::int64_t>(wheel.advance(
            now_ns, [&](std::uint32_t fired_id) { fired_ids[fired_tail++ % ids_max] = fired_id; }));
    }
    state.SetItemsProcessed(fired);
    state.counters["fired_per_iteration"] =
        static_cast<double>(fired) / static_cast<double>(state.iterations());
    state.counters["armed"] = wheel.size();
}
BENCHMARK(BM_TimerWheelScheduleFire);

}  // namespace
}  // namespace nagare::broker
