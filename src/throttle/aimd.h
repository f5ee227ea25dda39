// Adaptive rate: cut in proportion to the share of push-back replies, grow back on clean time.
#pragma once

#include <cstdint>

namespace sb {

struct AimdConfig {
  double floor_per_s = 1.0 / 60.0;  // never slower than 1/min: a mailing must progress
  // Replies are judged per window: one decision (cut, grow or nothing) per window.
  uint64_t window_ms = 1'000;
  // A window with push-back decides once it holds this many replies (or grants), or once it
  // is max_window_ms old: one 421 among three replies is not "a third of all replies". With
  // ten times as many it decides after a tenth of the window already (at 20,000 messages a
  // second a whole window of push-back would be 20,000 deferrals).
  uint32_t min_replies = 10;
  uint64_t max_window_ms = 30'000;
  // Push-back shares up to this are noise, not a rate the server wants lower (a lone 421
  // in a run of 80,000 messages a second).
  double tolerance = 0.01;
  // Growth per clean window: the first one after a cut adds 5%, each further one 1.5 times
  // the step of the one before, up to doubling per window: from the floor (1/min) back to
  // any ceiling in well under a minute, while the first steps above a cut stay small (a cut
  // lands near what the server takes; doubling steps overshoot it by far).
  double first_increase = 0.05;
  double increase_step_growth = 1.5;
  double max_increase = 1.0;
};

// Paces at rate() when active(); inactive means "no adaptive limit": the configured limiters
// (or nothing) decide.
//
// The decision at the end of a window with push-back: with x the pace held (or, inactive,
// the send rate measured over the window) and p the share of push-back among the window's
// replies, the new pace is x·(1 − p) — for a server that accepts R per second and defers the
// rest, exactly R. Replies to messages sent before the last cut are not counted (they speak
// of the old pace). Push-back that does not fall when the pace falls (a server deferring a
// fixed share whatever the rate) becomes the baseline: only the share above it cuts.
// The ceiling is the configured rate, or with none the send rate measured when push-back
// first came; once the pace has grown back to it AIMD switches itself off.
//
// Pure: every call takes `now` (ms) and the throttle's running count of grants (`granted`,
// which includes grants on the unlimited fast path, where successes are not reported one by
// one); nothing reads a clock. Pacing state is a double next-send time because exactness is
// owed only to the configured limit, which TokenBucket enforces separately.
class Aimd {
 public:
  // configured_per_s 0: no configured rate.
  Aimd(AimdConfig cfg, double configured_per_s);

  // A reply to a message granted at `sent_at` (0: unknown). Returns true when the rate was cut.
  bool on_reply(uint64_t now, bool pushback, uint64_t sent_at, uint64_t granted);

  bool active() const { return mode_ == Mode::kActive; }
  // Push-back came while inactive: the window decides whether to act on it.
  bool observing() const { return mode_ == Mode::kObserving; }
  double rate() const { return active() ? rate_ : 0; }
  double ceiling() const { return ceiling_; }
  double baseline() const { return baseline_; }
  uint64_t cuts() const { return cuts_; }

  uint64_t check(uint64_t now) const {
    if (!active() || double(now) >= next_) return 0;
    const auto at = uint64_t(next_);
    return double(at) < next_ ? at + 1 : at;
  }
  // A message was granted (granted already counts it).
  void take(uint64_t now, uint64_t granted);

 private:
  enum class Mode { kIdle, kObserving, kActive };
  void open_window(uint64_t now, uint64_t granted);
  bool advance(uint64_t now, uint64_t granted);
  bool decide(uint64_t now, uint64_t granted);

  AimdConfig cfg_;
  double configured_;
  Mode mode_ = Mode::kIdle;
  double ceiling_ = 0;
  double rate_ = 0;
  double next_ = 0;       // earliest next grant, ms
  double last_take_ = 0;  // when the last grant was due, ms
  bool last_ok_ = true;   // the last reply counted was not push-back
  double growth_ = 0;
  double baseline_ = 0;     // push-back share that does not depend on the pace
  double share_at_cut_ = -1;  // the share that caused the last cut, until the next decision
  uint32_t unhelpful_cuts_ = 0;  // cuts in a row after which the share did not fall
  uint64_t win_start_ = 0;
  uint64_t win_granted_ = 0;  // `granted` when the window opened
  uint64_t win_ok_ = 0;
  uint64_t win_pb_ = 0;
  uint64_t last_cut_ = 0;
  uint64_t cuts_ = 0;
};

}  // namespace sb
