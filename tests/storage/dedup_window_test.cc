#include "storage/dedup_window.h"

#include <cstdint>
#include <cstdio>
#include <deque>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <xxhash.h>

namespace nagare::storage {
namespace {

constexpr std::uint64_t window_ns = 1'000'000;

dedup_window make_window(std::size_t max_entries, std::uint64_t seed = 42) {
    return dedup_window({.window_ns = window_ns, .max_entries = max_entries}, seed);
}

msg_id_hash id(int n) { return dedup_window::hash_msg_id("msg-" + std::to_string(n)); }

std::optional<std::uint64_t> offset_of(dedup_window& w, const msg_id_hash& h,
                                       std::uint64_t now_ns) {
    const auto hit = w.lookup(h, now_ns);
    if (!hit) return std::nullopt;
    return hit->original.value;
}

TEST(DedupWindow, HashIsXxh3With128BitsOfTheId) {
    const std::string msg_id = "01ARYZ6S41TSV4RRFFQ69G5FAV";
    const XXH128_hash_t expected = XXH3_128bits(msg_id.data(), msg_id.size());
    const msg_id_hash h = dedup_window::hash_msg_id(msg_id);
    EXPECT_EQ(h.low, expected.low64);
    EXPECT_EQ(h.high, expected.high64);
    EXPECT_EQ(dedup_window::hash_msg_id(msg_id), h);
    EXPECT_NE(dedup_window::hash_msg_id("01ARYZ6S41TSV4RRFFQ69G5FAW"), h);
}

TEST(DedupWindow, RejectsInvalidOptions) {
    using opts = dedup_window::options;
    EXPECT_THROW(dedup_window(opts{.window_ns = 0, .max_entries = 10}), std::invalid_argument);
    EXPECT_THROW(dedup_window(opts{.window_ns = 1, .max_entries = 0}), std::invalid_argument);
    EXPECT_THROW(dedup_window(opts{.window_ns = 1, .max_entries = dedup_max_entries_limit + 1}),
                 std::invalid_argument);
    const dedup_window smallest(opts{.window_ns = 1, .max_entries = 1});
    EXPECT_EQ(smallest.max_entries(), 1u);
    EXPECT_GT(smallest.table_slots(), 1u);
}

TEST(DedupWindow, DuplicateInsideWindowReportsOriginalOffset) {
    auto w = make_window(16);
    w.insert(id(1), offset{10}, 100);
    w.insert(id(2), offset{11}, 150);
    for (const std::uint64_t now : {std::uint64_t{100}, std::uint64_t{500}, 100 + window_ns - 1}) {
        const auto hit = w.lookup(id(1), now);
        ASSERT_TRUE(hit.has_value()) << now;
        EXPECT_EQ(hit->original, offset{10});
        EXPECT_FALSE(hit->pending);
    }
    EXPECT_EQ(offset_of(w, id(2), 150), 11u);
    EXPECT_FALSE(w.lookup(id(3), 150).has_value());
    EXPECT_EQ(w.counters().hits, 4u);
    EXPECT_EQ(w.counters().inserts, 2u);
    EXPECT_EQ(w.size(), 2u);
}

TEST(DedupWindow, WindowIsFixedFromFirstStoreAndRepeatsDoNotExtendIt) {
    auto w = make_window(16);
    w.insert(id(1), offset{1}, 0);
    for (std::uint64_t now = 0; now < window_ns; now += window_ns / 10) {
        EXPECT_EQ(offset_of(w, id(1), now), 1u);
    }
    EXPECT_EQ(offset_of(w, id(1), window_ns - 1), 1u);
    EXPECT_FALSE(w.lookup(id(1), window_ns).has_value());  // expires at t + window
    EXPECT_EQ(w.counters().hits, 11u);
    // After the window the id is stored again, with a fresh window.
    w.insert(id(1), offset{2}, window_ns);
    EXPECT_EQ(w.counters().expired, 1u);
    EXPECT_EQ(offset_of(w, id(1), 2 * window_ns - 1), 2u);
    EXPECT_FALSE(w.lookup(id(1), 2 * window_ns).has_value());
    EXPECT_EQ(w.size(), 1u);
}

TEST(DedupWindow, ExpireDropsOnlyEntriesPastTheirWindow) {
    auto w = make_window(16);
    w.insert(id(1), offset{1}, 0);
    w.insert(id(2), offset{2}, 10);
    w.insert(id(3), offset{3}, 20);
    EXPECT_EQ(w.expire(window_ns - 1), 0u);
    EXPECT_EQ(w.expire(window_ns + 5), 1u);
    EXPECT_EQ(w.size(), 2u);
    EXPECT_EQ(offset_of(w, id(2), window_ns + 5), 2u);
    EXPECT_EQ(w.expire(window_ns + 20), 2u);
    EXPECT_EQ(w.size(), 0u);
    EXPECT_EQ(w.counters().expired, 3u);
    EXPECT_EQ(w.counters().early_evictions, 0u);
}

TEST(DedupWindow, FullWindowEvictsTheOldestEarlyAndCountsIt) {
    auto w = make_window(4);
    for (int i = 0; i < 4; ++i) w.insert(id(i), offset{std::uint64_t(i)}, 0);
    EXPECT_EQ(w.counters().early_evictions, 0u);
    w.insert(id(4), offset{4}, 1);
    EXPECT_EQ(w.counters().early_evictions, 1u);
    EXPECT_EQ(w.size(), 4u);
    EXPECT_FALSE(w.lookup(id(0), 1).has_value());
    for (int i = 1; i <= 4; ++i) EXPECT_EQ(offset_of(w, id(i), 1), std::uint64_t(i));
    w.insert(id(5), offset{5}, 2);
    EXPECT_EQ(w.counters().early_evictions, 2u);
    EXPECT_FALSE(w.lookup(id(1), 2).has_value());
    EXPECT_EQ(offset_of(w, id(2), 2), 2u);
}

TEST(DedupWindow, ExpiredEntriesMakeRoomWithoutEarlyEviction) {
    auto w = make_window(2);
    w.insert(id(1), offset{1}, 0);
    w.insert(id(2), offset{2}, 1);
    w.insert(id(3), offset{3}, window_ns);  // id(1) expired at this time
    EXPECT_EQ(w.counters().expired, 1u);
    EXPECT_EQ(w.counters().early_evictions, 0u);
    EXPECT_EQ(offset_of(w, id(2), window_ns), 2u);
    EXPECT_EQ(offset_of(w, id(3), window_ns), 3u);
}

TEST(DedupWindow, StoringAnIdAgainReplacesItsEntry) {
    auto w = make_window(8);
    w.insert(id(1), offset{1}, 0);
    w.insert(id(1), offset{2}, 10);  // e.g. a rebuild over a log holding it twice
    EXPECT_EQ(w.size(), 1u);
    EXPECT_EQ(offset_of(w, id(1), 10), 2u);
    // The first entry leaves the ring without taking the id with it.
    EXPECT_EQ(w.expire(window_ns), 0u);
    EXPECT_EQ(offset_of(w, id(1), window_ns), 2u);
    EXPECT_EQ(w.expire(window_ns + 10), 1u);
    EXPECT_EQ(w.size(), 0u);
}

TEST(DedupWindow, PendingIdIsReportedWithItsPendingOffset) {
    auto w = make_window(16);
    w.insert(id(1), offset{1}, 0);
    w.insert_pending(id(2), offset{2}, 100);
    EXPECT_EQ(w.pending_count(), 1u);
    const auto hit = w.lookup(id(2), 100);
    ASSERT_TRUE(hit.has_value());
    EXPECT_EQ(hit->original, offset{2});
    EXPECT_TRUE(hit->pending);
    EXPECT_FALSE(w.lookup(id(1), 100)->pending);
    // A pending id does not expire while it waits for its fsync.
    EXPECT_EQ(w.expire(10 * window_ns), 1u);
    EXPECT_EQ(offset_of(w, id(2), 10 * window_ns), 2u);
    EXPECT_EQ(w.size(), 1u);
}

TEST(DedupWindow, AbortRemovesPendingIdsButNotCommittedOnes) {
    auto w = make_window(16);
    w.insert_pending(id(1), offset{1}, 0);
    EXPECT_EQ(w.commit_through(offset{1}), 1u);
    w.insert_pending(id(2), offset{2}, 5);
    w.insert_pending(id(3), offset{3}, 6);
    EXPECT_EQ(w.abort_from(offset{0}), 2u);  // only pending entries go, not id(1)
    EXPECT_FALSE(w.lookup(id(2), 6).has_value());
    EXPECT_FALSE(w.lookup(id(3), 6).has_value());
    EXPECT_EQ(offset_of(w, id(1), 6), 1u);
    EXPECT_EQ(w.pending_count(), 0u);
    EXPECT_EQ(w.counters().aborted, 2u);
    EXPECT_EQ(w.size(), 1u);
    // The log reuses the offsets that were not stored.
    w.insert_pending(id(3), offset{2}, 7);
    EXPECT_EQ(offset_of(w, id(3), 7), 2u);
}

TEST(DedupWindow, CommittedIdStaysUntilItsWindowEnds) {
    auto w = make_window(16);
    w.insert_pending(id(1), offset{1}, 100);
    w.insert_pending(id(2), offset{2}, 200);
    EXPECT_EQ(w.commit_through(offset{1}), 1u);
    EXPECT_FALSE(w.lookup(id(1), 200)->pending);
    EXPECT_TRUE(w.lookup(id(2), 200)->pending);
    EXPECT_EQ(w.commit_through(offset{5}), 1u);
    EXPECT_EQ(w.pending_count(), 0u);
    EXPECT_EQ(w.abort_from(offset{0}), 0u);
    EXPECT_EQ(offset_of(w, id(1), 100 + window_ns - 1), 1u);
    EXPECT_FALSE(w.lookup(id(1), 100 + window_ns).has_value());
    EXPECT_EQ(offset_of(w, id(2), 200 + window_ns - 1), 2u);
    EXPECT_EQ(w.expire(200 + window_ns), 2u);
}

TEST(DedupWindow, FullWindowEvictsEvenPendingEntries) {
    auto w = make_window(2);
    w.insert_pending(id(1), offset{1}, 0);
    w.insert_pending(id(2), offset{2}, 0);
    w.insert_pending(id(3), offset{3}, 0);
    EXPECT_EQ(w.counters().early_evictions, 1u);
    EXPECT_EQ(w.pending_count(), 2u);
    EXPECT_FALSE(w.lookup(id(1), 0).has_value());
    EXPECT_EQ(w.commit_through(offset{2}), 1u);
    EXPECT_EQ(w.abort_from(offset{3}), 1u);
    EXPECT_EQ(offset_of(w, id(2), 0), 2u);
    EXPECT_FALSE(w.lookup(id(3), 0).has_value());
}

TEST(DedupWindow, MovedWindowKeepsItsEntries) {
    auto w = make_window(8);
    w.insert_pending(id(1), offset{1}, 0);
    dedup_window moved = std::move(w);
    EXPECT_TRUE(moved.lookup(id(1), 0)->pending);
    EXPECT_EQ(moved.commit_through(offset{1}), 1u);
    EXPECT_EQ(offset_of(moved, id(1), 0), 1u);
}

TEST(DedupWindow, ClearDropsEveryEntryAndKeepsCounters) {
    auto w = make_window(8);
    w.insert(id(1), offset{1}, 0);
    w.insert_pending(id(2), offset{2}, 0);
    ASSERT_TRUE(w.lookup(id(1), 0).has_value());
    w.clear();
    EXPECT_EQ(w.size(), 0u);
    EXPECT_EQ(w.pending_count(), 0u);
    EXPECT_FALSE(w.lookup(id(1), 0).has_value());
    EXPECT_FALSE(w.lookup(id(2), 0).has_value());
    EXPECT_EQ(w.counters().hits, 1u);
    EXPECT_EQ(w.counters().inserts, 2u);
    w.insert(id(1), offset{0}, 0);  // an empty window takes any order again
    EXPECT_EQ(offset_of(w, id(1), 0), 0u);
}

// Hashes sharing `low` share a home slot whatever the seed; equal top bits of
// `high` give equal tags. A cluster longer than the saturated distance field.
TEST(DedupWindow, CollidingHashesFormOneClusterAndStayFindable) {
    auto w = make_window(64);
    std::vector<msg_id_hash> cluster;
    for (std::uint64_t i = 0; i < 48; ++i) {
        const std::uint64_t high = (i % 2 == 0) ? (0xABCDULL << 48) | i : (i << 40) | 7;
        cluster.push_back({.low = 0x1234, .high = high});
    }
    for (std::uint64_t i = 0; i < cluster.size(); ++i) w.insert(cluster[i], offset{i}, i);
    const std::uint64_t now = cluster.size();
    for (std::uint64_t i = 0; i < cluster.size(); ++i) EXPECT_EQ(offset_of(w, cluster[i], now), i);
    EXPECT_FALSE(w.lookup({.low = 0x1234, .high = (0xABCDULL << 48) | 999}, now).has_value());
    EXPECT_FALSE(w.lookup({.low = 0x1234, .high = 0}, now).has_value());
    // Expiring the first half shifts the rest back toward their home.
    EXPECT_EQ(w.expire(window_ns + 23), 24u);
    for (std::uint64_t i = 0; i < cluster.size(); ++i) {
        EXPECT_EQ(w.lookup(cluster[i], window_ns + 23).has_value(), i >= 24) << i;
    }
    for (std::uint64_t i = 0; i < 24; ++i) w.insert(cluster[i], offset{100 + i}, window_ns + 23);
    for (std::uint64_t i = 0; i < cluster.size(); ++i) {
        EXPECT_EQ(offset_of(w, cluster[i], window_ns + 23), i < 24 ? 100 + i : i) << i;
    }
    EXPECT_EQ(w.size(), cluster.size());
}

TEST(DedupWindow, MemoryPerEntryIsAtMost48Bytes) {
    // 1,000,000 is the default; 699,051 is the worst case of the rounding up
    // of the table to a power of two (its 1.5x lands just above 2^20).
    for (const std::size_t max_entries :
         {std::size_t{1000}, std::size_t{699'051}, dedup_max_entries_default}) {
        const dedup_window w({.window_ns = dedup_window_ns_default, .max_entries = max_entries});
        const double bytes_per_entry =
            static_cast<double>(w.memory_bytes()) / static_cast<double>(max_entries);
        std::printf("dedup_window max_entries=%zu: %.2f bytes per entry\n", max_entries,
                    bytes_per_entry);
        EXPECT_LE(bytes_per_entry, static_cast<double>(dedup_entry_bytes_max)) << max_entries;
        EXPECT_GE(w.table_slots() * 2, max_entries * 3) << "table at least 1.5x entries";
    }
    const dedup_window w(dedup_window::options{});
    RecordProperty("bytes_per_entry_at_1000000",
                   std::to_string(static_cast<double>(w.memory_bytes()) / 1e6));
}

TEST(DedupWindow, NothingGrowsUnderChurn) {
    auto w = make_window(1000);
    const std::size_t bytes = w.memory_bytes();
    const std::size_t slots = w.table_slots();
    std::uint64_t now = 0;
    for (std::uint64_t i = 0; i < 100'000; ++i) {
        now += i < 50'000 ? window_ns / 3000 : window_ns / 300;  // fills, then drains
        const msg_id_hash h{.low = i * 0x9E3779B97F4A7C15ULL, .high = i};
        if (!w.lookup(h, now)) w.insert_pending(h, offset{i}, now);
        if (i % 16 == 0) w.commit_through(offset{i});
        ASSERT_LE(w.size(), w.max_entries());
    }
    EXPECT_EQ(w.memory_bytes(), bytes);
    EXPECT_EQ(w.table_slots(), slots);
    EXPECT_GT(w.counters().early_evictions, 0u);
    EXPECT_GT(w.counters().expired, 0u);
}

TEST(DedupWindowDeathTest, OutOfOrderInsertsAbort) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            auto w = make_window(8);
            w.insert(id(1), offset{1}, 10);
            w.insert(id(2), offset{2}, 9);
        },
        "time order");
    EXPECT_DEATH(
        {
            auto w = make_window(8);
            w.insert(id(1), offset{2}, 10);
            w.insert(id(2), offset{2}, 10);
        },
        "offset order");
    EXPECT_DEATH(
        {
            auto w = make_window(8);
            w.insert_pending(id(1), offset{1}, 10);
            w.insert(id(2), offset{2}, 10);
        },
        "pending");
}

// ---- Randomized comparison with a plain model ------------------------------

struct hash_hasher {
    std::size_t operator()(const msg_id_hash& h) const noexcept {
        return static_cast<std::size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ULL));
    }
};

// The contract of dedup_window with a deque and an unordered_map: a FIFO of
// every entry (dead ones included), the newest entry per id.
class window_model {
public:
    window_model(std::uint64_t window, std::size_t max_entries)
        : _window_ns(window), _max_entries(max_entries) {}

    std::optional<dedup_hit> lookup(const msg_id_hash& h, std::uint64_t now_ns) {
        const auto it = _latest.find(h);
        if (it == _latest.end()) return std::nullopt;
        const std::size_t age = it->second - _ring.front().seq;
        const entry& e = _ring[age];
        const bool pending = age >= _ring.size() - pending_count;
        if (!pending && expired_at(e, now_ns)) return std::nullopt;
        ++counters.hits;
        return dedup_hit{.original = offset{e.offset}, .pending = pending};
    }

    void push(const msg_id_hash& h, std::uint64_t off, std::uint64_t t, bool pending) {
        expire(t);
        if (_ring.size() == _max_entries && drop_front()) ++counters.early_evictions;
        _ring.push_back({h, off, t, _next_seq});
        _latest[h] = _next_seq++;
        ++counters.inserts;
        if (pending) ++pending_count;
    }

    std::size_t commit_through(std::uint64_t last) {
        std::size_t n = 0;
        while (pending_count > 0 && _ring[_ring.size() - pending_count].offset <= last) {
            --pending_count;
            ++n;
        }
        return n;
    }

    std::size_t abort_from(std::uint64_t first) {
        std::size_t n = 0;
        while (pending_count > 0 && _ring.back().offset >= first) {
            forget(_ring.back());
            _ring.pop_back();
            --_next_seq;  // keeps the ring's seqs contiguous
            --pending_count;
            ++n;
        }
        counters.aborted += n;
        return n;
    }

    std::size_t expire(std::uint64_t now_ns) {
        std::size_t n = 0;
        while (_ring.size() > pending_count && expired_at(_ring.front(), now_ns)) {
            if (drop_front()) ++n;
        }
        counters.expired += n;
        return n;
    }

    void clear() {
        _ring.clear();
        _latest.clear();
        pending_count = 0;
    }

    [[nodiscard]] std::size_t size() const { return _latest.size(); }
    [[nodiscard]] std::optional<std::uint64_t> newest_offset() const {
        if (_ring.empty()) return std::nullopt;
        return _ring.back().offset;
    }
    [[nodiscard]] std::optional<std::uint64_t> first_pending_offset() const {
        if (pending_count == 0) return std::nullopt;
        return _ring[_ring.size() - pending_count].offset;
    }

    dedup_counters counters;
    std::size_t pending_count = 0;

private:
    struct entry {
        msg_id_hash hash;
        std::uint64_t offset;
        std::uint64_t stored_ns;
        std::uint64_t seq;
    };

    bool expired_at(const entry& e, std::uint64_t now_ns) const {
        return now_ns >= e.stored_ns && now_ns - e.stored_ns >= _window_ns;
    }
    bool forget(const entry& e) {
        const auto it = _latest.find(e.hash);
        if (it == _latest.end() || it->second != e.seq) return false;
        _latest.erase(it);
        return true;
    }
    bool drop_front() {
        const bool live = forget(_ring.front());
        _ring.pop_front();
        pending_count = std::min(pending_count, _ring.size());
        return live;
    }

    std::uint64_t _window_ns;
    std::size_t _max_entries;
    std::deque<entry> _ring;
    std::unordered_map<msg_id_hash, std::uint64_t, hash_hasher> _latest;
    std::uint64_t _next_seq = 0;
};

void expect_same_counters(const dedup_counters& a, const dedup_counters& b) {
    EXPECT_EQ(a.hits, b.hits);
    EXPECT_EQ(a.inserts, b.inserts);
    EXPECT_EQ(a.expired, b.expired);
    EXPECT_EQ(a.early_evictions, b.early_evictions);
    EXPECT_EQ(a.aborted, b.aborted);
}

// A pool of ids, some crafted to collide: a few share `low` (one home slot),
// some share the top bits of `high` (one tag).
std::vector<msg_id_hash> key_pool(std::mt19937_64& rng, std::size_t n) {
    std::vector<msg_id_hash> keys;
    for (std::size_t i = 0; i < n; ++i) {
        msg_id_hash h{.low = rng(), .high = rng()};
        if (i % 7 == 0) h.low = 0x5555 + i % 3;
        if (i % 5 == 0) h.high = (0x2A5ULL << 54) | (h.high >> 20);
        keys.push_back(h);
    }
    return keys;
}

struct model_case {
    std::uint64_t seed;
    std::size_t max_entries;
    std::uint64_t step_ns_max;  // the clock advances by up to this much per operation
    bool expect_early_evictions;
};

void PrintTo(const model_case& c, std::ostream* out) {
    *out << "seed " << c.seed << ", max_entries " << c.max_entries << ", step_ns_max "
         << c.step_ns_max;
}

class DedupWindowModel : public ::testing::TestWithParam<model_case> {};

struct random_run {
    explicit random_run(const model_case& c)
        : rng(c.seed),
          keys(key_pool(rng, c.max_entries * 3)),
          window({.window_ns = window_ns, .max_entries = c.max_entries}, c.seed),
          model(window_ns, c.max_entries),
          step_ns_max(c.step_ns_max) {}

    const msg_id_hash& any_key() { return keys[rng() % keys.size()]; }
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng() % n; }

    // Returns whether the id was found.
    bool check_lookup(const msg_id_hash& h, std::uint64_t now_ns) {
        const auto got = window.lookup(h, now_ns);
        const auto want = model.lookup(h, now_ns);
        EXPECT_EQ(got.has_value(), want.has_value()) << "op " << ops;
        if (got && want) {
            EXPECT_EQ(got->original, want->original) << "op " << ops;
            EXPECT_EQ(got->pending, want->pending) << "op " << ops;
        }
        return want.has_value();
    }

    void insert(const msg_id_hash& h, bool pending) {
        if (!pending && model.pending_count > 0) pending = true;
        if (pending) {
            window.insert_pending(h, offset{next_offset}, clock_ns);
        } else {
            window.insert(h, offset{next_offset}, clock_ns);
        }
        model.push(h, next_offset, clock_ns, pending);
        ++next_offset;
    }

    void commit_some() {
        const auto first = model.first_pending_offset();
        if (!first) return;
        const std::uint64_t last = *first + below(next_offset - *first + 1);
        ASSERT_EQ(window.commit_through(offset{last}), model.commit_through(last));
    }

    void abort_some() {
        const auto first = model.first_pending_offset();
        if (!first) return;
        const std::uint64_t lost = *first + below(next_offset - *first + 1);
        ASSERT_EQ(window.abort_from(offset{lost}), model.abort_from(lost));
        next_offset = lost;  // the log reuses the offsets not stored
    }

    void step() {
        // Busy and quiet phases: the window fills (early evictions), then drains (expiry).
        const std::uint64_t quiet = (ops / 10'000) % 2 == 1 ? 20 : 1;
        clock_ns += below(step_ns_max * quiet + 1);
        const auto r = below(100);
        if (r < 35) {
            check_lookup(any_key(), clock_ns + below(window_ns / 2));
        } else if (r < 60) {  // the broker's way: store only what is not a duplicate
            const msg_id_hash& h = any_key();
            if (!check_lookup(h, clock_ns)) insert(h, below(2) == 0);
        } else if (r < 70) {  // a rebuild's way: insert whatever the log holds
            insert(any_key(), below(2) == 0);
        } else if (r < 82) {
            commit_some();
        } else if (r < 87) {
            abort_some();
        } else if (r < 99) {
            ASSERT_EQ(window.expire(clock_ns), model.expire(clock_ns));
        } else if (below(20) == 0) {
            window.clear();
            model.clear();
        }
        ASSERT_EQ(window.size(), model.size()) << "op " << ops;
        ASSERT_EQ(window.pending_count(), model.pending_count) << "op " << ops;
        ++ops;
    }

    std::mt19937_64 rng;
    std::vector<msg_id_hash> keys;
    dedup_window window;
    window_model model;
    std::uint64_t step_ns_max;
    std::uint64_t clock_ns = 0;
    std::uint64_t next_offset = 0;
    std::uint64_t ops = 0;
};

TEST_P(DedupWindowModel, EveryLookupEqualsTheModel) {
    random_run run(GetParam());
    for (int i = 0; i < 120'000; ++i) {
        run.step();
        if (::testing::Test::HasFailure()) return;
    }
    for (const auto& key : run.keys) run.check_lookup(key, run.clock_ns);
    expect_same_counters(run.window.counters(), run.model.counters);
    EXPECT_GT(run.window.counters().hits, 1000u);
    EXPECT_GT(run.window.counters().expired, 100u);
    EXPECT_GT(run.window.counters().aborted, 100u);
    if (GetParam().expect_early_evictions) {
        EXPECT_GT(run.window.counters().early_evictions, 100u);
    }
}

// About 0.3 inserts per operation and steps of step_ns_max / 2 on average: a
// busy phase stores about 0.6 x window / step_ns_max ids per window; more
// than max_entries makes early evictions.
INSTANTIATE_TEST_SUITE_P(Seeds, DedupWindowModel,
                         ::testing::Values(model_case{1, 64, window_ns / 300, true},
                                           model_case{2, 64, window_ns / 10, false},
                                           model_case{3, 200, window_ns / 1000, true},
                                           model_case{4, 1000, window_ns / 5000, true},
                                           model_case{5, 1000, window_ns / 300, false},
                                           model_case{6, 7, window_ns / 50, true}),
                         [](const ::testing::TestParamInfo<model_case>& param_info) {
                             return "Seed" + std::to_string(param_info.param.seed) + "Max" +
                                    std::to_string(param_info.param.max_entries);
                         });

// ---- Rebuild -----------------------------------------------------------------

struct stored_record {
    msg_id_hash hash;
    std::uint64_t offset;
    std::uint64_t stored_ns;
};

// Runs the broker's way (pending, then commit or abort) and returns what the
// log would hold. Aborts every abort_every-th batch, none when 0.
std::vector<stored_record> broker_run(dedup_window& w, std::mt19937_64& rng, int batches,
                                      int abort_every) {
    std::vector<stored_record> log;
    std::uint64_t clock_ns = 0;
    for (int b = 0; b < batches; ++b) {
        clock_ns += rng() % (window_ns / 40);
        const std::uint64_t first = log.size();
        std::vector<stored_record> batch;
        for (std::uint64_t i = 0, n = 1 + rng() % 8; i < n; ++i) {
            const msg_id_hash h{.low = rng() % 400, .high = 1};
            if (w.lookup(h, clock_ns)) continue;
            batch.push_back({h, first + batch.size(), clock_ns});
            w.insert_pending(h, offset{batch.back().offset}, clock_ns);
        }
        if (batch.empty()) continue;
        if (abort_every != 0 && b % abort_every == 0) {
            EXPECT_EQ(w.abort_from(offset{first}), batch.size());
            continue;
        }
        w.commit_through(offset{batch.back().offset});
        log.insert(log.end(), batch.begin(), batch.end());
    }
    return log;
}

TEST(DedupWindow, RebuildByReinsertingAnswersLikeTheOriginal) {
    struct variant {
        std::size_t max_entries;
        int abort_every;  // aborts only where the window never fills
    };
    for (const variant v : {variant{64, 0}, variant{100'000, 3}}) {
        const dedup_window::options opts{.window_ns = window_ns, .max_entries = v.max_entries};
        dedup_window original(opts);
        std::mt19937_64 rng(v.max_entries);
        const auto log = broker_run(original, rng, 3000, v.abort_every);
        ASSERT_FALSE(log.empty());
        dedup_window rebuilt(opts);
        const std::uint64_t newest_ns = log.back().stored_ns;
        for (const auto& r : log) {
            if (r.stored_ns >= rebuilt.rebuild_from_ns(newest_ns)) {
                rebuilt.insert(r.hash, offset{r.offset}, r.stored_ns);
            }
        }
        std::size_t hits = 0;
        for (const std::uint64_t now : {newest_ns, newest_ns + window_ns / 2,
                                        newest_ns + window_ns - 1, newest_ns + window_ns}) {
            for (std::uint64_t low = 0; low < 400; ++low) {
                const msg_id_hash h{.low = low, .high = 1};
                const auto a = original.lookup(h, now);
                const auto b = rebuilt.lookup(h, now);
                ASSERT_EQ(a.has_value(), b.has_value()) << low << " at " << now;
                if (a) {
                    EXPECT_EQ(a->original, b->original);
                    EXPECT_FALSE(b->pending);
                    ++hits;
                }
            }
        }
        EXPECT_GT(hits, 50u) << "the comparison saw live entries";
        if (v.max_entries == 64) {
            EXPECT_GT(original.counters().early_evictions, 0u);
        }
        if (v.abort_every != 0) {
            EXPECT_GT(original.counters().aborted, 0u);
        }
    }
}

}  // namespace
}  // namespace nagare::storage
