#include "protocol/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace nagare::protocol {

std::size_t latency_histogram::index_of(std::uint64_t value) noexcept {
    if (value < sub_buckets) return static_cast<std::size_t>(value);
    const auto top_bit = static_cast<unsigned>(63 - std::countl_zero(value));  // >= 6
    const unsigned shift = top_bit - (sub_bucket_bits - 1);                     // >= 1
    const auto sub = (value >> shift) & (sub_buckets / 2 - 1);  // 5 bits below the top bit
    return static_cast<std::size_t>(sub_buckets + (shift - 1) * (sub_buckets / 2) + sub);
}

std::uint64_t latency_histogram::highest_equivalent(std::size_t index) noexcept {
    if (index < sub_buckets) return index;
    const auto rel = index - sub_buckets;
    const auto shift = static_cast<unsigned>(rel / (sub_buckets / 2)) + 1;
    const auto sub = rel % (sub_buckets / 2);
    const std::uint64_t low = (std::uint64_t{1} << (shift + sub_bucket_bits - 1)) |
                              (static_cast<std::uint64_t>(sub) << shift);
    return low + ((std::uint64_t{1} << shift) - 1);
}

void latency_histogram::record_n(std::uint64_t value, std::uint64_t count) noexcept {
    if (count == 0) return;
    _counts[index_of(value)] += count;
    _count += count;
    _min = std::min(_min, value);
    _max = std::max(_max, value);
    _sum += static_cast<long double>(value) * static_cast<long double>(count);
}

void latency_histogram::record_corrected(std::uint64_t value,
                                         std::uint64_t expected_interval) noexcept {
    record(value);
    if (expected_interval == 0) return;
    for (std::uint64_t missing = value > expected_interval ? value - expected_interval : 0;
         missing >= expected_interval; missing -= expected_interval) {
        record(missing);
    }
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
    for (std::size_t i = 0; i < bucket_count; ++i) _counts[i] += other._counts[i];
    _count += other._count;
    _min = std::min(_min, other._min);
    _max = std::max(_max, other._max);
    _sum += other._sum;
}

void latency_histogram::reset() noexcept { *this = latency_histogram{}; }

double latency_histogram::mean() const noexcept {
    return _count == 0 ? 0.0 : static_cast<double>(_sum / static_cast<long double>(_count));
}

std::uint64_t latency_histogram::percentile(double percent) const noexcept {
    if (_count == 0) return 0;
    const auto wanted = static_cast<std::uint64_t>(
        std::ceil(std::clamp(percent, 0.0, 100.0) / 100.0 * static_cast<double>(_count)));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < bucket_count; ++i) {
        seen += _counts[i];
        if (seen >= std::max<std::uint64_t>(wanted, 1)) {
            return std::min(highest_equivalent(i), _max);
        }
    }
    return _max;
}

}  // namespace nagare::protocol
