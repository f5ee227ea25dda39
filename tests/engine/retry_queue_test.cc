// The retry queue and the backoff function: doubling, the cap, jitter within a quarter.
#include "engine/retry_queue.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/job.h"

namespace sb {
namespace {

TEST(Backoff, DoublesWithinJitterBoundsUpToTheCap) {
  std::mt19937_64 rng(7);
  for (uint32_t level = 0; level < 12; ++level) {
    uint64_t base = std::min<uint64_t>(1000ull << level, 60000);
    for (int i = 0; i < 200; ++i) {
      uint64_t d = backoff_ms(level, 1000, 60000, rng());
      EXPECT_GE(d, base) << "level " << level;
      EXPECT_LT(d, base + base / 4) << "level " << level;
    }
  }
}

TEST(Backoff, NoJitterBelowFourAndHugeLevelsStayCapped) {
  EXPECT_EQ(backoff_ms(0, 3, 100, 12345), 3u);
  EXPECT_LT(backoff_ms(200, 1000, 5000, 99), 5000u + 1250u);
  EXPECT_GE(backoff_ms(200, 1000, 5000, 99), 5000u);
}

TEST(RetryQueue, PopsDueJobsEarliestFirst) {
  Job a, b, c;
  RetryQueue q;
  q.push(&b, 200);
  q.push(&a, 100);
  q.push(&c, 300);
  EXPECT_EQ(q.next_due(), 100u);
  std::vector<Job*> due;
  q.pop_due(99, due);
  EXPECT_TRUE(due.empty());
  q.pop_due(200, due);
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0], &a);
  EXPECT_EQ(due[1], &b);
  EXPECT_EQ(q.next_due(), 300u);
  due.clear();
  q.take_all(due);
  EXPECT_EQ(due.size(), 1u);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.next_due(), 0u);
}

}  // namespace
}  // namespace sb
