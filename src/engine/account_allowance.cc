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

uint64_t AccountAllowance::unspent() const {
  return static_cast<uint64_t>(std::max<int64_t>(shared_.allowance(), 0));
}

void AccountAllowance::report(uint64_t now) {
  // A shared quota learns what this node still holds: when it changed (at most every
  // kReportMs: a node that waits on ours sees it go down), and every lease/3 anyway (the hold
  // lives with the lease). A failed report is retried with the next one; an outage is the
  // store's to report.
  const uint64_t held = unspent();
  const bool changed = held != reported_held_ && now >= last_report_ms_ + kReportMs;
  if (!changed && now < last_report_ms_ + renew_ms_) return;
  last_report_ms_ = now;
  if (quota_->report_held(key_, held, false).ok()) reported_held_ = held;
}

void AccountAllowance::release_idle(uint64_t now) {
  const uint64_t held = unspent();
  if (held != idle_held_) {
    idle_held_ = held;
    idle_since_ms_ = now;
  } else if (held > 0 && now >= idle_since_ms_ + kIdleMs) {
    // Reserved and not used for a while: this node has nothing to send now (another node holds
    // the remaining recipients, or its retries are not due). Another node may be waiting for
    // exactly these (its recipients, no quota), so they go back; a later need reserves again.
    give_back_unspent(now);
    idle_released_ = true;
    idle_held_ = unspent();
    idle_since_ms_ = now;
    if (quota_->report_held(key_, idle_held_, false).ok()) reported_held_ = idle_held_;
    last_report_ms_ = now;
  }
}

void AccountAllowance::top_up(bool stopping) {
  // Cleared first, whatever happens next: the coordinator's wait ends while it is set.
  // `starved`: a worker's take failed (it needs more than this node has left).
  const bool starved = shared_.clear_topup_wanted();
  bool wanted = starved;
  if (!error_.empty()) return;
  const uint64_t now = static_cast<uint64_t>(clock_.wall_ms());
  if (stopping) {
    // Nothing more is reserved, but what this node holds stays a live hold until the run
    // gives it back: a hold left to expire reads to a waiting node as spent, and that node
    // would stop for good a moment before these come back.
    report(now);
    return;
  }
  if (shared_shares_) release_idle(now);
  if (starved) idle_released_ = false;
  if (idle_released_) {
    // What this node held unused went back: it reserves again only when a worker asks. Had it
    // topped up at once (under half a chunk left), it took back what it had just freed, at
    // the moment the node holding the recipients could have had it: two such nodes passed
    // the quota between them for good while that node waited (0 of 60 sent, test_pg_throttle
    // under ASan).
    report(now);
    return;
  }
  if (uint64_t resume = shared_.account_resume_at(); resume != 0) {
    // The account had no room: with --wait, ask again once it may have. Until then this node
    // may still spend (or give back) what it holds, so its hold is kept alive as above.
    if (!wait_daily_ || now < resume) {
      report(now);
      return;
    }
    shared_.set_account_resume_at(0);
  }
  if (uint64_t retry = shared_.account_retry_at(); retry != 0) {
    // Other nodes held the rest of the quota: ask again when it is time (the workers wait).
    if (now < retry) {
      report(now);
      return;
    }
    shared_.set_account_retry_at(0);
    wanted = true;
  }
  if (!wanted && shared_.allowance() >= static_cast<int64_t>(chunk_ / 2)) {
    report(now);
    return;
  }
  // Reserve more at once while the run uses it up fast (one fsync'd transaction each), but
  // start small so that a slow run does not hold what other tasks of the account could send.
  if (last_topup_ms_ != 0 && now - last_topup_ms_ < 1000) {
    chunk_ = std::min<uint64_t>(chunk_ * 2, 4096);
  }
  last_topup_ms_ = now;
  const uint64_t held = unspent();
  auto g = quota_->reserve_holding(key_, limit_, chunk_, held, now);
  if (!g.ok()) {
    error_ = g.error().message;
    return;
  }
  used_ = g->used;
  reported_held_ = held + g->granted;
  last_report_ms_ = now;
  if (g->granted > 0) {
    reservations_.emplace_back(now, g->granted);
    shared_.add_allowance(g->granted);
  } else if (g->others_held > 0) {
    // No room, but only because other live nodes hold reservations they have not sent yet:
    // they may give some back (their run ends, a message is not attempted), or send them all.
    // Wait and ask again; the refusal is final once nobody holds any. What this node holds
    // but cannot use (a transaction wants more than it has) goes back, so that two nodes
    // never wait for each other's remainder.
    if (starved && held > 0) give_back_unspent(now);
    shared_.set_account_retry_at(now + kRetryMs);
  } else {
    shared_.set_account_resume_at(std::max<uint64_t>(g->resume_at, 1));
  }
}

void AccountAllowance::give_back_unspent(uint64_t now) {
  int64_t left = shared_.take_all_allowance();
  // The newest reservations first: their minutes stay in the window longest.
  while (left > 0 && !reservations_.empty()) {
    auto& [at, n] = reservations_.back();
    uint64_t back = std::min<uint64_t>(n, static_cast<uint64_t>(left));
    if (auto s = quota_->give_back(key_, at, back, now); !s.ok()) {
      warning_ = s.error().message + " (the unsent reservation stays counted)";
      break;
    }
    left -= static_cast<int64_t>(back);
    n -= back;
    if (n == 0) reservations_.pop_back();
  }
}

std::string AccountAllowance::return_unused() {
  const uint64_t now = static_cast<uint64_t>(clock_.wall_ms());
  give_back_unspent(now);
  // The hold ends with the run: nobody waits for this node any more.
  (void)quota_->report_held(key_, 0, true);
  if (auto u = quota_->used(key_, now); u.ok()) used_ = *u;
  return warning_;
}

}  // namespace sb
