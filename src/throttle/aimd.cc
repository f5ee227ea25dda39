// AIMD rate adaptation: a cut in proportion to the push-back share, growth on clean windows.
#include "throttle/aimd.h"

#include <algorithm>

namespace sb {

namespace {
constexpr double kMaxBaseline = 0.3;
}  // namespace

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
    last_ok_ = !pushback;
  }
  return advance(now, granted);
}

void Aimd::take(uint64_t now, uint64_t granted) {
  if (mode_ == Mode::kIdle) return;
  now = std::max(now, win_start_);
  (void)advance(now, granted);
  if (mode_ != Mode::kActive) return;
  last_take_ = std::max(next_, double(now));
  next_ = last_take_ + 1000.0 / rate_;
}

bool Aimd::advance(uint64_t now, uint64_t granted) {
  if (mode_ == Mode::kIdle) return false;
  const uint64_t age = now - win_start_;
  if (win_pb_ > 0) {
    // Push-back decides early once the window holds enough replies to judge the share (at
    // thousands a second, a whole window of push-back is thousands of deferrals); else at
    // the window's end with min_replies; else when the window is as old as it may get.
    const uint64_t replies = std::max(win_pb_ + win_ok_, granted - win_granted_);
    const bool due = (age >= cfg_.window_ms / 10 && replies >= 10 * cfg_.min_replies) ||
                     (age >= cfg_.window_ms && replies >= cfg_.min_replies) ||
                     age >= cfg_.max_window_ms;
    if (!due) return false;
    if (decide(now, granted)) return true;
    if (age < cfg_.window_ms) {
      // Noise, judged early: the window goes on (clean so far as growth is concerned), its
      // counts start again.
      win_pb_ = 0;
      win_ok_ = 0;
      win_granted_ = granted;
      return false;
    }
  } else if (age < cfg_.window_ms) {
    return false;
  } else if (win_ok_ == 0 && !last_ok_) {
    // Nothing heard since push-back (at the floor, a reply a minute): no growth until a
    // clean reply comes; then the time waited counts.
    return false;
  } else {
    share_at_cut_ = -1;  // a clean window after a cut: the cut helped
    unhelpful_cuts_ = 0;
    baseline_ *= 0.8;
  }
  if (mode_ == Mode::kObserving) {
    mode_ = Mode::kIdle;  // nothing worth acting on
    return false;
  }
  // Grow once per window that passed clean (several when nothing was sent for a while, as
  // at the floor): each step 1.5 times the one before. The pacing follows at once.
  const double before = rate_;
  const uint64_t windows = std::min<uint64_t>((now - win_start_) / cfg_.window_ms, 64);
  for (uint64_t i = 0; i < windows; ++i) {
    rate_ *= 1 + growth_;
    growth_ = std::min(growth_ * cfg_.increase_step_growth, cfg_.max_increase);
    if (rate_ >= ceiling_) {
      rate_ = ceiling_;
      mode_ = Mode::kIdle;  // back to the configured limiters, or to unlimited
      break;
    }
  }
  if (rate_ > before) next_ = std::min(next_, last_take_ + 1000.0 / rate_);
  open_window(now, granted);
  return false;
}

bool Aimd::decide(uint64_t now, uint64_t granted) {
  const double elapsed = double(now - win_start_);
  const uint64_t grants = granted - win_granted_;
  const double replies = double(std::max(win_pb_ + win_ok_, grants));
  const double p = std::min(1.0, double(win_pb_) / replies);
  // Two cuts in a row that did not lower the share: that much push-back comes whatever the
  // pace (a server deferring a fixed share), up to a limit: a server refusing nearly
  // everything is not noise, and the floor is the place for it.
  if (share_at_cut_ >= 0 && p >= 0.8 * share_at_cut_) {
    if (++unhelpful_cuts_ >= 2) baseline_ = std::max(baseline_, std::min(p, kMaxBaseline));
  } else {
    unhelpful_cuts_ = 0;
    if (p < baseline_) baseline_ = 0.8 * baseline_ + 0.2 * p;
  }
  share_at_cut_ = -1;
  const double excess = p - baseline_;
  // Noise: a clean window. (Two replies' worth of slack: 2 of 90 is not a share to act on.)
  if (excess <= cfg_.tolerance + 0.25 * baseline_ + 2.0 / replies) return false;
  const double sent_rate = double(grants) * 1000.0 / elapsed;
  double x;
  if (mode_ == Mode::kActive) {
    // The pace, not the average sent: a queue that empties now and then still sends its
    // bursts at the pace, and those met the push-back.
    x = rate_;
  } else {
    x = grants > 0 ? sent_rate : cfg_.floor_per_s;
    if (configured_ > 0) x = std::min(x, configured_);
    ceiling_ = configured_ > 0 ? configured_ : std::max(x, cfg_.floor_per_s);
    mode_ = Mode::kActive;
  }
  rate_ = std::max(x * (1 - excess), cfg_.floor_per_s);
  // A deep cut rests on few successes (an estimate, maybe far below what the server takes):
  // its growth starts faster.
  growth_ = p > 0.5 ? 5 * cfg_.first_increase : cfg_.first_increase;
  share_at_cut_ = p;
  last_cut_ = now;
  ++cuts_;
  // The next send waits a full new interval: push-back means "not now", not "next in line".
  next_ = std::max(next_, double(now) + 1000.0 / rate_);
  open_window(now, granted);
  return true;
}

}  // namespace sb
