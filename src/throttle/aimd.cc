// AIMD rate adaptation: multiplicative decrease on push-back, additive increase on success.
#include "throttle/aimd.h"

#include <algorithm>

namespace sb {

Aimd::Aimd(AimdConfig cfg, double configured_per_s) : cfg_(cfg), configured_(configured_per_s) {
  ceiling_ = configured_;
}

bool Aimd::on_pushback(uint64_t now, double measured_per_s, uint64_t sent_at) {
  if (active_ && cut_once_) {
    // Replies to messages sent before the last cut say nothing about the new rate.
    if (sent_at != 0 ? sent_at <= last_cut_ : now < last_cut_ + cfg_.min_cut_spacing_ms) {
      return false;
    }
  }
  if (!active_) {
    if (configured_ <= 0) ceiling_ = std::max(measured_per_s, cfg_.floor_per_s);
    rate_ = ceiling_;
    active_ = true;
  }
  rate_ = std::max(rate_ * cfg_.decrease, cfg_.floor_per_s);
  // The next send waits a full new interval: push-back means "not now", not "next in line".
  next_ = std::max(next_, double(now) + 1000.0 / rate_);
  last_cut_ = now;
  last_step_ = now;
  cut_once_ = true;
  ++cuts_;
  return true;
}

void Aimd::on_success(uint64_t now) {
  if (!active_ || now < last_step_ + cfg_.increase_window_ms) return;
  last_step_ = now;
  rate_ += ceiling_ * cfg_.increase_fraction;
  if (rate_ >= ceiling_) {
    active_ = false;
    cut_once_ = false;
    rate_ = ceiling_;
  }
}

void Aimd::take(uint64_t now) {
  if (!active_) return;
  next_ = std::max(next_, double(now)) + 1000.0 / rate_;
}

}  // namespace sb
