// AccountAllowance: the sending account's share of the daily limit, reserved in the shared
// quota store (AccountQuota) in chunks and handed to the workers through RunShared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "engine/run_shared.h"
#include "store/account_quota.h"

namespace sb {

class AccountAllowance {
 public:
  AccountAllowance(std::unique_ptr<QuotaSource> quota, std::string key, uint64_t daily_limit,
                   bool wait_daily, RunShared& shared, const Clock& clock);

  // Reserves more when the workers ran low (or asked); not while the run stops. On a quota
  // store error, error() is set and nothing more is reserved.
  void top_up(bool stopping);
  // The end of the run: what was reserved and not used goes back, newest first. Returns a
  // warning for the user, or "".
  std::string return_unused();

  const std::string& key() const { return key_; }
  const std::string& path() const { return quota_->path(); }
  uint64_t used() const { return used_; }
  const std::string& error() const { return error_; }

  // Other nodes held the rest of a shared quota: ask again this often.
  static constexpr uint64_t kRetryMs = 200;
  // What this node holds unspent is reported to a shared quota when it changed (at most this
  // often), and every renew_ms_ anyway (the hold's lease).
  static constexpr uint64_t kReportMs = 200;
  // A shared quota (several nodes): the hold is renewed this often, and what this node has
  // held unused for kIdleMs goes back (another node may hold the recipients it is for).
  void set_shared(uint64_t renew_ms) {
    renew_ms_ = renew_ms;
    shared_shares_ = true;
  }
  static constexpr uint64_t kIdleMs = 2000;

 private:
  uint64_t unspent() const;
  void report(uint64_t now);
  void release_idle(uint64_t now);
  void give_back_unspent(uint64_t now);

  std::unique_ptr<QuotaSource> quota_;
  std::string key_;
  uint64_t limit_;
  bool wait_daily_;
  RunShared& shared_;
  const Clock& clock_;
  uint64_t chunk_ = 32;  // recipients reserved per top-up (grows while used fast)
  uint64_t last_topup_ms_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> reservations_;  // (charged at, n), oldest first
  uint64_t used_ = 0;  // the account's count at the last reservation
  std::string error_;
  std::string warning_;  // a give-back failed
  uint64_t renew_ms_ = 10000;
  uint64_t reported_held_ = 0, last_report_ms_ = 0;
  bool shared_shares_ = false;                  // set_shared
  uint64_t idle_held_ = 0, idle_since_ms_ = 0;  // unspent, unchanged since
  bool idle_released_ = false;  // gave back unused tokens; no top-up until a worker asks
};

}  // namespace sb
