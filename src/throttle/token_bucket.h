// Exact rate limiter: at most N grants in any window of the period, with an optional burst.
#pragma once

#include <cstdint>
#include <vector>

#include "throttle/rate_spec.h"

namespace sb {

// A GCRA (the virtual-scheduling form of a token bucket) in exact rational time, plus, when a
// burst above 1 is asked for, a ring of the last N grant times.
//
// Why both: GCRA with emission interval T = P/N and tolerance (B-1)*T admits up to N+B-1
// grants in a window of length P (the burst, then N-1 paced ones), which breaks a provider's
// "N per P" cap. The ring is the exact sliding-window limiter (grant only if the N-th most
// recent grant is at least P old); GCRA still shapes the flow inside it (B at once, then one
// per T instead of N at once). The ring costs 8 bytes per unit of N, so above kMaxLog the
// bucket instead slows GCRA to T' = P/(N-B+1), whose bound N'+B-1 = N needs no log; the cost
// is a sustained rate lower by (B-1)/N, negligible at such N.
// With B = 1 GCRA alone is exact (grants at least T apart, so N+1 grants span at least P).
//
// Windows are half-open in milliseconds: grants at t and t+P are in different windows.
// Time never runs backwards here: an earlier `now` is treated as the latest one seen.
class TokenBucket {
 public:
  static constexpr uint64_t kMaxLog = 100'000;

  // burst 0 or 1: smooth pacing. A burst above rate.count is clamped to it.
  TokenBucket(RateSpec rate, uint64_t burst);

  // 0 when allowed now (and consumed); otherwise the earliest time it would be allowed.
  uint64_t try_take(uint64_t now) {
    const uint64_t at = check(now);
    if (at == 0) take(now);
    return at;
  }
  // The two halves of try_take, so a composite can check every limiter before charging any.
  uint64_t check(uint64_t now) const;
  void take(uint64_t now);

  // Grants available right now (GCRA view, 0 when the window log is full); for status.
  double tokens(uint64_t now) const;
  const RateSpec& rate() const { return rate_; }
  uint64_t burst() const { return burst_; }
  bool exact_log() const { return !log_.empty(); }

 private:
  __extension__ typedef unsigned __int128 Ticks;  // ms * gcra_n_: exact, never overflows

  RateSpec rate_;
  uint64_t burst_;
  uint64_t gcra_n_;  // grants per period GCRA paces at: N, or N-B+1 without the log
  Ticks tau_;        // tolerance (B-1)*T in ticks
  Ticks tat_ = 0;    // theoretical arrival time of the next grant, in ticks
  uint64_t last_now_ = 0;
  std::vector<uint64_t> log_;  // last N grant times, ring; empty when not needed
  uint64_t log_count_ = 0;     // grants recorded, saturating use: head = log_count_ % N
};

}  // namespace sb
