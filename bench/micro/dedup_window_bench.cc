// dedup_window with 1,000,000 live entries and a 30 s window (the defaults):
// ns per insert, per lookup that hits, per lookup that misses, and per
// publish the broker's way (lookup, insert_pending, commit per batch of 256).
// The clock advances 30 us per insert, so each insert also expires one entry.
#include <cstdint>

#include <benchmark/benchmark.h>

#include "storage/dedup_window.h"

namespace nagare::storage {
namespace {

constexpr std::size_t live_entries = 1'000'000;
constexpr std::uint64_t window_ns = 30'000'000'000;
constexpr std::uint64_t step_ns = window_ns / live_entries;
constexpr std::uint64_t batch_records = 256;

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

// The n-th id's hash: random bits like XXH3's, without hashing in the loop
// (BM_DedupHashMsgId measures that).
msg_id_hash key(std::uint64_t n) noexcept {
    return {.low = splitmix64(n), .high = splitmix64(n ^ 0x5555555555555555ULL)};
}

// Ids 0..next-1 went in at 30 us intervals: the last 1,000,000 are live.
struct filled_window {
    dedup_window window{{.window_ns = window_ns, .max_entries = live_entries}};
    std::uint64_t next = 0;
    std::uint64_t now_ns = 0;

    filled_window() {
        while (next < live_entries) insert_next();
    }
    void insert_next() noexcept {
        window.insert(key(next), offset{next}, now_ns);
        ++next;
        now_ns += step_ns;
    }
};

filled_window& shared_window() {
    static filled_window w;
    return w;
}

void BM_DedupInsert(benchmark::State& state) {
    filled_window& w = shared_window();
    for (auto _ : state) w.insert_next();
    state.SetItemsProcessed(state.iterations());
    state.counters["early_evictions"] = static_cast<double>(w.window.counters().early_evictions);
    state.counters["size"] = static_cast<double>(w.window.size());
}
BENCHMARK(BM_DedupInsert);

void BM_DedupLookupHit(benchmark::State& state) {
    filled_window& w = shared_window();
    const std::uint64_t newest_ns = w.now_ns - step_ns;  // the oldest entry is live
    std::uint64_t random = 1;
    std::uint64_t found = 0;
    for (auto _ : state) {
        random = splitmix64(random);
        const auto hit = w.window.lookup(key(w.next - 1 - random % live_entries), newest_ns);
        found += hit ? 1 : 0;
    }
    if (found != static_cast<std::uint64_t>(state.iterations())) state.SkipWithError("a miss");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DedupLookupHit);

void BM_DedupLookupMiss(benchmark::State& state) {
    filled_window& w = shared_window();
    std::uint64_t random = 2;
    std::uint64_t found = 0;
    for (auto _ : state) {
        random = splitmix64(random);
        // Ids not inserted yet.
        found += w.window.lookup(key(w.next + random % live_entries), w.now_ns) ? 1 : 0;
    }
    if (found != 0) state.SkipWithError("a hit");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DedupLookupMiss);

// The publish path: check, then insert pending; commit once per batch.
void BM_DedupPublishPending(benchmark::State& state) {
    filled_window& w = shared_window();
    for (auto _ : state) {
        const msg_id_hash h = key(w.next);
        if (!w.window.lookup(h, w.now_ns)) w.window.insert_pending(h, offset{w.next}, w.now_ns);
        if (w.next % batch_records == 0) w.window.commit_through(offset{w.next});
        ++w.next;
        w.now_ns += step_ns;
    }
    (void)w.window.commit_through(offset{w.next});
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DedupPublishPending);

void BM_DedupHashMsgId(benchmark::State& state) {
    char msg_id[] = "01ARYZ6S41TSV4RRFFQ69G5FAV";  // a ULID: 26 characters
    std::uint64_t sum = 0;
    for (auto _ : state) {
        ++msg_id[25];
        sum += dedup_window::hash_msg_id({msg_id, sizeof msg_id - 1}).low;
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(sizeof msg_id - 1));
}
BENCHMARK(BM_DedupHashMsgId);

}  // namespace
}  // namespace nagare::storage
