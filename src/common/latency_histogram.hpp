// A lock-free latency histogram: log-linear buckets (8 per power of two), about 6% precision,
// from 1 ns to ~4 hours. record() is one relaxed atomic increment.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>

namespace entity::detail {

class latency_histogram {
 public:
  static constexpr int sub_bits = 3;
  /// Exact buckets below 2^sub_bits, then 2^sub_bits per power of two up to 2^63: the last
  /// holds the largest 64-bit value.
  static constexpr int buckets = (64 - sub_bits + 1) << sub_bits;

  void record(std::uint64_t ns) noexcept {
    counts_[index(ns)].fetch_add(1, std::memory_order_relaxed);
  }

  /// The q-quantile in nanoseconds (q is taken into [0, 1]: 0 the least, 1 the largest
  /// recorded); 0 when nothing was recorded.
  double quantile(double q) const noexcept {
    if (!(q > 0)) q = 0;  // a NaN too
    if (q > 1) q = 1;
    std::uint64_t total = 0;
    std::array<std::uint64_t, buckets> snap{};
    for (int i = 0; i < buckets; ++i) total += snap[i] = counts_[i].load(std::memory_order_relaxed);
    if (total == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
    std::uint64_t seen = 0;
    for (int i = 0; i < buckets; ++i) {
      seen += snap[i];
      if (seen >= rank) return midpoint(i);
    }
    return midpoint(buckets - 1);
  }

  static int index(std::uint64_t ns) noexcept {
    if (ns < (1u << sub_bits)) return static_cast<int>(ns);
    int msb = 63 - std::countl_zero(ns);
    int sub = static_cast<int>((ns >> (msb - sub_bits)) & ((1u << sub_bits) - 1));
    int i = ((msb - sub_bits + 1) << sub_bits) + sub;
    return i;  // at most buckets - 1, for ns of 2^64 - 1
  }

  static double lower_bound(int i) noexcept {
    if (i < (1 << sub_bits)) return i;
    int msb = (i >> sub_bits) + sub_bits - 1;
    int sub = i & ((1 << sub_bits) - 1);
    return static_cast<double>((std::uint64_t{1} << msb) +
                               (static_cast<std::uint64_t>(sub) << (msb - sub_bits)));
  }
  static double midpoint(int i) noexcept {
    double lo = lower_bound(i);
    double hi = i + 1 < buckets ? lower_bound(i + 1) : 18446744073709551616.0;  // 2^64
    return (lo + hi) / 2;
  }

 private:
  std::array<std::atomic<std::uint64_t>, buckets> counts_{};
};

}  // namespace entity::detail
