// Subject matching (ns per match) and subject validation.
#include <benchmark/benchmark.h>

#include <array>
#include <string_view>

#include "protocol/subject.h"

namespace nagare::protocol {
namespace {

constexpr std::array<std::string_view, 8> subjects = {
    "task.updated",       "task.created",        "order.tasks.reordered", "order.created",
    "stock.item.depleted", "task.comment.added", "audit.login.failed",    "user.profile.updated",
};

void match_bench(benchmark::State& state, std::string_view pattern) {
    std::size_t matched = 0;
    for (auto _ : state) {
        for (const auto s : subjects) matched += subject_matches(pattern, s) ? 1 : 0;
    }
    benchmark::DoNotOptimize(matched);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(subjects.size()));
}

void BM_MatchLiteral(benchmark::State& state) { match_bench(state, "task.updated"); }
void BM_MatchStar(benchmark::State& state) { match_bench(state, "*.tasks.*"); }
void BM_MatchTail(benchmark::State& state) { match_bench(state, "order.>"); }
BENCHMARK(BM_MatchLiteral);
BENCHMARK(BM_MatchStar);
BENCHMARK(BM_MatchTail);


void BM_ValidateSubject(benchmark::State& state) {
    std::size_t valid = 0;
    for (auto _ : state) {
        for (const auto s : subjects) valid += validate_subject(s) == errc::none ? 1 : 0;
    }
    benchmark::DoNotOptimize(valid);
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(subjects.size()));
}
BENCHMARK(BM_ValidateSubject);

}  // namespace
}  // namespace nagare::protocol
