// detail::latency_histogram, behind the engines' p50/p99 latencies and the soak's report:
// where each value lands (one bucket per nanosecond below 16, then 8 buckets per power of two),
// the bucket edges and midpoints, and quantile() — the midpoint of the bucket that holds the
// value of rank ⌊q·(n−1)⌋+1 in ascending order, 0 when nothing was recorded.
#include "common/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <thread>
#include <vector>

#include "concurrency.hpp"

namespace {

using entity::detail::latency_histogram;

std::uint64_t pow2(int k) { return std::uint64_t{1} << k; }

// The first value of bucket i, as an integer (every edge has at most four significant bits, so
// the double lower_bound() returns is exact).
std::uint64_t edge(int i) { return static_cast<std::uint64_t>(latency_histogram::lower_bound(i)); }

// The last bucket any value reaches: the top power of two (2^63) starts at (63 − 2) × 8 = 488.
constexpr int last_bucket = 495;

}  // namespace

// ---- buckets ---------------------------------------------------------------------------------

TEST(LatencyHistogram, ValuesBelowSixteenEachHaveABucketOfTheirOwn) {
  for (std::uint64_t ns = 0; ns < 16; ++ns) {
    EXPECT_EQ(latency_histogram::index(ns), static_cast<int>(ns)) << ns;
    EXPECT_EQ(latency_histogram::lower_bound(static_cast<int>(ns)), static_cast<double>(ns));
  }
}

TEST(LatencyHistogram, EachPowerOfTwoFromEightIsSplitInEightEqualBuckets) {
  // [16, 32): buckets 16..23, two nanoseconds wide.
  EXPECT_EQ(latency_histogram::index(16), 16);
  EXPECT_EQ(latency_histogram::index(17), 16);
  EXPECT_EQ(latency_histogram::index(18), 17);
  EXPECT_EQ(latency_histogram::index(31), 23);
  // [32, 64): buckets 24..31, four wide.
  EXPECT_EQ(latency_histogram::index(32), 24);
  EXPECT_EQ(latency_histogram::index(35), 24);
  EXPECT_EQ(latency_histogram::index(36), 25);
  EXPECT_EQ(latency_histogram::index(63), 31);
  // 1 ms = 1'000'000 ns: 2^19 = 524'288 starts bucket 136; the width there is 2^16 = 65'536.
  EXPECT_EQ(latency_histogram::index(1'000'000), 143);
  EXPECT_EQ(edge(143), 983'040u);
  EXPECT_EQ(edge(144), 1'048'576u);
  for (int k = 3; k < 63; ++k) {
    EXPECT_EQ(latency_histogram::index(pow2(k)), (k - 2) * 8) << "2^" << k;
    EXPECT_EQ(latency_histogram::index(pow2(k + 1)) - latency_histogram::index(pow2(k)), 8)
        << "2^" << k;
    EXPECT_EQ(edge(latency_histogram::index(pow2(k)) + 1) - pow2(k), pow2(k - 3)) << "2^" << k;
  }
}

TEST(LatencyHistogram, EveryValueHasABucketTheLargestInBucket495) {
  EXPECT_EQ(latency_histogram::index(pow2(63)), 488);
  EXPECT_EQ(latency_histogram::index(std::numeric_limits<std::uint64_t>::max()), last_bucket);
  EXPECT_LT(last_bucket, latency_histogram::buckets);
  EXPECT_EQ(edge(last_bucket), pow2(63) + 7 * pow2(60));
}

// The buckets end with the one holding 2^64 - 1: no edge past it is ever computed (a shift
// past 63 bits), its midpoint lies between its edge and 2^64, and a q outside [0, 1] (or NaN)
// is taken into it instead of ranking past the values.
TEST(LatencyHistogram, TheLastBucketAndQuantilesOutOfRangeAreWellDefined) {
  EXPECT_EQ(latency_histogram::buckets, last_bucket + 1);
  const double top = latency_histogram::midpoint(last_bucket);
  EXPECT_GT(top, static_cast<double>(edge(last_bucket)));
  EXPECT_LE(top, 18446744073709551616.0);
  latency_histogram h;
  h.record(1000);
  h.record(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.quantile(1.0), top);
  EXPECT_EQ(h.quantile(2.0), top);
  EXPECT_EQ(h.quantile(0.0), latency_histogram::midpoint(latency_histogram::index(1000)));
  EXPECT_EQ(h.quantile(-1.0), h.quantile(0.0));
  EXPECT_EQ(h.quantile(std::numeric_limits<double>::quiet_NaN()), h.quantile(0.0));
}

TEST(LatencyHistogram, BucketEdgesAreContiguousAndIncreasing) {
  for (int i = 0; i <= last_bucket; ++i) {
    const std::uint64_t lo = edge(i);
    EXPECT_EQ(latency_histogram::index(lo), i) << "the edge of bucket " << i << " is in it";
    if (i > 0) {
      EXPECT_GT(lo, edge(i - 1)) << i;
      EXPECT_EQ(latency_histogram::index(lo - 1), i - 1) << "just below bucket " << i;
    }
  }
}

TEST(LatencyHistogram, MidpointsLieHalfwayBetweenTheEdges) {
  EXPECT_EQ(latency_histogram::midpoint(0), 0.5);
  EXPECT_EQ(latency_histogram::midpoint(5), 5.5);
  EXPECT_EQ(latency_histogram::midpoint(15), 15.5);
  EXPECT_EQ(latency_histogram::midpoint(16), 17.0);   // [16, 18)
  EXPECT_EQ(latency_histogram::midpoint(28), 50.0);   // [48, 52)
  EXPECT_EQ(latency_histogram::midpoint(63), 992.0);  // [960, 1024)
  for (int i = 0; i < last_bucket; ++i)
    EXPECT_EQ(latency_histogram::midpoint(i),
              (latency_histogram::lower_bound(i) + latency_histogram::lower_bound(i + 1)) / 2)
        << i;
}

// From 8 ns a bucket is at most 1/8 of its lower edge wide, so its midpoint is within 1/16
// (6.25%) of any value in it. Below 8 the midpoint is the value plus half a nanosecond.
TEST(LatencyHistogram, AMidpointIsWithinASixteenthOfTheValuesInItsBucket) {
  for (std::uint64_t ns = 0; ns < 8; ++ns)
    EXPECT_EQ(latency_histogram::midpoint(latency_histogram::index(ns)), ns + 0.5) << ns;
  auto within = [](std::uint64_t ns) {
    const double mid = latency_histogram::midpoint(latency_histogram::index(ns));
    const double v = static_cast<double>(ns);
    EXPECT_LE(std::abs(mid - v), v / 16) << ns;
  };
  for (std::uint64_t ns = 8; ns < 100'000; ++ns) within(ns);
  for (int k = 17; k < 63; ++k) {
    within(pow2(k));
    within(pow2(k) + pow2(k - 4));
    within(pow2(k + 1) - 1);
  }
}

// ---- quantiles -------------------------------------------------------------------------------

TEST(LatencyHistogram, NothingRecordedGivesZero) {
  latency_histogram h;
  for (double q : {0.01, 0.5, 0.99}) EXPECT_EQ(h.quantile(q), 0.0) << q;
}

TEST(LatencyHistogram, OneValueIsEveryQuantile) {
  latency_histogram h;
  h.record(1000);  // bucket [960, 1024)
  for (double q : {0.001, 0.5, 0.99, 0.999}) EXPECT_EQ(h.quantile(q), 992.0) << q;
}

TEST(LatencyHistogram, ZeroIsAValueLikeAnyOther) {
  latency_histogram h;
  h.record(0);
  EXPECT_EQ(h.quantile(0.5), 0.5);
}

TEST(LatencyHistogram, QuantilesOfOneToAHundred) {
  latency_histogram h;
  for (std::uint64_t ns = 1; ns <= 100; ++ns) h.record(ns);
  EXPECT_EQ(h.quantile(0.001), 1.5);   // rank 1: the value 1, a bucket of its own
  EXPECT_EQ(h.quantile(0.1), 10.5);    // rank ⌊9.9⌋+1 = 10
  EXPECT_EQ(h.quantile(0.5), 50.0);    // rank 50, in [48, 52)
  EXPECT_EQ(h.quantile(0.9), 92.0);    // rank 90, in [88, 96)
  EXPECT_EQ(h.quantile(0.99), 100.0);  // rank 99, in [96, 104)
  EXPECT_EQ(h.quantile(0.999), 100.0);
}

// The rank is ⌊q·(n−1)⌋+1, never rounded up: of two values every q below 1 gives the lower.
TEST(LatencyHistogram, TheRankRoundsDown) {
  latency_histogram h;
  h.record(10);
  h.record(1000);
  for (double q : {0.01, 0.5, 0.99, 0.999}) EXPECT_EQ(h.quantile(q), 10.5) << q;
}

TEST(LatencyHistogram, RepeatedValuesCountEachTime) {
  latency_histogram h;
  for (int i = 0; i < 90; ++i) h.record(10);
  for (int i = 0; i < 10; ++i) h.record(1000);
  // n = 100: ranks up to 90 are the value 10, ranks 91..100 the value 1000.
  EXPECT_EQ(h.quantile(0.89), 10.5);   // rank 89
  EXPECT_EQ(h.quantile(0.9), 10.5);    // rank 90
  EXPECT_EQ(h.quantile(0.91), 992.0);  // rank 91
  EXPECT_EQ(h.quantile(0.99), 992.0);
  // Values in one bucket are not told apart.
  latency_histogram same;
  for (std::uint64_t ns : {960, 990, 1000, 1023}) same.record(ns);
  EXPECT_EQ(same.quantile(0.01), 992.0);
  EXPECT_EQ(same.quantile(0.99), 992.0);
}

TEST(LatencyHistogram, QuantilesNeverDecreaseWithQ) {
  latency_histogram h;
  std::uint64_t x = 1;
  for (int i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    h.record(x >> 40);  // up to ~16.7 ms
  }
  double previous = 0;
  for (int p = 1; p < 1000; ++p) {
    const double v = h.quantile(p / 1000.0);
    EXPECT_GE(v, previous) << p;
    previous = v;
  }
}

// record() is one relaxed increment: threads that record at once lose no count, and quantile()
// may read meanwhile.
ENTITY_CONCURRENT_TEST(LatencyHistogram, ThreadsRecordingAtOnceLoseNoCount) {
  constexpr int per_thread = 20'000;
  latency_histogram h;
  std::atomic<bool> done{false};
  std::set<double> seen;
  std::thread reader([&] {
    while (!done.load()) seen.insert(h.quantile(0.5));
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&h, t] {
      for (int i = 0; i < per_thread; ++i) h.record(t < 3 ? 10 : 1000);
    });
  for (auto& w : writers) w.join();
  done = true;
  reader.join();
  for (double v : seen) EXPECT_TRUE(v == 0.0 || v == 10.5 || v == 992.0) << v;
  // n = 80'000 and exactly 60'000 tens: rank 60'000 is the last 10, rank 60'001 the first 1000.
  constexpr double n_minus_1 = 4 * per_thread - 1;
  EXPECT_EQ(h.quantile((3 * per_thread - 0.5) / n_minus_1), 10.5);
  EXPECT_EQ(h.quantile((3 * per_thread + 0.5) / n_minus_1), 992.0);
}
