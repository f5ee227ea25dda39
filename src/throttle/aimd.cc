// AIMD rate adaptation: a cut in proportion to the push-back share, growth on clean windows.
#include "throttle/aimd.h"

#include <algorithm>

namespace sb {

Aimd::Aimd(AimdConfig cfg, double configured_per_s) : cfg_(cfg), configured_(configured_per_s) {
  ceiling_ = configured_;
}

void Aimd::open_window(uint64_t now, uint64_t granted) {
  win_start_ = now;
  win_granted_ = granted;
  win_ok_ = 0;
  win_pb_ = 0;
}

bool Aimd::on_reply(uint64_t now, bool pushback, uint64_t sent_at, uint64_t granted) {
  now = std::max(now, win_start_);  // time that steps back stands still
  if (mode_ == Mode::kIdle) {
    if (!pushback) return false;
    // Push-back while nothing adapts: watch one window (at full speed) before acting.
    mode_ = Mode::kObserving;
    last_cut_ = 0;
    share_at_cut_ = -1;
    open_window(now, granted);
  }
  // Replies to messages sent before the last cut speak of the old pace.
  if (sent_at == 0 || sent_at >= last_cut_) {
    if (pushback) {
      ++win_pb_;
    } else {
      ++win_ok_;
    }
  }
  return advance(now, granted);
}

void Aimd::take(uint64_t now, uint64_t granted) {
  if (mode_ == Mode::kIdle) return;
  now = std::max(now, win_start_);
  (void)advance(now, granted);
  if (mode_ != Mode::kActive) return;
  next_ = std::max(next_, double(now)) + 1000.0 / rate_;
}

bool Aimd::advance(uint64_t now, uint64_t granted) {
  if (mode_ == Mode::kIdle || now < win_start_ + cfg_.window_ms) return false;
  if (win_pb_ > 0) {
    const uint64_t replies = std::max(win_pb_ + win_ok_, granted - win_granted_);
    if (replies < cfg_.min_replies && now < win_start_ + cfg_.max_window_ms) return false;
    if (decide(now, granted)) return true;
  } else {
    share_at_cut_ = -1;  // a clean window after a cut: the cut helped
    baseline_ *= 0.8;
  }
  if (mode_ == Mode::kObserving) {
    mode_ = Mode::kIdle;  // nothing worth acting on
    return false;
  }
  // Grow once per window that passed clean (several when nothing was sent for a while, as
  // at the floor): the step doubles each time.
  const uint64_t windows = std::min<uint64_t>((now - win_start_) / cfg_.window_ms, 64);
  for (uint64_t i = 0; i < windows; ++i) {
    rate_ *= 1 + growth_;
    growth_ = std::min(growth_ * 2, cfg_.max_increase);
    if (rate_ >= ceiling_) {
      rate_ = ceiling_;
      mode_ = Mode::kIdle;  // back to the configured limiters, or to unlimited
      break;
    }
  }
  open_window(now, granted);
  return false;
}

bool Aimd::decide(uint64_t now, uint64_t granted) {
  const double elapsed = double(now - win_start_);
  const uint64_t grants = granted - win_granted_;
  const double replies = double(std::max(win_pb_ + win_ok_, grants));
  const double p = std::min(1.0, double(win_pb_) / replies);
  // The last cut did not lower the share: that much push-back comes whatever the pace.
  if (share_at_cut_ >= 0 && p >= 0.75 * share_at_cut_) {
    baseline_ = std::max(baseline_, p);
  } else if (p < baseline_) {
    baseline_ = 0.8 * baseline_ + 0.2 * p;
  }
  share_at_cut_ = -1;
  const double excess = p - baseline_;
  if (excess <= cfg_.tolerance + 0.25 * baseline_) return false;  // noise: a clean window
  const double sent_rate = double(grants) * 1000.0 / elapsed;
  double x;
  if (mode_ == Mode::kActive) {
    x = grants > 0 ? std::min(rate_, sent_rate) : rate_;
  } else {
    x = grants > 0 ? sent_rate : cfg_.floor_per_s;
    if (configured_ > 0) x = std::min(x, configured_);
    ceiling_ = configured_ > 0 ? configured_ : std::max(x, cfg_.floor_per_s);
    mode_ = Mode::kActive;
  }
  rate_ = std::max(x * (1 - excess), cfg_.floor_per_s);
  growth_ = cfg_.first_increase;
  share_at_cut_ = p;
  last_cut_ = now;
  ++cuts_;
  // The next send waits a full new interval: push-back means "not now", not "next in line".
  next_ = std::max(next_, double(now) + 1000.0 / rate_);
  open_window(now, granted);
  return true;
}

}  // namespace sb
