#include "load/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace sb {
namespace {

TEST(LatencyHistogram, BucketsCoverEveryValueOnceAndNarrowly) {
  for (uint64_t v : {0ull, 1ull, 255ull, 256ull, 257ull, 511ull, 512ull, 1000ull, 123457ull,
                     (1ull << 35) + 12345, (1ull << 36) - 1}) {
    size_t i = LatencyHistogram::index_of(v);
    ASSERT_LT(i, LatencyHistogram::kBuckets - 1) << v;
    EXPECT_LE(LatencyHistogram::lowest_in(i), v) << v;
    EXPECT_GE(LatencyHistogram::highest_in(i), v) << v;
    uint64_t width = LatencyHistogram::highest_in(i) - LatencyHistogram::lowest_in(i) + 1;
    EXPECT_LE(static_cast<double>(width), std::max(1.0, v / 128.0)) << v;
  }
  // Neighbouring buckets meet without gap or overlap.
  for (size_t i = 0; i + 2 < LatencyHistogram::kBuckets; ++i)
    ASSERT_EQ(LatencyHistogram::highest_in(i) + 1, LatencyHistogram::lowest_in(i + 1)) << i;
  EXPECT_EQ(LatencyHistogram::index_of(1ull << 40), LatencyHistogram::kBuckets - 1);
}

TEST(LatencyHistogram, PercentilesWithinOnePercentOfTheExactOnes) {
  std::mt19937_64 rng(17);
  // Log-normal latencies from ~50 µs to seconds, as a real run spreads them.
  std::lognormal_distribution<double> dist(std::log(20000.0), 1.5);
  std::vector<uint64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    auto v = static_cast<uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  for (double p : {1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99}) {
    auto rank = static_cast<size_t>(std::ceil(p / 100.0 * values.size()));
    double exact = static_cast<double>(values[rank - 1]);
    double got = static_cast<double>(h.percentile(p));
    EXPECT_NEAR(got, exact, std::max(1.0, exact * 0.01)) << "p" << p;
  }
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
  EXPECT_EQ(h.percentile(100), values.back());
  EXPECT_EQ(h.count(), values.size());
}

TEST(LatencyHistogram, SmallValuesAreExactAndEmptyReadsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.max(), 0u);
  for (uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.percentile(50), 50u);
  EXPECT_EQ(h.percentile(99), 99u);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogram, AddMergesAndResetEmpties) {
  LatencyHistogram a, b;
  a.record(1000, 3);
  b.record(2'000'000);
  a.add(b);
  EXPECT_EQ(a.count(), 4u);
  EXPECT_EQ(a.max(), 2'000'000u);
  EXPECT_NEAR(static_cast<double>(a.percentile(50)), 1000.0, 10.0);
  EXPECT_NEAR(static_cast<double>(a.percentile(99)), 2e6, 2e4);
  a.reset();
  EXPECT_EQ(a.count(), 0u);
  EXPECT_EQ(a.percentile(99), 0u);
}

}  // namespace
}  // namespace sb
