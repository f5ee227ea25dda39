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

 private:
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
};

}  // namespace sb
