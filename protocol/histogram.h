// latency_histogram: an HDR-style log-linear histogram of u64 values
// (nanoseconds, by convention). Values are grouped by their highest set bit
// into 64 sub-buckets each, so every recorded value is kept within 1/32
// (about 3%) of itself; values below 64 are exact. Fixed memory (32 KiB),
// no allocation, O(1) record. Shared by the broker's metrics and the
// benchmark harness. Owned by one thread; merge copies between threads.
#pragma once

#include <array>
#include <cstdint>

namespace nagare::protocol {

class latency_histogram {
public:
    static constexpr unsigned sub_bucket_bits = 6;
    static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;
    static constexpr std::size_t bucket_count = (64 - sub_bucket_bits + 1) * sub_buckets;

    void record(std::uint64_t value) noexcept { record_n(value, 1); }
    void record_n(std::uint64_t value, std::uint64_t count) noexcept;

    // Coordinated-omission correction: a value that took longer than the
    // expected interval between requests also stands for the requests that
    // could not be sent meanwhile (value - interval, value - 2 interval, ...).
    void record_corrected(std::uint64_t value, std::uint64_t expected_interval) noexcept;

    void merge(const latency_histogram& other) noexcept;
    void reset() noexcept;

    [[nodiscard]] std::uint64_t count() const noexcept { return _count; }
    [[nodiscard]] std::uint64_t min() const noexcept { return _count == 0 ? 0 : _min; }
    [[nodiscard]] std::uint64_t max() const noexcept { return _max; }
    [[nodiscard]] double mean() const noexcept;
    // The smallest recorded value v such that at least `percent` % of the
    // values are <= v (within the bucket precision). 0 when empty.
    [[nodiscard]] std::uint64_t percentile(double percent) const noexcept;

    // Bucket access for exporters (Prometheus): the upper bound of bucket i.
    [[nodiscard]] static std::size_t index_of(std::uint64_t value) noexcept;
    [[nodiscard]] static std::uint64_t highest_equivalent(std::size_t index) noexcept;
    [[nodiscard]] std::uint64_t bucket(std::size_t index) const noexcept { return _counts[index]; }

private:
    std::array<std::uint64_t, bucket_count> _counts{};
    std::uint64_t _count = 0;
    std::uint64_t _min = ~std::uint64_t{0};
    std::uint64_t _max = 0;
    long double _sum = 0;
};

}  // namespace nagare::protocol
