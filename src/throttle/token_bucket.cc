// Exact GCRA + sliding-window log; see token_bucket.h for why both.
#include "throttle/token_bucket.h"

#include <algorithm>
#include <cassert>

namespace sb {

TokenBucket::TokenBucket(RateSpec rate, uint64_t burst) : rate_(rate) {
  assert(rate.count > 0 && rate.period_ms > 0);
  burst_ = std::clamp<uint64_t>(burst, 1, rate.count);
  if (burst_ > 1 && rate.count <= kMaxLog) {
    gcra_n_ = rate.count;
    log_.assign(rate.count, 0);
  } else {
    gcra_n_ = rate.count - burst_ + 1;
  }
  // In ticks of 1/gcra_n_ ms the emission interval T = P/gcra_n_ ms is exactly P ticks.
  tau_ = Ticks(burst_ - 1) * rate.period_ms;
}

uint64_t TokenBucket::check(uint64_t now) const {
  now = std::max(now, last_now_);
  uint64_t at = 0;
  const Ticks now_t = Ticks(now) * gcra_n_;
  if (now_t + tau_ < tat_) {
    const Ticks need = tat_ - tau_;  // allowed from this tick on; round up to whole ms
    at = uint64_t((need + gcra_n_ - 1) / gcra_n_);
  }
  if (!log_.empty() && log_count_ >= rate_.count) {
    // The slot we would overwrite holds the N-th most recent grant.
    const uint64_t oldest = log_[log_count_ % rate_.count];
    if (now - oldest < rate_.period_ms) at = std::max(at, oldest + rate_.period_ms);
  }
  return at;
}

void TokenBucket::take(uint64_t now) {
  now = std::max(now, last_now_);
  last_now_ = now;
  tat_ = std::max(tat_, Ticks(now) * gcra_n_) + rate_.period_ms;
  if (!log_.empty()) {
    log_[log_count_ % rate_.count] = now;
    ++log_count_;
  }
}

double TokenBucket::tokens(uint64_t now) const {
  now = std::max(now, last_now_);
  if (!log_.empty() && log_count_ >= rate_.count &&
      now - log_[log_count_ % rate_.count] < rate_.period_ms) {
    return 0;
  }
  const Ticks now_t = Ticks(now) * gcra_n_;
  const Ticks tat = std::max(tat_, now_t);
  if (now_t + tau_ < tat) return 0;
  // Grants k fit while tat + (k-1)*T <= now + tau.
  const double avail = double(now_t + tau_ - tat) / double(rate_.period_ms) + 1.0;
  return std::min(avail, double(burst_));
}

}  // namespace sb
