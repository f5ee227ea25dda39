// Shared rate buckets and the shared daily quota on PostgreSQL, and the node-side slot refill.
#include "pg/pg_throttle.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <chrono>

#include "base/signal_mask.h"
#include "pg/pg_store.h"

namespace sb {

namespace {

// Why functions and not one bare UPDATE: the clock must be read after the row's lock is held.
// In a single UPDATE a caller that waited for the lock would have read clock_timestamp() (or
// now()) before the wait, and hand out slots from a time already past. Each call is still one
// statement, one round trip and one transaction; in READ COMMITTED every statement inside the
// function sees what the previous lock holder committed.
constexpr const char* kThrottleSchema = R"sql(
SELECT pg_advisory_xact_lock(7283746501);
CREATE TABLE IF NOT EXISTS sb_rate_bucket (
  key text PRIMARY KEY,
  tat_us bigint NOT NULL DEFAULT 0  -- the next free slot, server clock, µs since the epoch
);
CREATE TABLE IF NOT EXISTS sb_quota_account (key text PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sb_quota_minute (
  key text NOT NULL REFERENCES sb_quota_account(key),
  minute bigint NOT NULL,  -- server clock, minutes since the epoch
  n bigint NOT NULL,
  PRIMARY KEY (key, minute)
);
CREATE OR REPLACE FUNCTION sb_rate_take(p_key text, p_interval bigint, p_want bigint,
    p_horizon bigint, OUT first_us bigint, OUT granted bigint, OUT interval_us bigint,
    OUT now_us bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_tat bigint;
BEGIN
  SELECT b.tat_us INTO v_tat FROM sb_rate_bucket b WHERE b.key = p_key FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO sb_rate_bucket(key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
    SELECT b.tat_us INTO v_tat FROM sb_rate_bucket b WHERE b.key = p_key FOR UPDATE;
  END IF;
  now_us := floor(extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
  interval_us := p_interval;
  first_us := greatest(v_tat, now_us);
  IF first_us > now_us + p_horizon OR p_want <= 0 THEN
    granted := 0;
    RETURN;
  END IF;
  granted := least(p_want, (now_us + p_horizon - first_us) / interval_us + 1);
  UPDATE sb_rate_bucket SET tat_us = first_us + granted * interval_us WHERE key = p_key;
END $$;
CREATE OR REPLACE FUNCTION sb_quota_reserve(p_key text, p_limit bigint, p_want bigint,
    OUT granted bigint, OUT used_n bigint, OUT charged_minute bigint, OUT resume_ms bigint,
    OUT now_ms bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_first bigint;
BEGIN
  INSERT INTO sb_quota_account(key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
  PERFORM 1 FROM sb_quota_account a WHERE a.key = p_key FOR UPDATE;
  now_ms := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  charged_minute := now_ms / 60000;
  -- every minute a 24 h window ending now can overlap (DailyQuota's count)
  v_first := greatest(now_ms + 1 - 86400000, 0) / 60000;
  DELETE FROM sb_quota_minute q WHERE q.key = p_key AND q.minute < v_first;
  SELECT coalesce(sum(q.n), 0) INTO used_n FROM sb_quota_minute q
    WHERE q.key = p_key AND q.minute >= v_first;
  granted := least(p_want, greatest(p_limit - used_n, 0));
  resume_ms := 0;
  IF granted > 0 THEN
    INSERT INTO sb_quota_minute(key, minute, n) VALUES (p_key, charged_minute, granted)
      ON CONFLICT (key, minute) DO UPDATE SET n = sb_quota_minute.n + excluded.n;
    used_n := used_n + granted;
  ELSE
    -- one more fits once enough of the oldest minutes have left every window
    SELECT (m.minute + 1) * 60000 + 86400000 - 1 INTO resume_ms FROM (
      SELECT q.minute, sum(q.n) OVER (ORDER BY q.minute) AS cum FROM sb_quota_minute q
        WHERE q.key = p_key AND q.minute >= v_first) m
      WHERE used_n - m.cum <= p_limit - 1 ORDER BY m.minute LIMIT 1;
    resume_ms := coalesce(resume_ms, now_ms + 60000);
  END IF;
END $$;
-- Reservations a node holds and has not spent yet (issue 13): the per-minute rows count them
-- as used from the moment they are reserved, so another node that finds no room must know
-- whether the room is truly spent or only held. A hold lives as long as its node's lease
-- (renewed with it); a killed node's hold runs out after one lease, and its tokens then stay
-- counted (it may have sent part of them since it last reported).
CREATE TABLE IF NOT EXISTS sb_quota_hold (
  key text NOT NULL REFERENCES sb_quota_account(key),
  holder text NOT NULL,      -- the node and its epoch: "n1 (epoch 7)"
  n bigint NOT NULL,         -- reserved and not spent
  until timestamptz NOT NULL,
  PRIMARY KEY (key, holder)
);
-- sb_quota_reserve, and: the caller's hold is set to p_held (what it still has unspent) plus
-- what it is granted now, alive for p_lease_ms; others_held is what live holders other than
-- the caller hold unspent (so a refusal is final only when it is 0).
CREATE OR REPLACE FUNCTION sb_quota_take(p_key text, p_limit bigint, p_want bigint,
    p_holder text, p_held bigint, p_lease_ms bigint,
    OUT granted bigint, OUT used_n bigint, OUT charged_minute bigint, OUT resume_ms bigint,
    OUT now_ms bigint, OUT others_held bigint)
LANGUAGE plpgsql AS $$
BEGIN
  SELECT r.granted, r.used_n, r.charged_minute, r.resume_ms, r.now_ms
    INTO granted, used_n, charged_minute, resume_ms, now_ms
    FROM sb_quota_reserve(p_key, p_limit, p_want) r;
  -- the account's row lock is held: holds change under it
  DELETE FROM sb_quota_hold h WHERE h.key = p_key AND h.until < clock_timestamp();
  IF p_holder <> '' THEN
    INSERT INTO sb_quota_hold(key, holder, n, until) VALUES (p_key, p_holder,
        p_held + granted, clock_timestamp() + p_lease_ms * interval '1 millisecond')
      ON CONFLICT (key, holder) DO UPDATE SET n = excluded.n, until = excluded.until;
  END IF;
  SELECT coalesce(sum(h.n), 0) INTO others_held FROM sb_quota_hold h
    WHERE h.key = p_key AND h.holder <> p_holder AND h.n > 0;
END $$;
)sql";

constexpr uint64_t kIdleUs = 2'000'000;  // no take() for this long: stop refilling
constexpr uint64_t kMaxBatch = 1000;     // slots per round trip

std::string u64(uint64_t v) { return std::to_string(v); }

}  // namespace

Status pg_throttle_schema(PgBlocking& db) { return db.exec_script(kThrottleSchema); }

Result<PgSlots> pg_take_slots(PgBlocking& db, const std::string& key, uint64_t interval_us,
                              uint64_t want, uint64_t horizon_us) {
  auto r =
      db.exec("SELECT first_us, granted, interval_us, now_us FROM sb_rate_take($1, $2, $3, $4)",
              {key, u64(interval_us), u64(want), u64(horizon_us)});
  if (!r.ok()) return r.error();
  if (r->rows() != 1) return make_error(ErrDomain::kStore, "sb_rate_take returned no row");
  PgSlots s;
  s.first_us = static_cast<uint64_t>(r->int64(0, 0));
  s.count = static_cast<uint64_t>(r->int64(0, 1));
  s.interval_us = static_cast<uint64_t>(r->int64(0, 2));
  s.server_now_us = static_cast<uint64_t>(r->int64(0, 3));
  return s;
}

// --- PgRate ------------------------------------------------------------------------------

PgRate::PgRate(std::unique_ptr<PgBlocking> db, std::string key, RateSpec rate, const Clock& clock)
    : db_(std::move(db)),
      key_(std::move(key)),
      rate_(rate),
      clock_(clock),
      interval_us_(SlotPool::pace_interval_us(rate)),
      horizon_us_(SlotPool::horizon_us(rate)),
      pool_(SlotPool::grace_us(rate)) {}

Result<std::unique_ptr<PgRate>> PgRate::start(const std::string& conninfo, std::string key,
                                              RateSpec rate, const Clock& clock) {
  if (rate.count == 0 || rate.period_ms == 0) {
    return make_error(ErrDomain::kConfig, "shared rate without a limit");
  }
  auto db = PgBlocking::connect(conninfo);
  if (!db.ok()) return db.error();
  if (auto s = pg_throttle_schema(**db); !s.ok()) return s.error();
  std::unique_ptr<PgRate> r(new PgRate(std::move(db).value(), std::move(key), rate, clock));
  // The refill thread must never take a signal meant for the run.
  with_signals_blocked([&] { r->thread_ = std::thread([p = r.get()] { p->run(); }); });
  return r;
}

PgRate::~PgRate() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t PgRate::now_us() const {
  // The clock reads whole ms: the upper end of the true time, so that a slot mapped from the
  // server's clock is never early (take() compares with the lower end).
  return static_cast<uint64_t>(clock_.wall_ms()) * 1000 + 1000;
}

uint64_t PgRate::take(uint64_t now_ms) {
  const uint64_t now = now_ms * 1000;
  std::unique_lock lk(mu_);
  const bool was_idle = last_demand_us_ == 0 || now >= last_demand_us_ + kIdleUs;
  last_demand_us_ = std::max(last_demand_us_, now);
  const uint64_t at = pool_.take(now);
  const bool low = pool_.last_us() < now + horizon_us_ / 2;
  uint64_t next_due = 0;
  if (at == SlotPool::kEmpty) {
    // Booked ahead by the other nodes: the next slot cannot be due before the next ask's
    // horizon starts. Otherwise a refill is on its way: ask again shortly.
    next_due = next_ask_us_ > now ? (next_ask_us_ + horizon_us_) / 1000 : now_ms + 2;
  }
  lk.unlock();
  if (was_idle || low) cv_.notify_one();
  return at == SlotPool::kEmpty ? next_due : at;
}

PgRate::Stats PgRate::stats() const {
  std::lock_guard lk(mu_);
  Stats s = stats_;
  s.spent = pool_.spent();
  s.expired = pool_.expired();
  return s;
}

void PgRate::run() {
  std::unique_lock lk(mu_);
  uint64_t backoff_ms = 100;
  while (!stop_) {
    const uint64_t now = now_us();
    const bool demand = last_demand_us_ != 0 && now < last_demand_us_ + kIdleUs;
    const uint64_t last = pool_.last_us();
    const bool low = last < now + horizon_us_ / 2;
    if (!demand || !low || now < next_ask_us_) {
      uint64_t wake = now + 1'000'000;
      if (demand && low) wake = std::min(wake, next_ask_us_);
      if (demand && !low) wake = std::min(wake, last - horizon_us_ / 2);
      cv_.wait_for(lk, std::chrono::microseconds(std::max<uint64_t>(wake, now + 500) - now));
      continue;
    }
    // Enough for one horizon past what is held.
    const uint64_t from = std::max(now, last == 0 ? now : last + interval_us_);
    const uint64_t want = std::clamp<uint64_t>(
        (now + horizon_us_ - std::min(from, now + horizon_us_)) / interval_us_ + 1, 1, kMaxBatch);
    lk.unlock();
    auto r = pg_take_slots(*db_, key_, interval_us_, want, horizon_us_);
    const uint64_t recv = now_us();
    if (!r.ok() && db_->broken()) {
      // The server went away (restart, network): no slots, so this node sends nothing until
      // it is back; reconnect with a growing pause.
      (void)db_->reconnect();
    }
    lk.lock();
    ++stats_.round_trips;
    if (!r.ok()) {
      ++stats_.errors;
      stats_.last_error = r.error().message;
      cv_.wait_for(lk, std::chrono::milliseconds(backoff_ms), [&] { return stop_; });
      backoff_ms = std::min<uint64_t>(backoff_ms * 2, 2000);
      continue;
    }
    backoff_ms = 100;
    // Server time -> this node's time. The server read its clock before the answer arrived,
    // so mapping its reading to the arrival makes every slot late by at most the round trip
    // (which the slot's grace covers), never early.
    const int64_t offset = static_cast<int64_t>(recv) - static_cast<int64_t>(r->server_now_us);
    const uint64_t first = static_cast<uint64_t>(static_cast<int64_t>(r->first_us) + offset);
    if (r->count > 0) {
      pool_.add(first, r->interval_us, r->count);
      stats_.slots += r->count;
      next_ask_us_ = 0;
    } else {
      next_ask_us_ = first > horizon_us_ ? first - horizon_us_ : 0;
    }
  }
}

// --- PgQuota ------------------------------------------------------------------------------

PgQuota::PgQuota(std::unique_ptr<PgBlocking> db, std::string conninfo)
    : db_(std::move(db)), conninfo_(std::move(conninfo)) {}

Result<std::unique_ptr<PgQuota>> PgQuota::open(const std::string& conninfo) {
  auto db = PgBlocking::connect(conninfo);
  if (!db.ok()) return db.error();
  if (auto s = pg_throttle_schema(**db); !s.ok()) return s.error();
  return std::unique_ptr<PgQuota>(new PgQuota(std::move(db).value(), conninfo));
}

Result<PgResult> PgQuota::exec(const std::string& sql, const PgParams& params) {
  auto r = db_->exec(sql, params);
  if (!r.ok() && db_->broken() && db_->reconnect().ok()) r = db_->exec(sql, params);
  return r;
}

Result<QuotaSource::Grant> PgQuota::reserve(const std::string& account, uint64_t limit,
                                            uint64_t want, uint64_t now) {
  return reserve_holding(account, limit, want, 0, now);
}

Result<QuotaSource::Grant> PgQuota::reserve_holding(const std::string& account, uint64_t limit,
                                                    uint64_t want, uint64_t held, uint64_t now) {
  if (limit == 0) return make_error(ErrDomain::kConfig, "account quota without a limit");
  auto r = exec(
      "SELECT granted, used_n, charged_minute, resume_ms, now_ms, others_held FROM "
      "sb_quota_take($1, $2, $3, $4, $5, $6)",
      {account, u64(limit), u64(want), holder_, u64(held), u64(lease_ms_)});
  if (!r.ok()) return r.error();
  if (r->rows() != 1) return make_error(ErrDomain::kStore, "sb_quota_take returned no row");
  Grant g;
  g.granted = static_cast<uint64_t>(r->int64(0, 0));
  g.used = static_cast<uint64_t>(r->int64(0, 1));
  g.others_held = static_cast<uint64_t>(r->int64(0, 5));
  const int64_t server_now = r->int64(0, 4);
  if (g.granted > 0) {
    charged_minute_[now] = r->int64(0, 2);
  } else {
    // The server's time -> ours.
    g.resume_at = static_cast<uint64_t>(
        std::max<int64_t>(r->int64(0, 3) + (static_cast<int64_t>(now) - server_now), 1));
  }
  return g;
}

Status PgQuota::give_back(const std::string& account, uint64_t charged_at, uint64_t n,
                          uint64_t now) {
  (void)now;
  if (n == 0) return {};
  auto it = charged_minute_.find(charged_at);
  const int64_t minute =
      it != charged_minute_.end() ? it->second : static_cast<int64_t>(charged_at / 60000);
  // One statement: the minute's count and the hold go down together.
  auto r = exec(
      "WITH h AS (UPDATE sb_quota_hold SET n = greatest(n - $3::bigint, 0) "
      "WHERE key = $1 AND holder = $4) "
      "UPDATE sb_quota_minute SET n = greatest(n - $3::bigint, 0) WHERE key = $1 AND minute = $2",
      {account, std::to_string(minute), u64(n), holder_});
  if (!r.ok()) return r.error();
  return {};
}

Status PgQuota::report_held(const std::string& account, uint64_t held, bool done) {
  if (holder_.empty()) return {};
  auto r =
      done ? exec("DELETE FROM sb_quota_hold WHERE key = $1 AND holder = $2", {account, holder_})
           : exec(
                 "UPDATE sb_quota_hold SET n = $3, until = clock_timestamp() + $4::bigint "
                 "* interval '1 millisecond' WHERE key = $1 AND holder = $2",
                 {account, holder_, u64(held), u64(lease_ms_)});
  if (!r.ok()) return r.error();
  return {};
}

Result<std::vector<QuotaSource::Hold>> PgQuota::holds(const std::string& account) {
  auto r = exec(
      "SELECT holder, n, to_char(until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
      "FROM sb_quota_hold WHERE key = $1 AND until >= clock_timestamp() AND n > 0 "
      "ORDER BY n DESC, holder",
      {account});
  if (!r.ok()) return r.error();
  std::vector<Hold> out;
  for (int i = 0; i < r->rows(); ++i) {
    Hold& h = out.emplace_back();
    h.holder = std::string(r->text(i, 0));
    h.n = static_cast<uint64_t>(r->int64(i, 1));
    h.until = std::string(r->text(i, 2));
  }
  return out;
}

Result<uint64_t> PgQuota::used(const std::string& account, uint64_t now) {
  (void)now;
  auto r = exec(
      "SELECT coalesce(sum(n), 0) FROM sb_quota_minute WHERE key = $1 AND minute >= "
      "greatest(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1 - 86400000, 0) "
      "/ 60000",
      {account});
  if (!r.ok()) return r.error();
  return static_cast<uint64_t>(r->rows() == 1 ? r->int64(0, 0) : 0);
}

Result<std::unique_ptr<QuotaSource>> open_quota_source(const std::string& path) {
  if (is_pg_task_url(path)) {
    auto q = PgQuota::open(path);
    if (!q.ok()) return q.error();
    return std::unique_ptr<QuotaSource>(std::move(q).value());
  }
  auto q = AccountQuota::open(path);
  if (!q.ok()) return q.error();
  return std::unique_ptr<QuotaSource>(std::move(q).value());
}

// --- a node's shared limits ---------------------------------------------------------------

Result<PgSharedLimits> pg_share_limits(const std::string& conninfo, const std::string& task,
                                       ThrottleConfig& cfg, const Clock& clock) {
  PgSharedLimits out;
  if (cfg.rate) {
    auto r = PgRate::start(conninfo, task + "/rate", *cfg.rate, clock);
    if (!r.ok()) return r.error();
    out.rate = std::move(r).value();
    cfg.rate.reset();
    cfg.burst = 1;
  }
  if (cfg.connect_rate) {
    auto r = PgRate::start(conninfo, task + "/connect", *cfg.connect_rate, clock);
    if (!r.ok()) return r.error();
    out.connect = std::move(r).value();
    cfg.connect_rate.reset();
  }
  cfg.daily_limit = 0;
  return out;
}

}  // namespace sb
