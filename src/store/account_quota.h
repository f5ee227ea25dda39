// The sending account's rolling 24 h quota, shared by every task on this machine (a SQLite file).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb {

// Where AccountAllowance reserves the account's daily quota: this machine's quota file
// (AccountQuota), or the rows of a PostgreSQL mailing that several machines share (PgQuota in
// pg/pg_throttle.h).
class QuotaSource {
 public:
  virtual ~QuotaSource() = default;
  struct Grant {
    uint64_t granted = 0;    // recipients reserved now (0..want), charged at `now`
    uint64_t used = 0;       // the account's count in the window, after this reservation
    uint64_t resume_at = 0;  // granted == 0: when one recipient fits again (wall ms)
    // A quota shared by several nodes (PgQuota): what other live nodes hold reserved and have
    // not sent yet. A refusal is final (the quota is spent) only when this is 0; otherwise
    // those nodes may still give some back, and the caller asks again a little later.
    uint64_t others_held = 0;
  };
  // A held reservation of a shared quota, for `status`.
  struct Hold {
    std::string holder;  // the node and its epoch
    uint64_t n = 0;      // reserved, not sent yet
    std::string until;   // its lease: ISO 8601, UTC
  };
  // Reserves up to `want` recipients for `account` under `limit` (this run's --daily-limit;
  // the counts do not depend on it). `now`: wall-clock ms since the epoch.
  virtual Result<Grant> reserve(const std::string& account, uint64_t limit, uint64_t want,
                                uint64_t now) = 0;
  // reserve(), from a holder that still has `held` of its earlier reservations unspent (a
  // shared quota records it, so that other nodes know the room is only held, not spent).
  virtual Result<Grant> reserve_holding(const std::string& account, uint64_t limit, uint64_t want,
                                        uint64_t held, uint64_t now) {
    (void)held;
    return reserve(account, limit, want, now);
  }
  // Tells a shared quota what this holder still holds unspent, and keeps its hold alive;
  // `done`: the run is over, the hold ends. A quota of one machine has no holds.
  virtual Status report_held(const std::string& account, uint64_t held, bool done) {
    (void)account, (void)held, (void)done;
    return {};
  }
  // The live holds of `account` (a shared quota), largest first.
  virtual Result<std::vector<Hold>> holds(const std::string& account) {
    (void)account;
    return std::vector<Hold>{};
  }
  // Returns recipients reserved at `charged_at` that were never sent.
  virtual Status give_back(const std::string& account, uint64_t charged_at, uint64_t n,
                           uint64_t now) = 0;
  // The account's count in the rolling 24 h ending at `now` (0 for an unknown account).
  virtual Result<uint64_t> used(const std::string& account, uint64_t now) = 0;
  // Where the counts live, for messages and `status`.
  virtual const std::string& path() const = 0;
};

// A provider's daily limit belongs to the account (the relay's user, or the envelope sender of
// a relay without AUTH), not to one mailing: two tasks sent through one mailbox the same day
// share it. Each account's count is a DailyQuota (throttle/daily_quota.h: per-minute buckets,
// never N+1 in any rolling 24 h) kept in its serialised form in one row of a small SQLite file.
//
// Every change is one BEGIN IMMEDIATE transaction (SQLite's file lock, a busy timeout, WAL,
// synchronous=FULL), so concurrent senders on this machine never both take the last unit.
// A sender reserves a few recipients at a time before it sends them and gives back what it
// did not use. Crash-safe in the direction that matters: a reservation is on disk before any
// message of it starts, and one a killed process never gave back stays counted (at most one
// reservation, by then maybe partly sent) rather than letting the account go over its limit.
class AccountQuota final : public QuotaSource {
 public:
  // $XDG_STATE_HOME/smtpblast/quota.db, or ~/.local/state/smtpblast/quota.db (XDG Base
  // Directory default); "" when neither HOME nor XDG_STATE_HOME is set.
  static std::string default_path();

  // Opens (creating it and its directory, mode 0700) the quota file. Errors name the file.
  static Result<std::unique_ptr<AccountQuota>> open(const std::string& path);
  ~AccountQuota();
  AccountQuota(const AccountQuota&) = delete;
  AccountQuota& operator=(const AccountQuota&) = delete;

  Result<Grant> reserve(const std::string& account, uint64_t limit, uint64_t want,
                        uint64_t now) override;
  Status give_back(const std::string& account, uint64_t charged_at, uint64_t n,
                   uint64_t now) override;
  Result<uint64_t> used(const std::string& account, uint64_t now) override;

  const std::string& path() const override { return path_; }

 private:
  struct Impl;
  AccountQuota(std::unique_ptr<Impl> impl, std::string path);
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

}  // namespace sb
