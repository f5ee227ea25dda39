// RunShared: the little state every worker reads or charges without a message (--limit,
// the account's allowance, "a relay answered", statistics); atomics, or a lock off the hot path.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "metrics/run_metrics.h"
#include "throttle/throttle.h"

namespace sb {

class CoordinatorInbox;

struct DnsStats {
  uint64_t lookups = 0, queries = 0, cpu_ns = 0, domains = 0;
  uint64_t handed_over = 0;  // recipients handed to the worker owning their destination
};

class RunShared {
 public:
  RunShared(uint64_t limit, CoordinatorInbox& inbox) : limit_(limit), inbox_(inbox) {}

  // --limit: true while this run may start one more message.
  bool take_message() {
    return limit_ == 0 || started_.fetch_add(1, std::memory_order_relaxed) < limit_;
  }

  // The sending account's share of the daily limit (see AccountQuota): recipients reserved
  // in the shared store and not yet handed to a session. Workers take from it per
  // transaction; the coordinator tops it up.
  void set_account_limited(bool on) { account_limited_ = on; }
  bool account_limited() const { return account_limited_; }
  // True and `n` taken; false: *resume_at is when the account has room again (0: a top-up
  // is on its way, ask again shortly).
  bool take_allowance(uint64_t n, uint64_t* resume_at);
  // Taken but not sent (a throttle refusal, a render failure, MAIL FROM never written).
  void return_allowance(uint64_t n) {
    if (n > 0) allowance_.fetch_add(static_cast<int64_t>(n), std::memory_order_acq_rel);
  }
  // The coordinator's side.
  void add_allowance(uint64_t n) {
    allowance_.fetch_add(static_cast<int64_t>(n), std::memory_order_acq_rel);
  }
  int64_t allowance() const { return allowance_.load(); }
  int64_t take_all_allowance() { return allowance_.exchange(0); }
  bool topup_wanted() const { return topup_wanted_.load(); }
  bool clear_topup_wanted() { return topup_wanted_.exchange(false); }
  uint64_t account_resume_at() const { return account_resume_at_.load(); }
  void set_account_resume_at(uint64_t at) { account_resume_at_.store(at); }
  // A shared quota's room is held by other nodes: the coordinator asks again at this wall ms
  // (0: not waiting); workers wait until then instead of stopping.
  uint64_t account_retry_at() const { return account_retry_at_.load(); }
  void set_account_retry_at(uint64_t at) { account_retry_at_.store(at); }

  // A session got a greeting: a run that then stops because of the relay was stopped by the
  // relay (exit 5), not by an address nothing answers on (exit 2).
  void relay_answered() { relay_answered_.store(true, std::memory_order_relaxed); }
  bool did_relay_answer() const { return relay_answered_.load(std::memory_order_relaxed); }

  // --direct: recipients claimed that are not yet queued at the worker owning their
  // destination, nor waiting out a DNS retry (rows held by the planner, lookups under way,
  // hand-overs on their way). Only a hint for idle sessions (while there are any, one may yet
  // get work, so it stays open); when the run ends is the ledger's business, not this.
  void add_in_transit(int64_t n) { in_transit_.fetch_add(n, std::memory_order_acq_rel); }
  int64_t in_transit() const { return in_transit_.load(std::memory_order_acquire); }

  // --direct: what each destination's own push-back throttle is built from.
  void set_dest_throttle_config(const ThrottleConfig& c) { dest_tcfg_ = c; }
  const ThrottleConfig& dest_throttle_config() const { return dest_tcfg_; }

  // The run's metrics (served by --metrics): every worker counts into its own cells. A run
  // without --metrics counts into the run's own set, which nobody reads.
  void set_metrics(metrics::RunMetrics* m) { metrics_ = m != nullptr ? m : &own_metrics_; }
  metrics::RunMetrics& metrics() { return *metrics_; }

  // Statistics, added by each worker as it is torn down.
  void add_pushback_stats(const ThrottleSnapshot& s);
  void add_dns_stats(const DnsStats& s);
  ThrottleSnapshot pushback() const;
  uint64_t pushed_dests() const;
  DnsStats dns() const;

 private:
  const uint64_t limit_;
  CoordinatorInbox& inbox_;
  std::atomic<uint64_t> started_{0};
  bool account_limited_ = false;
  std::atomic<int64_t> allowance_{0};
  std::atomic<uint64_t> account_resume_at_{0};
  std::atomic<uint64_t> account_retry_at_{0};
  std::atomic<bool> topup_wanted_{false};
  std::atomic<bool> relay_answered_{false};
  std::atomic<int64_t> in_transit_{0};
  ThrottleConfig dest_tcfg_;
  mutable std::mutex mu_;
  ThrottleSnapshot dest_push_;  // summed over the destinations that were pushed back
  uint64_t pushed_dests_ = 0;
  DnsStats dns_;
  metrics::RunMetrics own_metrics_;
  metrics::RunMetrics* metrics_ = &own_metrics_;
};

}  // namespace sb
