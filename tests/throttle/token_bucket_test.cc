// Token bucket: never more than N grants in any window of the period, with or without burst.
#include "throttle/token_bucket.h"

#include <gtest/gtest.h>

#include <random>

#include "throttle/sliding_window.h"

namespace sb {
namespace {

using testing::max_in_window;

// Greedy client: asks at `now`, and on refusal asks again exactly at the returned time (or,
// with jitter, a little later). Returns the grant times.
std::vector<uint64_t> drive(TokenBucket& b, uint64_t until, uint64_t jitter, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint64_t> grants;
  uint64_t now = 1'000'000;  // not zero: 0 means "go" in the API
  const uint64_t end = now + until;
  while (now < end) {
    const uint64_t at = b.try_take(now);
    if (at == 0) {
      grants.push_back(now);
      if (jitter) now += rng() % jitter;
    } else {
      EXPECT_GT(at, now);
      now = at + (jitter ? rng() % jitter : 0);
    }
  }
  return grants;
}

TEST(TokenBucket, SmoothPacingSpacesGrantsEvenly) {
  TokenBucket b({30, 60'000}, 1);
  auto g = drive(b, 3'600'000, 0, 1);
  ASSERT_EQ(g.size(), 1800u);
  for (size_t i = 1; i < g.size(); ++i) EXPECT_EQ(g[i] - g[i - 1], 2'000u);
  EXPECT_EQ(max_in_window(g, 60'000), 30u);
}

TEST(TokenBucket, NonIntegerIntervalStaysExact) {
  // 7/min: T = 8571.43 ms. Rounding T down would give 8 in some minute.
  TokenBucket b({7, 60'000}, 1);
  auto g = drive(b, 3'600'000, 0, 2);
  EXPECT_EQ(max_in_window(g, 60'000), 7u);
  EXPECT_GE(g.size(), 7u * 60);
  EXPECT_LE(g.size(), 7u * 60 + 1);
}

TEST(TokenBucket, RetryTimeIsExact) {
  TokenBucket b({7, 60'000}, 1);
  for (int i = 0; i < 100; ++i) {
    const uint64_t now = 5'000'000 + uint64_t(i) * 3'000;
    const uint64_t at = b.check(now);
    if (at == 0) {
      b.take(now);
      continue;
    }
    EXPECT_NE(b.check(at - 1), 0u);
    EXPECT_EQ(b.check(at), 0u);
  }
}

class BurstWindow : public ::testing::TestWithParam<std::tuple<uint64_t, uint64_t, uint64_t>> {};

TEST_P(BurstWindow, NeverMoreThanNInAnyWindow) {
  const auto [n, period, burst] = GetParam();
  for (uint64_t jitter : {0, 7, 500}) {
    TokenBucket b({n, period}, burst);
    auto g = drive(b, period * 40, jitter, uint32_t(n * 31 + burst));
    EXPECT_LE(max_in_window(g, period), n) << n << "/" << period << " burst " << burst;
    // And the rate is used, not just respected: at least N-1 per period on average with a
    // greedy client and no jitter.
    if (jitter == 0) {
      EXPECT_GE(g.size(), (n - 1) * 40) << n << " burst " << burst;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Rates, BurstWindow,
    ::testing::Values(std::make_tuple(30, 60'000, 1), std::make_tuple(30, 60'000, 10),
                      std::make_tuple(30, 60'000, 30), std::make_tuple(3, 2'000, 2),
                      std::make_tuple(14, 1'000, 14), std::make_tuple(1, 1'000, 1),
                      std::make_tuple(1000, 60'000, 100)));

TEST(TokenBucket, BurstThenPace) {
  TokenBucket b({30, 60'000}, 10);
  const uint64_t t0 = 1'000'000;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b.try_take(t0), 0u) << i;
  EXPECT_EQ(b.try_take(t0), t0 + 2'000);
  EXPECT_DOUBLE_EQ(b.tokens(t0), 0);
  EXPECT_NEAR(b.tokens(t0 + 2'000), 1.0, 1e-9);
  EXPECT_NEAR(b.tokens(t0 + 60'000), 10.0, 1e-9);
}

TEST(TokenBucket, LargeNWithBurstUsesSlowerGcraInsteadOfALog) {
  // 1,000,000/h with burst 1000: the log would take 8 MB; the bucket paces at N-B+1 instead.
  TokenBucket b({1'000'000, 3'600'000}, 1'000);
  EXPECT_FALSE(b.exact_log());
  auto g = drive(b, 3 * 3'600'000, 0, 3);
  EXPECT_LE(max_in_window(g, 3'600'000), 1'000'000u);
  EXPECT_GE(g.size(), 3u * (1'000'000 - 1'000));
}

TEST(TokenBucket, BurstAboveNIsClamped) {
  TokenBucket b({5, 1'000}, 50);
  EXPECT_EQ(b.burst(), 5u);
}

TEST(TokenBucket, ClockSteppingBackDoesNotFreeTokens) {
  TokenBucket b({2, 1'000}, 2);
  EXPECT_EQ(b.try_take(10'000), 0u);
  EXPECT_EQ(b.try_take(10'000), 0u);
  EXPECT_NE(b.try_take(5'000), 0u);
  EXPECT_NE(b.try_take(10'500), 0u);
  EXPECT_EQ(b.try_take(11'000), 0u);
}

}  // namespace
}  // namespace sb
