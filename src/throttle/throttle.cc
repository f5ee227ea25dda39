// Throttle composition: check every limiter, charge all or none; push-back handling.
#include "throttle/throttle.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace sb {
namespace {

Error config_error(std::string msg) { return make_error(ErrDomain::kConfig, std::move(msg)); }

std::string fmt_rate(double per_s) {
  char buf[48];
  if (per_s >= 1) {
    std::snprintf(buf, sizeof buf, "%.3g/s", per_s);
  } else if (per_s * 60 >= 1) {
    std::snprintf(buf, sizeof buf, "%.3g/min", per_s * 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g/h", per_s * 3600);
  }
  return buf;
}

}  // namespace

const char* limit_name(Limit l) {
  switch (l) {
    case Limit::kNone: return "none";
    case Limit::kRate: return "rate";
    case Limit::kAdaptive: return "push-back slow-down";
    case Limit::kBlockPause: return "block pause";
    case Limit::kDaily: return "daily limit";
    case Limit::kQuotaPause: return "provider quota pause";
  }
  return "?";
}

Result<ThrottleConfig> make_throttle_config(const ThrottleFlags& f) {
  ThrottleConfig c;
  if (!f.rate.empty()) {
    auto r = parse_rate(f.rate);
    if (!r) return Error{ErrDomain::kConfig, "--rate: " + r.error().message};
    c.rate = *r;
  }
  if (f.burst != 0) {
    if (!c.rate) return config_error("--burst needs --rate");
    if (f.burst > c.rate->count) {
      return config_error("--burst " + std::to_string(f.burst) + " is more than --rate " + f.rate +
                          " allows in one period (" + std::to_string(c.rate->count) + ")");
    }
    c.burst = f.burst;
  }
  c.daily_limit = f.daily_limit;
  if ((f.block_size != 0) != !f.block_pause.empty()) {
    return config_error("--block-size and --block-pause go together (e.g. 5 and 2m)");
  }
  if (f.block_size != 0) {
    auto d = parse_duration_ms(f.block_pause);
    if (!d) return Error{ErrDomain::kConfig, "--block-pause: " + d.error().message};
    c.block_size = f.block_size;
    c.block_pause_ms = *d;
  }
  if (!f.connect_rate.empty()) {
    auto r = parse_rate(f.connect_rate);
    if (!r) return Error{ErrDomain::kConfig, "--connect-rate: " + r.error().message};
    c.connect_rate = *r;
  }
  return c;
}

std::string describe(const ThrottleSnapshot& s) {
  std::string out;
  auto add = [&](const std::string& part) {
    if (!out.empty()) out += ", ";
    out += part;
  };
  if (s.configured_rate_per_s > 0) add("rate " + fmt_rate(s.configured_rate_per_s));
  if (s.adaptive_rate_per_s > 0) add("slowed to " + fmt_rate(s.adaptive_rate_per_s));
  if (s.current_rate_per_s > 0) add("current " + fmt_rate(s.current_rate_per_s));
  if (s.tokens >= 0) {
    char t[32];
    std::snprintf(t, sizeof t, "tokens %.1f", s.tokens);
    add(t);
  }
  if (s.next_send_at != 0) {
    // Wall-clock milliseconds: shown as UTC so `status` can be read later.
    time_t secs = static_cast<time_t>(s.next_send_at / 1000);
    char when[40];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&secs));
    add(std::string("next send ") + when + " (" + limit_name(s.blocked_by) + ")");
  }
  if (s.daily_limit) {
    add("daily " + std::to_string(s.daily_count) + "/" + std::to_string(s.daily_limit));
  }
  if (s.block_size) {
    add("block " + std::to_string(s.block_sent) + "/" + std::to_string(s.block_size));
  }
  if (s.pushbacks) {
    add("push-back " + std::to_string(s.pushbacks) + " (" + std::to_string(s.rate_cuts) +
        " rate cuts, " + std::to_string(s.quota_pauses) + " quota pauses)");
  }
  if (out.empty()) out = "unlimited";
  return out;
}

Throttle::Throttle(const ThrottleConfig& cfg)
    : cfg_(cfg),
      aimd_(cfg.aimd, cfg.rate ? cfg.rate->per_second() : 0),
      quota_backoff_ms_(cfg.quota_pause_ms) {
  if (cfg.rate) bucket_.emplace(*cfg.rate, cfg.burst);
  if (cfg.connect_rate) connect_.emplace(*cfg.connect_rate, 1);
  if (cfg.daily_limit) daily_.emplace(cfg.daily_limit);
  if (cfg.block_size) block_.emplace(cfg.block_size, cfg.block_pause_ms);
  update_fast(0);
}

void Throttle::update_fast(uint64_t now) {
  // While AIMD watches a window after push-back every reply is counted (not only one a
  // second): the share of push-back is what it decides on.
  fast_ = !bucket_ && !daily_ && !block_ && !aimd_.active() && !aimd_.observing() &&
          now >= paused_until_;
}

uint64_t Throttle::peek(uint64_t now, uint64_t recipients, Limit* why) const {
  now = std::max(now, last_now_);
  uint64_t at = 0;
  Limit reason = Limit::kNone;
  auto consider = [&](uint64_t t, Limit l) {
    if (t > at) {
      at = t;
      reason = l;
    }
  };
  if (paused_until_ > now) consider(paused_until_, Limit::kQuotaPause);
  if (bucket_) consider(bucket_->check(now), Limit::kRate);
  consider(aimd_.check(now), Limit::kAdaptive);
  if (block_) consider(block_->check(now), Limit::kBlockPause);
  if (daily_) {
    // Reported even when another limit waits longer: reaching the daily limit ends the run.
    if (const uint64_t t = daily_->check(now, recipients)) {
      at = std::max(at, t);
      reason = Limit::kDaily;
    }
  }
  if (at != 0 && why) *why = reason;
  return at;
}

uint64_t Throttle::acquire_slow(uint64_t now, uint64_t recipients, Limit* why) {
  now = std::max(now, last_now_);
  last_now_ = now;
  Limit reason = Limit::kNone;
  if (const uint64_t at = peek(now, recipients, &reason)) {
    blocked_by_ = reason;
    if (why) *why = reason;
    return at;
  }
  // Every limiter said yes to the same `now`: charge them all.
  if (bucket_) bucket_->take(now);
  if (block_) block_->take(now);
  if (daily_) daily_->take(now, recipients);
  ++granted_;
  aimd_.take(now, granted_);
  blocked_by_ = Limit::kNone;
  update_fast(now);
  return 0;
}

PushBack Throttle::on_reply(int code, std::string_view text, uint64_t now, uint64_t sent_at) {
  now = std::max(now, last_now_);
  const PushBack kind = classify_reply(code, text);
  if (kind == PushBack::kNone) {
    if (code >= 200 && code < 300) {
      if (cfg_.adaptive) aimd_.on_reply(now, false, sent_at, granted_);
      if (now >= paused_until_) quota_backoff_ms_ = cfg_.quota_pause_ms;
      update_fast(now);
    }
    return kind;
  }
  ++pushbacks_;
  if (kind == PushBack::kSlowDown) {
    ++slowdowns_;
  } else {
    ++quota_replies_;
  }
  if (cfg_.adaptive) aimd_.on_reply(now, true, sent_at, granted_);
  if (kind == PushBack::kQuota && now >= paused_until_) {
    paused_until_ = now + quota_backoff_ms_;
    quota_backoff_ms_ = std::min(quota_backoff_ms_ * 2, cfg_.quota_pause_max_ms);
    ++quota_pauses_;
  }
  update_fast(now);
  return kind;
}

void Throttle::refund(uint64_t charged_at, uint64_t recipients) {
  if (daily_) daily_->refund(charged_at, recipients);
}

Status Throttle::restore_daily_state(std::string_view text) {
  if (!daily_) return {};  // no limit this run: the old counts do not matter
  return daily_->restore(text);
}

ThrottleSnapshot Throttle::snapshot(uint64_t now) const {
  now = std::max(now, last_now_);
  ThrottleSnapshot s;
  s.configured_rate_per_s = cfg_.rate ? cfg_.rate->per_second() : 0;
  s.adaptive_rate_per_s = aimd_.rate();
  if (s.adaptive_rate_per_s > 0 && s.configured_rate_per_s > 0) {
    s.current_rate_per_s = std::min(s.adaptive_rate_per_s, s.configured_rate_per_s);
  } else {
    s.current_rate_per_s = std::max(s.adaptive_rate_per_s, s.configured_rate_per_s);
  }
  s.tokens = bucket_ ? bucket_->tokens(now) : -1;
  s.next_send_at = peek(now, 1, &s.blocked_by);
  if (daily_) {
    s.daily_limit = daily_->limit();
    s.daily_count = daily_->count(now);
  }
  if (block_) {
    s.block_size = block_->size();
    s.block_sent = block_->sent_in_block();
  }
  s.paused_until = paused_until_ > now ? paused_until_ : 0;
  s.granted = granted_;
  s.pushbacks = pushbacks_;
  s.slowdowns = slowdowns_;
  s.quota_replies = quota_replies_;
  s.quota_pauses = quota_pauses_;
  s.rate_cuts = aimd_.cuts();
  return s;
}

PushBack SharedThrottle::on_reply(int code, std::string_view text, uint64_t now, uint64_t sent_at) {
  // Unlimited and a plain success: take the lock only once a second (the grants are counted
  // anyway), so that a window AIMD watches after push-back still closes on time.
  if (fast_.load(std::memory_order_acquire) && code < 400 &&
      now < next_sample_.load(std::memory_order_relaxed)) {
    return PushBack::kNone;
  }
  next_sample_.store(now + kSampleMs, std::memory_order_relaxed);
  return locked([&] { return t_.on_reply(code, text, now, sent_at); });
}

}  // namespace sb
