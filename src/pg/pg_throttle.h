// The limits several nodes of one PostgreSQL mailing share: --rate and --connect-rate as a
// bucket row (PgRate), the account's rolling daily quota as per-minute rows (PgQuota).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "pg/pg_conn.h"
#include "store/account_quota.h"
#include "throttle/rate_spec.h"
#include "throttle/slot_pool.h"
#include "throttle/throttle.h"

namespace sb {

// Creates the tables and functions below if they are missing (idempotent, safe to run from
// several nodes at once: an advisory lock serialises it).
Status pg_throttle_schema(PgBlocking& db);

// One call to a shared bucket (GCRA): up to `want` slots, `interval_us` apart, that start no
// later than `horizon_us` from the server's now. Times are the server's clock (µs since the
// epoch); `server_now_us` is when the server read it (after the row's lock was held).
struct PgSlots {
  uint64_t first_us = 0;  // count == 0: when the next slot is due (ask again before)
  uint64_t interval_us = 0;
  uint64_t count = 0;
  uint64_t server_now_us = 0;
};
Result<PgSlots> pg_take_slots(PgBlocking& db, const std::string& key, uint64_t interval_us,
                              uint64_t want, uint64_t horizon_us);

// A shared rate for this node: SharedThrottle asks take() on a worker loop, which only looks at
// the slots held here (a mutex, no I/O); a thread of its own, with its own connection, keeps
// about one horizon of slots ahead while the workers ask for them, and asks for none while they
// do not (a node with nothing to send holds no one else's slots). When the server cannot be
// reached the node gets no slots and so sends nothing: the limit holds; the store reports the
// outage.
class PgRate final : public RemoteRate {
 public:
  // `key` names the bucket in the database (one per task and limit: "march/rate").
  static Result<std::unique_ptr<PgRate>> start(const std::string& conninfo, std::string key,
                                               RateSpec rate, const Clock& clock);
  ~PgRate() override;
  PgRate(const PgRate&) = delete;
  PgRate& operator=(const PgRate&) = delete;

  uint64_t take(uint64_t now_ms) override;

  struct Stats {
    uint64_t round_trips = 0, slots = 0, spent = 0, expired = 0, errors = 0;
    std::string last_error;
  };
  Stats stats() const;

 private:
  PgRate(std::unique_ptr<PgBlocking> db, std::string key, RateSpec rate, const Clock& clock);
  void run();
  uint64_t now_us() const;

  std::unique_ptr<PgBlocking> db_;
  const std::string key_;
  const RateSpec rate_;
  const Clock& clock_;
  const uint64_t interval_us_, horizon_us_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  SlotPool pool_;
  bool stop_ = false;
  uint64_t last_demand_us_ = 0;  // the last take(): refills stop a while after it
  uint64_t next_ask_us_ = 0;     // the bucket is booked ahead: not before this
  Stats stats_;
  std::thread thread_;
};

// The account's rolling 24 h quota in PostgreSQL, shared by every node and task of the
// database: per-minute rows summed over the 1,441 minutes a 24 h window can touch (the same
// count as DailyQuota, so never N+1 in any rolling 24 h), reserved under the account's row lock
// with the server's clock, given back to the minute it was charged. Blocking: for the
// coordinator's thread (AccountAllowance), never a worker loop.
//
// What each node holds reserved and has not sent yet is a row of sb_quota_hold, alive with
// the node's lease: a refusal tells the caller how much other live nodes still hold
// (Grant::others_held), so that a node waits while the last tokens may yet come back instead
// of stopping with the quota not used up. A killed node's hold stops counting as held after
// one lease (SMTPBLAST_PG_LEASE_MS, 30 s by default); its tokens stay used, since it may
// have sent some of them after it last reported.
class PgQuota final : public QuotaSource {
 public:
  static Result<std::unique_ptr<PgQuota>> open(const std::string& conninfo);

  // This process's name in the holds table (a sending node: "NODE (epoch N)") and its lease:
  // a hold not renewed for `lease_ms` (report_held, or a reservation) no longer makes other
  // nodes wait. Without a holder nothing is recorded as held (but others' holds are seen).
  void set_holder(std::string holder, uint32_t lease_ms) {
    holder_ = std::move(holder);
    lease_ms_ = lease_ms;
  }

  Result<Grant> reserve(const std::string& account, uint64_t limit, uint64_t want,
                        uint64_t now) override;
  Result<Grant> reserve_holding(const std::string& account, uint64_t limit, uint64_t want,
                                uint64_t held, uint64_t now) override;
  Status report_held(const std::string& account, uint64_t held, bool done) override;
  Result<std::vector<Hold>> holds(const std::string& account) override;
  Status give_back(const std::string& account, uint64_t charged_at, uint64_t n,
                   uint64_t now) override;
  Result<uint64_t> used(const std::string& account, uint64_t now) override;
  // The conninfo (libpq never takes a password from it here: pg_check_conninfo), which is what
  // `status` opens again to show the account's count.
  const std::string& path() const override { return conninfo_; }

 private:
  PgQuota(std::unique_ptr<PgBlocking> db, std::string conninfo);
  Result<PgResult> exec(const std::string& sql, const PgParams& params);

  std::unique_ptr<PgBlocking> db_;
  std::string conninfo_;
  std::string holder_;
  uint32_t lease_ms_ = 30000;
  // A reservation's local time -> the server's minute it was charged to, for give_back.
  std::map<uint64_t, int64_t> charged_minute_;
};

// The account quota a task counts against: PgQuota for a PostgreSQL conninfo (a task URL's, as
// SendRun records it for `status`), else the SQLite quota file at `path`.
Result<std::unique_ptr<QuotaSource>> open_quota_source(const std::string& path);

// A node of a PostgreSQL mailing: --rate and --connect-rate leave its local throttle `cfg` for
// buckets of the task that every node shares ("TASK/rate", "TASK/connect"; a burst is not
// shared: the bucket paces smoothly), and the daily limit leaves it for the account's quota in
// the database (PgQuota, through AccountAllowance), which every node and run counts against.
// What stays local: blocks and pauses, quota-reply pauses and AIMD. AIMD per node still acts on
// the mailing as a whole: every node sees the same share p of push-back among its replies and
// cuts its own pace x to x(1-p), so the paces sum to X(1-p), the cut one AIMD over all replies
// would make; growth is proportional too.
struct PgSharedLimits {
  std::unique_ptr<PgRate> rate, connect;  // null: that limit is not set
};
Result<PgSharedLimits> pg_share_limits(const std::string& conninfo, const std::string& task,
                                       ThrottleConfig& cfg, const Clock& clock);

}  // namespace sb
