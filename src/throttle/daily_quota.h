// Rolling 24-hour recipient quota that survives restarts through a small text state.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb {

// Counts recipients in per-minute buckets (1441 of them: a 24 h window that does not start on
// a minute boundary touches 1441 minutes). The check counts every bucket that overlaps the
// window (now - 24h, now], so the promise "at most N recipients in any rolling 24 h" holds
// exactly — never N+1 — and the only price is that capacity frees up to 59 s later than a
// per-recipient log would. Why not that log: its state grows with N (10^5 timestamps to store
// in the task at every commit); this one is bounded, usually a few hundred bytes.
//
// Times are wall-clock ms since the Unix epoch (it must survive restarts and reboots). A clock
// that steps back is treated as standing still, never as a reason to forget counts.
class DailyQuota {
 public:
  static constexpr uint64_t kWindowMs = 24ull * 3600 * 1000;
  static constexpr uint64_t kBucketMs = 60'000;
  static constexpr size_t kBuckets = kWindowMs / kBucketMs + 1;
  static constexpr uint64_t kNever = UINT64_MAX;

  explicit DailyQuota(uint64_t limit) : limit_(limit) {}

  // 0 when `recipients` more fit now; else the earliest time they will (kNever when
  // recipients > limit: the caller must split the transaction).
  uint64_t check(uint64_t now, uint64_t recipients) const;
  void take(uint64_t now, uint64_t recipients);
  // Gives back recipients charged at `charged_at` that never reached the server (connection
  // lost before MAIL FROM); a no-op once that minute has left the window.
  void refund(uint64_t charged_at, uint64_t recipients);

  uint64_t limit() const { return limit_; }
  // Recipients counted against the window ending now (conservative, see above).
  uint64_t count(uint64_t now) const;
  uint64_t remaining(uint64_t now) const {
    const uint64_t c = count(now);
    return c >= limit_ ? 0 : limit_ - c;
  }

  // "dq1 <first-minute> <count>[,<count>...]" with runs of empty minutes written as "zN";
  // "dq1" alone when nothing is in the window. Independent of the limit, so the user may
  // change --daily-limit between runs.
  std::string serialise(uint64_t now) const;
  // Replaces the counts with a serialised state; error (config domain) names the bad text.
  Status restore(std::string_view text);

 private:
  // Absolute minute index -> ring slot.
  static size_t slot(uint64_t minute) { return size_t(minute % kBuckets); }
  // The oldest minute that can still overlap the window ending at `now`.
  static uint64_t first_minute(uint64_t now) {
    return now + 1 >= kWindowMs ? (now + 1 - kWindowMs) / kBucketMs : 0;
  }
  // Drops minutes that left every possible window; moves newest_ forward.
  void advance(uint64_t minute);
  uint64_t ring_first() const { return newest_ + 1 >= kBuckets ? newest_ + 1 - kBuckets : 0; }
  uint64_t sum_from(uint64_t first) const;

  uint64_t limit_;
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t newest_ = 0;  // minute of the latest charge or now seen (time never goes back)
  uint64_t total_ = 0;   // sum of counts_
};

}  // namespace sb
