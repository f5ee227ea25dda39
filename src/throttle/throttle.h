// The throttle: rate, burst, daily quota, block/pause and push-back composed behind one call.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/result.h"
#include "throttle/aimd.h"
#include "throttle/block_pause.h"
#include "throttle/daily_quota.h"
#include "throttle/pushback.h"
#include "throttle/rate_spec.h"
#include "throttle/slot_pool.h"
#include "throttle/token_bucket.h"

namespace sb {

struct ThrottleConfig {
  std::optional<RateSpec> rate;  // messages started per period, across all connections
  uint64_t burst = 1;            // bucket depth; 1 = smooth pacing
  uint64_t daily_limit = 0;      // recipients per rolling 24 h; 0 = none
  uint64_t block_size = 0;       // messages per block; 0 = no blocks
  uint64_t block_pause_ms = 0;
  std::optional<RateSpec> connect_rate;  // new connections per period
  bool adaptive = true;                  // AIMD on push-back
  AimdConfig aimd;
  // A quota reply pauses everything; repeated quota replies double the pause (the provider
  // did not say which window it counts), a success resets it.
  uint64_t quota_pause_ms = 60'000;
  uint64_t quota_pause_max_ms = 3'600'000;
};

// The command-line / config-file form, before validation.
struct ThrottleFlags {
  std::string rate;          // --rate 30/min
  uint64_t burst = 0;        // --burst B (0: not given)
  uint64_t daily_limit = 0;  // --daily-limit N
  uint64_t block_size = 0;   // --block-size N
  std::string block_pause;   // --block-pause 2m
  std::string connect_rate;  // --connect-rate 5/s
};

Result<ThrottleConfig> make_throttle_config(const ThrottleFlags& flags);

// What a refused acquire() waits for.
enum class Limit { kNone, kRate, kAdaptive, kBlockPause, kDaily, kQuotaPause };
const char* limit_name(Limit l);

struct ThrottleSnapshot {
  double configured_rate_per_s = 0;  // 0: no --rate
  double adaptive_rate_per_s = 0;    // 0: AIMD not limiting
  double current_rate_per_s = 0;     // the pace acquire() holds now; 0: unlimited
  double tokens = -1;                // grants available now from the bucket; -1: no bucket
  uint64_t next_send_at = 0;         // 0: a message may start now
  Limit blocked_by = Limit::kNone;   // what next_send_at waits for
  uint64_t daily_limit = 0;
  uint64_t daily_count = 0;
  uint64_t block_size = 0;
  uint64_t block_sent = 0;
  uint64_t paused_until = 0;  // quota pause end; 0 or past: not paused
  uint64_t granted = 0;       // messages let through
  uint64_t pushbacks = 0;     // slow-down + quota replies
  uint64_t slowdowns = 0;
  uint64_t quota_replies = 0;
  uint64_t quota_pauses = 0;  // pauses started (replies during a pause do not start another)
  uint64_t rate_cuts = 0;     // AIMD decreases
};

// One line for the run summary and status: "rate 30/min (now 15/min), daily 120/10000, ...".
std::string describe(const ThrottleSnapshot& s);

// Single-threaded: one per worker loop, or wrapped by SharedThrottle. Pure: `now` is passed
// in (ms; wall clock since the epoch because the daily quota outlives the process), nothing
// sleeps, nothing is read from the system. Time that steps back is treated as standing still.
class Throttle {
 public:
  explicit Throttle(const ThrottleConfig& cfg);

  // Per message, right before it starts (MAIL FROM). 0: go, and every limiter has been
  // charged (`recipients` against the daily quota, 1 message against the others); otherwise
  // nothing was charged and the result is when to ask again. When that is for kDaily the run
  // should stop (or sleep with --wait); DailyQuota::kNever means `recipients` exceeds the
  // daily limit and the transaction must be split. `why`, if given, is set only on refusal.
  uint64_t acquire(uint64_t now, uint64_t recipients = 1, Limit* why = nullptr) {
    if (fast_) {  // nothing configured and no push-back in effect: two branches
      ++granted_;
      return 0;
    }
    return acquire_slow(now, recipients, why);
  }
  // What acquire() would answer, without charging anything.
  uint64_t peek(uint64_t now, uint64_t recipients = 1, Limit* why = nullptr) const;
  // Why the last refused acquire() was refused.
  Limit blocked_by() const { return blocked_by_; }

  // Before opening a connection: 0 go, else retry time (--connect-rate).
  uint64_t acquire_connect(uint64_t now) { return connect_ ? connect_->try_take(now) : 0; }

  // Per reply (cheap when it is not push-back). kSlowDown/kQuota: the caller defers the
  // recipients. `sent_at`, the grant time of the message the reply belongs to, lets a burst
  // of push-back from messages already in flight count as one event; 0 if unknown.
  PushBack on_reply(int code, std::string_view text, uint64_t now, uint64_t sent_at = 0);
  // Recipients charged at `charged_at` that never reached the server.
  void refund(uint64_t charged_at, uint64_t recipients);

  // The daily quota's state, to store in the task after each commit and restore at start.
  bool has_daily_limit() const { return daily_.has_value(); }
  std::string daily_state(uint64_t now) const { return daily_ ? daily_->serialise(now) : "dq1"; }
  Status restore_daily_state(std::string_view text);

  ThrottleSnapshot snapshot(uint64_t now) const;
  bool unlimited() const { return fast_; }
  // Grants counted outside (SharedThrottle's lock-free path), folded in under its lock.
  void add_unlimited_grants(uint64_t n) { granted_ += n; }

 private:
  uint64_t acquire_slow(uint64_t now, uint64_t recipients, Limit* why);
  void update_fast(uint64_t now);

  ThrottleConfig cfg_;
  std::optional<TokenBucket> bucket_;
  std::optional<TokenBucket> connect_;
  std::optional<DailyQuota> daily_;
  std::optional<BlockPause> block_;
  Aimd aimd_;
  bool fast_ = false;
  Limit blocked_by_ = Limit::kNone;
  uint64_t last_now_ = 0;
  uint64_t paused_until_ = 0;
  uint64_t quota_backoff_ms_;
  uint64_t granted_ = 0;
  uint64_t pushbacks_ = 0;
  uint64_t slowdowns_ = 0;
  uint64_t quota_replies_ = 0;
  uint64_t quota_pauses_ = 0;
};

// A Throttle shared by several worker loops. Unlimited and not adapting: acquire() is one
// atomic load and one relaxed add, no lock. Otherwise a mutex held for a few dozen ns per
// message (see bench/throttle_bench.cc).
class SharedThrottle {
 public:
  explicit SharedThrottle(const ThrottleConfig& cfg) : t_(cfg) { fast_.store(t_.unlimited()); }

  // Several processes share one mailing (PostgreSQL): --rate and --connect-rate are counted in
  // the shared store instead (the config given above then has neither). Each is asked after the
  // local limits agree, so a local refusal never spends a shared slot. Set before any acquire;
  // null: none. Not owned.
  void set_remote(RemoteRate* rate, RemoteRate* connect) {
    std::lock_guard lock(mu_);
    remote_rate_ = rate;
    remote_connect_ = connect;
    fast_.store(t_.unlimited() && rate == nullptr, std::memory_order_release);
  }

  uint64_t acquire(uint64_t now, uint64_t recipients = 1, Limit* why = nullptr) {
    if (fast_.load(std::memory_order_acquire)) {
      unlimited_grants_.fetch_add(1, std::memory_order_relaxed);
      return 0;
    }
    if (remote_rate_ != nullptr)
      return locked([&] { return acquire_remote(now, recipients, why); });
    return locked([&] { return t_.acquire(now, recipients, why); });
  }
  uint64_t acquire_connect(uint64_t now) {
    return locked([&]() -> uint64_t {
      if (uint64_t at = t_.acquire_connect(now); at != 0 || remote_connect_ == nullptr) return at;
      return remote_connect_->take(now);
    });
  }
  PushBack on_reply(int code, std::string_view text, uint64_t now, uint64_t sent_at = 0);
  void refund(uint64_t charged_at, uint64_t recipients) {
    locked([&] { t_.refund(charged_at, recipients); });
  }
  std::string daily_state(uint64_t now) {
    return locked([&] { return t_.daily_state(now); });
  }
  Status restore_daily_state(std::string_view text) {
    return locked([&] { return t_.restore_daily_state(text); });
  }
  ThrottleSnapshot snapshot(uint64_t now) {
    return locked([&] { return t_.snapshot(now); });
  }

 private:
  static constexpr uint64_t kSampleMs = 1000;

  template <class F>
  auto locked(F&& f) -> decltype(f()) {
    std::lock_guard lock(mu_);
    t_.add_unlimited_grants(unlimited_grants_.exchange(0, std::memory_order_relaxed));
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      fast_.store(t_.unlimited() && remote_rate_ == nullptr, std::memory_order_release);
    } else {
      auto r = f();
      fast_.store(t_.unlimited() && remote_rate_ == nullptr, std::memory_order_release);
      return r;
    }
  }
  // Under the lock: the local limiters (push-back, blocks, pauses) without charging them, then
  // the shared slot, then the local charge, which peek() has just promised.
  uint64_t acquire_remote(uint64_t now, uint64_t recipients, Limit* why) {
    if (uint64_t at = t_.peek(now, recipients, why); at != 0)
      return t_.acquire(now, recipients, why);
    if (uint64_t at = remote_rate_->take(now); at != 0) {
      if (why != nullptr) *why = Limit::kRate;
      return at;
    }
    return t_.acquire(now, recipients, why);
  }

  std::mutex mu_;
  Throttle t_;
  RemoteRate* remote_rate_ = nullptr;
  RemoteRate* remote_connect_ = nullptr;
  std::atomic<bool> fast_{false};
  std::atomic<uint64_t> unlimited_grants_{0};
  std::atomic<uint64_t> next_sample_{0};
};

}  // namespace sb
