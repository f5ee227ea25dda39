// Adaptive rate: halve on server push-back, grow back additively while sends succeed.
#pragma once

#include <cstdint>

namespace sb {

struct AimdConfig {
  double decrease = 0.5;                 // multiplicative cut per push-back event
  double floor_per_s = 1.0 / 60.0;       // never slower than 1/min: a mailing must progress
  uint64_t increase_window_ms = 10'000;  // one additive step per window with successes
  double increase_fraction = 0.05;       // step = 5% of the ceiling: full recovery in ~20 windows
  // A burst of 421s from many connections is one congestion event, not fifty: after a cut,
  // further push-back only cuts again once this long has passed (or, when the caller passes
  // the send time, only for messages granted after the cut, as TCP counts one loss per window).
  uint64_t min_cut_spacing_ms = 2'000;
};

// Paces at rate() when active(); inactive means "no adaptive limit": the configured limiters
// (or nothing) decide. The ceiling is the configured rate; with no configured rate it is the
// send rate measured when the first push-back arrives, and AIMD switches itself off again once
// it has grown back to it — the run returns to unthrottled sending and re-measures on the next
// push-back. Times are ms; pacing state is a double next-send time because exactness is owed
// only to the configured limit, which TokenBucket enforces separately.
class Aimd {
 public:
  // configured_per_s 0: no configured rate.
  Aimd(AimdConfig cfg, double configured_per_s);

  // measured_per_s is used only when there is no configured rate and AIMD is not yet active.
  // sent_at 0: unknown. Returns true when the rate was cut.
  bool on_pushback(uint64_t now, double measured_per_s, uint64_t sent_at = 0);
  void on_success(uint64_t now);

  bool active() const { return active_; }
  double rate() const { return active_ ? rate_ : 0; }
  double ceiling() const { return ceiling_; }
  uint64_t cuts() const { return cuts_; }

  uint64_t check(uint64_t now) const {
    if (!active_ || double(now) >= next_) return 0;
    const auto at = uint64_t(next_);
    return double(at) < next_ ? at + 1 : at;
  }
  void take(uint64_t now);

 private:
  AimdConfig cfg_;
  double configured_;
  double ceiling_ = 0;
  double rate_ = 0;
  double next_ = 0;  // earliest next grant, ms
  bool active_ = false;
  bool cut_once_ = false;
  uint64_t last_cut_ = 0;
  uint64_t last_step_ = 0;
  uint64_t cuts_ = 0;
};

}  // namespace sb
