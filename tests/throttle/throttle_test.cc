// Throttle: the scenarios on a simulated clock — many connections, restarts across
// days, block/pause, push-back — and the shared wrapper under real threads.
#include "throttle/throttle.h"

#include <gtest/gtest.h>

#include <barrier>
#include <queue>
#include <random>
#include <thread>

#include "throttle/sliding_window.h"

namespace sb {
namespace {

using testing::max_in_window;

constexpr uint64_t kMin = 60'000;
constexpr uint64_t kHour = 60 * kMin;
constexpr uint64_t kDay = 24 * kHour;
// 2024-03-04 00:00 UTC: a realistic wall-clock origin.
constexpr uint64_t kEpoch = 1'709'510'400'000;

ThrottleConfig config(const ThrottleFlags& f) {
  auto c = make_throttle_config(f);
  EXPECT_TRUE(c.ok()) << c.error().describe();
  return *c;
}

struct Grant {
  uint64_t at;
  uint64_t recipients;
};

// `connections` connections, each asking for permission, then "sending" for a random time
// (50 ms..3 s), then asking again; a refused connection comes back at the retry time plus
// 0-2 ms, so several connections routinely ask in the same millisecond.
std::vector<Grant> simulate(Throttle& t, int connections, uint64_t start, uint64_t duration,
                            uint32_t seed, uint64_t max_rcpts = 1) {
  std::mt19937 rng(seed);
  using Ev = std::pair<uint64_t, int>;  // time, connection
  std::priority_queue<Ev, std::vector<Ev>, std::greater<>> q;
  for (int c = 0; c < connections; ++c) q.emplace(start + rng() % 3, c);
  std::vector<Grant> grants;
  while (!q.empty()) {
    auto [now, c] = q.top();
    q.pop();
    if (now >= start + duration) continue;
    const uint64_t rcpts = 1 + rng() % max_rcpts;
    const uint64_t at = t.acquire(now, rcpts);
    if (at == 0) {
      grants.push_back({now, rcpts});
      q.emplace(now + 50 + rng() % 2950, c);
    } else {
      EXPECT_GT(at, now);
      if (at == DailyQuota::kNever) continue;
      q.emplace(at + rng() % 3, c);
    }
  }
  return grants;
}

std::vector<uint64_t> times(const std::vector<Grant>& g) {
  std::vector<uint64_t> out;
  for (const Grant& x : g) out.push_back(x.at);
  return out;
}

class ConnectionsAt30PerMin : public ::testing::TestWithParam<std::tuple<int, uint64_t>> {};

TEST_P(ConnectionsAt30PerMin, NeverThirtyOneInAnyMinute) {
  const auto [connections, burst] = GetParam();
  Throttle t(config({.rate = "30/min", .burst = burst}));
  auto g = simulate(t, connections, kEpoch, kHour, uint32_t(connections));
  EXPECT_LE(max_in_window(times(g), kMin), 30u);
  // Holds the limit and uses it: 1800 in the hour, less the slots a lone connection misses
  // while its own send (up to 3 s) outlasts the 2 s pacing interval.
  EXPECT_GE(g.size(), connections == 1 ? 1500u : 1780u);
  EXPECT_LE(g.size(), 1800u + burst);
}

INSTANTIATE_TEST_SUITE_P(Connections, ConnectionsAt30PerMin,
                         ::testing::Combine(::testing::Values(1, 5, 50),
                                            ::testing::Values(0, 10, 30)));

TEST(Throttle, DailyLimitOverThreeDaysWithRestarts) {
  // Runs at 09:00-12:00 and 15:00-23:00 each day, the state saved at the end of each run and
  // restored into a fresh Throttle at the next: the count continues across runs.
  const ThrottleFlags flags{.rate = "5/s", .daily_limit = 10'000};
  std::string state = "dq1";
  std::vector<uint64_t> at, weights;
  uint64_t refused_daily = 0;
  for (int day = 0; day < 3; ++day) {
    for (auto [from, len] : {std::pair{9 * kHour, 3 * kHour}, std::pair{15 * kHour, 8 * kHour}}) {
      const uint64_t start = kEpoch + uint64_t(day) * kDay + from;
      Throttle t(config(flags));
      ASSERT_TRUE(t.restore_daily_state(state).ok()) << state;
      auto g = simulate(t, 8, start, len, uint32_t(day * 10 + from / kHour), 5);
      for (const Grant& x : g) {
        at.push_back(x.at);
        weights.push_back(x.recipients);
      }
      if (t.peek(start + len, 5) != 0) ++refused_daily;
      state = t.daily_state(start + len);
      EXPECT_LT(state.size(), 4'000u) << state.substr(0, 200);
    }
  }
  EXPECT_LE(max_in_window(at, kDay, &weights), 10'000u);
  // The quota is used: day 1's first run sends 10,000 in its 3 hours (5/s, ~3 rcpts each).
  uint64_t first_run = 0;
  for (size_t i = 0; i < at.size() && at[i] < kEpoch + 12 * kHour; ++i) first_run += weights[i];
  EXPECT_GE(first_run, 9'995u);
  EXPECT_GT(refused_daily, 0u);
}

TEST(Throttle, DailyLimitStopsAndSaysWhenToResume) {
  Throttle t(config({.daily_limit = 10}));
  const uint64_t t0 = kEpoch + 9 * kHour + 30'000;  // mid-minute
  for (int i = 0; i < 10; ++i) ASSERT_EQ(t.acquire(t0 + uint64_t(i), 1), 0u);
  Limit why = Limit::kNone;
  const uint64_t resume = t.acquire(t0 + 100, 1, &why);
  EXPECT_EQ(why, Limit::kDaily);
  EXPECT_EQ(t.blocked_by(), Limit::kDaily);
  // The minute bucket of t0 leaves the rolling window at its end + 24 h: at most 59 s later
  // than an exact log would say.
  EXPECT_GE(resume, t0 + kDay);
  EXPECT_LT(resume, t0 + kDay + kMin);
  EXPECT_NE(t.acquire(resume - 1, 1), 0u);
  EXPECT_EQ(t.acquire(resume, 1), 0u);
  // A transaction bigger than the whole limit can never go: the caller must split it.
  EXPECT_EQ(t.peek(resume + kDay, 11), DailyQuota::kNever);
}

TEST(Throttle, DailyRefund) {
  Throttle t(config({.daily_limit = 3}));
  const uint64_t t0 = kEpoch;
  ASSERT_EQ(t.acquire(t0, 3), 0u);
  EXPECT_NE(t.acquire(t0 + 1, 1), 0u);
  t.refund(t0, 2);  // connection lost before MAIL FROM
  EXPECT_EQ(t.acquire(t0 + 2, 2), 0u);
}

TEST(Throttle, BlockAndPauseTimingIsExact) {
  Throttle t(config({.block_size = 5, .block_pause = "2m"}));
  uint64_t now = kEpoch;
  for (int block = 0; block < 4; ++block) {
    for (int i = 0; i < 5; ++i) {
      ASSERT_EQ(t.acquire(now), 0u) << block << "/" << i;
      now += 1'000;
    }
    const uint64_t fifth = now - 1'000;
    Limit why = Limit::kNone;
    EXPECT_EQ(t.acquire(now, 1, &why), fifth + 2 * kMin);
    EXPECT_EQ(why, Limit::kBlockPause);
    EXPECT_NE(t.acquire(fifth + 2 * kMin - 1), 0u);
    now = fifth + 2 * kMin;
  }
}

TEST(Throttle, NeverChargesOneLimiterWhenAnotherRefuses) {
  // Block of 2 then 10 min; rate 1/s. A refusal by the rate must not count toward the block,
  // and a refusal by the block must not consume a token or daily recipients.
  Throttle t(config({.rate = "1/s", .daily_limit = 100, .block_size = 2, .block_pause = "10m"}));
  const uint64_t t0 = kEpoch;
  ASSERT_EQ(t.acquire(t0, 7), 0u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(t.acquire(t0 + 10, 7), t0 + 1'000);  // rate refuses
  ASSERT_EQ(t.acquire(t0 + 1'000, 7), 0u);  // still the block's 2nd message
  for (int i = 0; i < 50; ++i) EXPECT_EQ(t.acquire(t0 + 2'000, 7), t0 + 1'000 + 10 * kMin);
  auto s = t.snapshot(t0 + 2'000);
  EXPECT_EQ(s.daily_count, 14u);
  EXPECT_NEAR(s.tokens, 1.0, 1e-9);
  EXPECT_EQ(s.granted, 2u);
}

TEST(Throttle, AimdReactsToABurstOf421sAndRecovers) {
  Throttle t(config({.rate = "30/min"}));
  uint64_t now = kEpoch;
  // Steady sending at the configured pace for 5 minutes.
  for (; now < kEpoch + 5 * kMin; now += 2'000) {
    ASSERT_EQ(t.acquire(now), 0u);
    t.on_reply(250, "2.0.0 Ok queued", now + 500, now);
  }
  // 50 connections all get 421 within 300 ms: every reply of the window is push-back, so
  // the cut (one, for the whole window) goes down to the floor.
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(t.on_reply(421, "4.7.0 Too many messages, slow down", now + uint64_t(i) * 6,
                         now - 1'000),
              PushBack::kSlowDown);
  }
  t.on_reply(421, "4.7.0 Too many messages, slow down", now + 1'000, now - 1'000);
  auto s = t.snapshot(now + 1'000);
  EXPECT_EQ(s.pushbacks, 51u);
  EXPECT_EQ(s.rate_cuts, 1u);
  EXPECT_DOUBLE_EQ(s.current_rate_per_s, AimdConfig{}.floor_per_s);
  EXPECT_EQ(s.blocked_by, Limit::kAdaptive);

  // Sending greedily from here with clean replies: the pace grows back to 30/min within a
  // minute of clean time and never exceeds it.
  std::vector<uint64_t> grants;
  const uint64_t from = now + 1'000;
  uint64_t recovered_at = 0;
  for (now = from; now < from + 20 * kMin;) {
    const uint64_t at = t.acquire(now);
    if (at != 0) {
      now = at;
      continue;
    }
    grants.push_back(now);
    t.on_reply(250, "2.0.0 Ok", now + 200, now);
    if (!recovered_at && t.snapshot(now + 200).adaptive_rate_per_s == 0) recovered_at = now;
    now += 1;
  }
  EXPECT_LE(max_in_window(grants, kMin), 30u);
  ASSERT_NE(recovered_at, 0u);
  EXPECT_LE(recovered_at - from, 61'000u);
  EXPECT_EQ(t.snapshot(now).rate_cuts, 1u);
}

TEST(Throttle, SentAtDistinguishesOldFromNewPushBack) {
  Throttle t(config({.rate = "10/s"}));
  const uint64_t t0 = kEpoch;
  // A window of push-back: cut (at t0 + 1 s).
  for (int i = 0; i < 20; ++i) t.on_reply(421, "", t0 + uint64_t(i), t0 - 100);
  t.on_reply(421, "", t0 + 1'000, t0 - 100);
  EXPECT_EQ(t.snapshot(t0 + 1'000).rate_cuts, 1u);
  // 421s for messages sent before the cut do not cut again, however many and however late.
  for (int i = 0; i < 50; ++i) t.on_reply(421, "", t0 + 1'100 + uint64_t(i) * 200, t0 + 900);
  EXPECT_EQ(t.snapshot(t0 + 20'000).rate_cuts, 1u);
  // Ones sent after it do.
  for (int i = 0; i < 20; ++i) t.on_reply(421, "", t0 + 20'000 + uint64_t(i), t0 + 1'500);
  t.on_reply(421, "", t0 + 22'000, t0 + 1'500);
  EXPECT_EQ(t.snapshot(t0 + 22'000).rate_cuts, 2u);
}

TEST(Throttle, QuotaReplyPausesAndBacksOff) {
  Throttle t(config({.rate = "30/min"}));
  const uint64_t t0 = kEpoch;
  ASSERT_EQ(t.acquire(t0), 0u);
  const char* o365 =
      "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process "
      "message due to a permanent exception";
  EXPECT_EQ(t.on_reply(554, o365, t0 + 100), PushBack::kQuota);
  EXPECT_EQ(t.on_reply(554, o365, t0 + 150), PushBack::kQuota);  // in flight: same pause
  Limit why = Limit::kNone;
  EXPECT_EQ(t.acquire(t0 + 200, 1, &why), t0 + 100 + kMin);
  EXPECT_EQ(why, Limit::kQuotaPause);
  auto s = t.snapshot(t0 + 200);
  EXPECT_EQ(s.quota_pauses, 1u);
  EXPECT_EQ(s.quota_replies, 2u);
  EXPECT_EQ(s.paused_until, t0 + 100 + kMin);
  // Still refused after the pause: the next pause is twice as long.
  const uint64_t t1 = t0 + 100 + kMin;
  ASSERT_EQ(t.acquire(t1), 0u);
  t.on_reply(554, o365, t1 + 100);
  EXPECT_EQ(t.snapshot(t1 + 100).paused_until, t1 + 100 + 2 * kMin);
  // A success resets the back-off.
  const uint64_t t2 = t1 + 100 + 2 * kMin;
  ASSERT_EQ(t.acquire(t2), 0u);
  t.on_reply(250, "2.0.0 Ok", t2 + 100);
  ASSERT_EQ(t.acquire(t2 + kMin), 0u);
  t.on_reply(554, o365, t2 + kMin + 100);
  EXPECT_EQ(t.snapshot(t2 + kMin + 100).paused_until, t2 + 2 * kMin + 100);
  EXPECT_NE(describe(t.snapshot(t2 + kMin + 100)).find("3 quota pauses"), std::string::npos);
}

TEST(Throttle, UnlimitedIsTheFastPathAndAdaptsFromTheMeasuredRate) {
  Throttle t(ThrottleConfig{});
  EXPECT_TRUE(t.unlimited());
  uint64_t now = kEpoch;
  // 100 messages a second for 3 seconds, replies flowing.
  for (int i = 0; i < 300; ++i, now += 10) {
    ASSERT_EQ(t.acquire(now), 0u);
    t.on_reply(250, "2.0.0 Ok", now, now);
  }
  // Then for a second half the replies are push-back: the window measures ~100/s sent and
  // half of it pushed back, and cuts to ~50/s.
  for (int i = 0; i < 100; ++i, now += 10) {
    ASSERT_EQ(t.acquire(now), 0u);
    t.on_reply(i % 2 ? 250 : 421, i % 2 ? "2.0.0 Ok" : "4.3.2 Service shutting down", now, now);
  }
  t.on_reply(250, "2.0.0 Ok", now, now);
  EXPECT_FALSE(t.unlimited());
  auto s = t.snapshot(now);
  EXPECT_NEAR(s.adaptive_rate_per_s, 50.0, 3.0);
  EXPECT_DOUBLE_EQ(s.configured_rate_per_s, 0);
  // Clean replies grow it back to the measured rate; then the fast path returns.
  for (int i = 0; i < 100'000 && !t.unlimited(); ++i) {
    const uint64_t at = t.acquire(now);
    if (at) {
      now = at;
      continue;
    }
    t.on_reply(250, "2.0.0 Ok", now, now);
  }
  EXPECT_TRUE(t.unlimited());
  EXPECT_EQ(describe(t.snapshot(now)), "push-back 50 (1 rate cuts, 0 quota pauses)");
}

TEST(Throttle, ConnectRate) {
  Throttle t(config({.connect_rate = "2/s"}));
  EXPECT_TRUE(t.unlimited());  // a connect rate does not slow messages
  EXPECT_EQ(t.acquire_connect(kEpoch), 0u);
  EXPECT_EQ(t.acquire_connect(kEpoch), kEpoch + 500);
  EXPECT_EQ(t.acquire_connect(kEpoch + 500), 0u);
}

TEST(Throttle, ConfigErrors) {
  struct Case {
    ThrottleFlags flags;
    const char* needle;
  };
  const Case cases[] = {
      {{.rate = "30/fortnight"}, "--rate"},
      {{.burst = 5}, "--burst needs --rate"},
      {{.rate = "30/min", .burst = 31}, "--burst 31"},
      {{.block_size = 5}, "--block-size and --block-pause"},
      {{.block_pause = "2m"}, "--block-size and --block-pause"},
      {{.block_size = 5, .block_pause = "2"}, "--block-pause"},
      {{.connect_rate = "fast"}, "--connect-rate"},
  };
  for (const Case& c : cases) {
    auto r = make_throttle_config(c.flags);
    ASSERT_FALSE(r.ok()) << c.needle;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << r.error().message;
  }
}

TEST(Throttle, RestoreRejectsGarbage) {
  Throttle t(config({.daily_limit = 10}));
  auto st = t.restore_daily_state("dq2 1 2");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("dq2 1 2"), std::string::npos);
}

TEST(SharedThrottle, ThreadsNeverExceedTheRate) {
  // 8 threads ask concurrently at each simulated 100 ms step (all at the same `now`, so no
  // thread passes a stale time); the grants per step must respect 30 per any 60 s.
  ThrottleFlags f{.rate = "30/min", .burst = 10, .daily_limit = 100'000};
  SharedThrottle st(config(f));
  constexpr int kThreads = 8;
  constexpr uint64_t kSteps = 36'000;  // one simulated hour
  std::vector<std::atomic<uint32_t>> per_step(kSteps);
  std::atomic<uint64_t> step{0};
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (uint64_t s = 0; s < kSteps; ++s) {
        const uint64_t now = kEpoch + s * 100;
        for (int k = 0; k < 3; ++k) {
          if (st.acquire(now) == 0) per_step[s].fetch_add(1);
        }
        if (s % 100 == 0) st.on_reply(250, "Ok", now);
        sync.arrive_and_wait();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint64_t> grants;
  for (uint64_t s = 0; s < kSteps; ++s) {
    for (uint32_t k = 0; k < per_step[s].load(); ++k) grants.push_back(kEpoch + s * 100);
  }
  EXPECT_LE(max_in_window(grants, kMin), 30u);
  EXPECT_GE(grants.size(), 1790u);
  EXPECT_EQ(st.snapshot(kEpoch + kHour).daily_count, grants.size());
}

TEST(SharedThrottle, UnlimitedGrantsAreCounted) {
  SharedThrottle st(ThrottleConfig{});
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 10'000; ++k) EXPECT_EQ(st.acquire(kEpoch), 0u);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(st.snapshot(kEpoch).granted, 40'000u);
}

}  // namespace
}  // namespace sb

namespace sb {
namespace {

// `status` shows this line: the current rate, tokens, next send time and the daily count.
TEST(ThrottleDescribe, NamesRateTokensNextSendAndDailyCount) {
  ThrottleSnapshot s;
  s.configured_rate_per_s = 0.5;
  s.current_rate_per_s = 0.5;
  s.tokens = 0;
  s.next_send_at = 1'763'812'891'000;  // 2025-11-22 12:01:31 UTC
  s.blocked_by = Limit::kRate;
  s.daily_limit = 100;
  s.daily_count = 2;
  std::string d = describe(s);
  EXPECT_NE(d.find("rate 30/min"), std::string::npos) << d;
  EXPECT_NE(d.find("tokens 0.0"), std::string::npos) << d;
  EXPECT_NE(d.find("next send 2025-11-22 12:01:31 UTC"), std::string::npos) << d;
  EXPECT_NE(d.find("daily 2/100"), std::string::npos) << d;
  EXPECT_EQ(describe(ThrottleSnapshot{}), "unlimited");
}

}  // namespace
}  // namespace sb
