// Reserving the account's daily quota for a run, and giving back what it did not use.
#include "engine/account_allowance.h"

#include <algorithm>

namespace sb {

AccountAllowance::AccountAllowance(std::unique_ptr<QuotaSource> quota, std::string key,
                                   uint64_t daily_limit, bool wait_daily, RunShared& shared,
                                   const Clock& clock)
    : quota_(std::move(quota)),
      key_(std::move(key)),
      limit_(daily_limit),
      wait_daily_(wait_daily),
      shared_(shared),
      clock_(clock) {}

void AccountAllowance::top_up(bool stopping) {
  // Cleared first, whatever happens next: the coordinator's wait ends while it is set.
  const bool wanted = shared_.clear_topup_wanted();
  if (!error_.empty() || stopping) return;
  const uint64_t now = static_cast<uint64_t>(clock_.wall_ms());
  if (uint64_t resume = shared_.account_resume_at(); resume != 0) {
    // The account had no room: with --wait, ask again once it may have.
    if (!wait_daily_ || now < resume) return;
    shared_.set_account_resume_at(0);
  }
  if (!wanted && shared_.allowance() >= static_cast<int64_t>(chunk_ / 2)) return;
  // Reserve more at once while the run uses it up fast (one fsync'd transaction each), but
  // start small so that a slow run does not hold what other tasks of the account could send.
  if (last_topup_ms_ != 0 && now - last_topup_ms_ < 1000) {
    chunk_ = std::min<uint64_t>(chunk_ * 2, 4096);
  }
  last_topup_ms_ = now;
  auto g = quota_->reserve(key_, limit_, chunk_, now);
  if (!g.ok()) {
    error_ = g.error().message;
    return;
  }
  used_ = g->used;
  if (g->granted > 0) {
    reservations_.emplace_back(now, g->granted);
    shared_.add_allowance(g->granted);
  } else {
    shared_.set_account_resume_at(std::max<uint64_t>(g->resume_at, 1));
  }
}

std::string AccountAllowance::return_unused() {
  std::string warning;
  int64_t left = shared_.take_all_allowance();
  const uint64_t now = static_cast<uint64_t>(clock_.wall_ms());
  // The newest reservations first: their minutes stay in the window longest.
  while (left > 0 && !reservations_.empty()) {
    auto& [at, n] = reservations_.back();
    uint64_t back = std::min<uint64_t>(n, static_cast<uint64_t>(left));
    if (auto s = quota_->give_back(key_, at, back, now); !s.ok()) {
      warning = s.error().message + " (the unsent reservation stays counted)";
      break;
    }
    left -= static_cast<int64_t>(back);
    reservations_.pop_back();
  }
  if (auto u = quota_->used(key_, now); u.ok()) used_ = *u;
  return warning;
}

}  // namespace sb
