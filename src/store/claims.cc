// Claims as ranges: one row per claimed batch instead of an in-flight status written per row.
//
// Why: a per-row UPDATE costs ~3,600 instructions in SQLite whatever it writes (issue 17), and
// `send` paid it for every recipient before sending it. A claim now inserts one row, (lo, hi]:
// every sendable row (unsent or deferred) in that interval was claimed with it. Such a row is in
// flight until its outcome is written (sent, failed, ... change its status) or, when the row
// stays sendable (deferred, or released unstarted), until its id is in claimed_settled. The
// crash-safety contract is unchanged: the range commits before any of its rows is sent, and an
// outcome commits with its settled mark, so after kill -9 exactly the rows claimed and not
// settled read as in flight.
//
// Readers (counts, list, a claim that does not mark) overlay the ranges; writers that read the
// status column in SQL (reset, import, a new run) first turn an earlier process's ranges into
// per-row in-flight statuses (settle_left_claims), so their SQL stays as it was.
#include <algorithm>

#include "store/task_store_impl.h"

namespace sb {
namespace {

constexpr const char* kClaimTables = R"sql(
CREATE TABLE IF NOT EXISTS claimed_ranges(id INTEGER PRIMARY KEY, lo INTEGER NOT NULL,
                                          hi INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS claimed_settled(id INTEGER PRIMARY KEY);
)sql";

bool sendable(RcptStatus s) { return s == RcptStatus::kUnsent || s == RcptStatus::kDeferred; }

// What record() will change in memory once its transaction commits.
struct SettlePlan {
  std::vector<std::pair<int64_t, int>> ids;  // (id, new status): leave `unsettled`
  bool unclaimed = false;                    // an outcome for a row not claimed here
  std::unordered_map<int64_t, uint64_t> per_range;
  std::vector<int64_t> marked;   // into `settled`
  std::vector<int64_t> dropped;  // ranges deleted
  bool clear_all = false;
  int64_t settled_below = INT64_MIN;  // settled marks <= this were deleted
};
thread_local SettlePlan plan;  // one store per thread; reused so a commit allocates little

}  // namespace

int64_t ClaimView::effective(int64_t id, int64_t status) const {
  if (status != static_cast<int64_t>(RcptStatus::kUnsent) &&
      status != static_cast<int64_t>(RcptStatus::kDeferred)) {
    return status;
  }
  auto it = std::partition_point(ranges.begin(), ranges.end(),
                                 [id](const auto& r) { return r.first < id; });
  if (it == ranges.begin()) return status;
  --it;
  if (id > it->second || settled.count(id) != 0) return status;
  return static_cast<int64_t>(RcptStatus::kInFlight);
}

Result<ClaimView> TaskStoreState::claim_view() {
  ClaimView v;
  Stmt q;
  if (q.prepare(db.h,
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                "name IN ('claimed_ranges', 'claimed_settled')") != SQLITE_OK ||
      sqlite3_step(q.get()) != SQLITE_ROW) {
    return error("reading claims");
  }
  if (q.col_int(0) != 2) return v;  // a task no run of this version claimed from
  if (q.prepare(db.h, "SELECT lo, hi FROM claimed_ranges ORDER BY lo") != SQLITE_OK) {
    return error("reading claims");
  }
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    int64_t lo = q.col_int(0), hi = q.col_int(1);
    if (!v.ranges.empty() && lo <= v.ranges.back().second) {
      v.ranges.back().second = std::max(v.ranges.back().second, hi);
    } else {
      v.ranges.emplace_back(lo, hi);
    }
  }
  if (rc != SQLITE_DONE) return error("reading claims");
  if (v.ranges.empty()) return v;
  if (q.prepare(db.h, "SELECT id FROM claimed_settled") != SQLITE_OK) {
    return error("reading claims");
  }
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) v.settled.insert(q.col_int(0));
  if (rc != SQLITE_DONE) return error("reading claims");
  return v;
}

Status TaskStoreState::settle_left_claims() {
  if (claims.checked) return {};
  if (auto b = begin_txn(); !b) return b;
  auto fail = [&](std::string_view what) -> Status {
    Error e = error(what);
    rollback_txn();
    return e;
  };
  if (sqlite3_exec(db.h, kClaimTables, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail("creating the claim tables");
  }
  std::vector<std::pair<int64_t, int64_t>> left;
  {
    Stmt q;
    if (q.prepare(db.h, "SELECT lo, hi FROM claimed_ranges") != SQLITE_OK) {
      return fail("reading claims");
    }
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW)
      left.emplace_back(q.col_int(0), q.col_int(1));
    if (rc != SQLITE_DONE) return fail("reading claims");
  }
  if (!left.empty()) {
    // A run that was stopped without settling these: exactly what it would have left as
    // in flight when claims marked every row.
    Stmt u;
    if (u.prepare(db.h,
                  "UPDATE recipients SET status = 5 WHERE id > ?1 AND id <= ?2 AND "
                  "status IN (0, 2) AND id NOT IN (SELECT id FROM claimed_settled)") != SQLITE_OK) {
      return fail("settling an earlier run's claims");
    }
    for (auto [lo, hi] : left) {
      u.bind(1, lo);
      u.bind(2, hi);
      if (auto r = run(u, "settling an earlier run's claims"); !r) {
        rollback_txn();
        return r;
      }
    }
  }
  if (sqlite3_exec(db.h, "DELETE FROM claimed_ranges; DELETE FROM claimed_settled", nullptr,
                   nullptr, nullptr) != SQLITE_OK) {
    return fail("settling an earlier run's claims");
  }
  if (auto c = commit_txn(); !c) {
    rollback_txn();
    return c;
  }
  ClaimRanges& c = claims;
  struct {
    Stmt& st;
    const char* sql;
  } stmts[] = {
      {c.insert_range, "INSERT INTO claimed_ranges(lo, hi) VALUES (?1, ?2)"},
      {c.delete_range, "DELETE FROM claimed_ranges WHERE id = ?1"},
      {c.insert_settled, "INSERT OR IGNORE INTO claimed_settled(id) VALUES (?1)"},
      {c.delete_settled, "DELETE FROM claimed_settled WHERE id = ?1"},
      {c.clear_settled_below, "DELETE FROM claimed_settled WHERE id <= ?1"},
  };
  for (auto& p : stmts) {
    if (p.st.prepare(db.h, p.sql) != SQLITE_OK) return error("preparing statements");
  }
  c.checked = true;
  return {};
}

Result<int64_t> claims_write_claim(TaskStoreState& s, int64_t after,
                                   const std::vector<RecipientRow>& rows, size_t first) {
  ClaimRanges& c = s.claims;
  c.insert_range.bind(1, after);
  c.insert_range.bind(2, rows.back().id);
  if (auto r = s.run(c.insert_range, "recording a claim"); !r) return r.error();
  int64_t key = sqlite3_last_insert_rowid(s.db.h);
  if (!c.settled.empty()) {
    // A deferred row claimed again (a retry pass) is in flight again.
    for (size_t i = first; i < rows.size(); ++i) {
      if (c.settled.count(rows[i].id) == 0) continue;
      c.delete_settled.bind(1, rows[i].id);
      if (auto r = s.run(c.delete_settled, "recording a claim"); !r) return r.error();
    }
  }
  return key;
}

void claims_claimed(TaskStoreState& s, int64_t key, int64_t after,
                    const std::vector<RecipientRow>& rows, size_t first) {
  ClaimRanges& c = s.claims;
  ClaimRanges::Open& mine = c.ranges[key];
  mine.lo = after;
  mine.hi = rows.back().id;
  for (size_t i = first; i < rows.size(); ++i) {
    int64_t id = rows[i].id;
    auto [it, fresh] = c.unsettled.try_emplace(id, key);
    if (!fresh) {  // claimed again while still open: the newer range holds it now
      auto old = c.ranges.find(it->second);
      if (old != c.ranges.end() && --old->second.open == 0) c.emptied.push_back(old->first);
      it->second = key;
    }
    ++mine.open;
    if (!c.settled.empty()) c.settled.erase(id);
    if (fresh) {
      auto st = static_cast<int64_t>(rows[i].status);
      if (st != static_cast<int64_t>(RcptStatus::kInFlight)) {
        s.counts_cache.move(st, static_cast<int64_t>(RcptStatus::kInFlight));
      }
    }
  }
}

Status claims_write_settled(TaskStoreState& s, const std::vector<Outcome>& outcomes) {
  ClaimRanges& c = s.claims;
  SettlePlan& p = plan;
  p.ids.clear();
  p.unclaimed = false;
  p.per_range.clear();
  p.marked.clear();
  p.dropped.clear();
  p.clear_all = false;
  p.settled_below = INT64_MIN;
  if (c.unsettled.empty() && c.emptied.empty()) {
    p.unclaimed = !outcomes.empty();
    return {};
  }
  for (const Outcome& o : outcomes) {
    auto it = c.unsettled.find(o.id);
    if (it == c.unsettled.end()) {
      p.unclaimed = true;
      continue;
    }
    uint64_t& n = p.per_range[it->second];
    if (n == c.ranges[it->second].open) {  // a row twice in one batch (a bug)
      p.unclaimed = true;
      continue;
    }
    ++n;
    p.ids.emplace_back(o.id, static_cast<int>(o.status));
    if (sendable(o.status)) p.marked.push_back(o.id);
  }
  if (p.ids.size() >= c.unsettled.size()) {
    // A row twice in one batch counts once.
    std::sort(p.ids.begin(), p.ids.end(), [](auto& a, auto& b) { return a.first < b.first; });
    p.ids.erase(std::unique(p.ids.begin(), p.ids.end(),
                            [](auto& a, auto& b) { return a.first == b.first; }),
                p.ids.end());
  }
  if (p.ids.size() == c.unsettled.size()) {
    // Nothing left open: the run has settled everything it claimed.
    p.clear_all = true;
    if (sqlite3_exec(s.db.h, "DELETE FROM claimed_ranges; DELETE FROM claimed_settled", nullptr,
                     nullptr, nullptr) != SQLITE_OK) {
      return s.error("settling claims");
    }
    return {};
  }
  for (int64_t id : p.marked) {
    c.insert_settled.bind(1, id);
    if (auto r = s.run(c.insert_settled, "settling claims"); !r) return r;
  }
  p.dropped = c.emptied;
  int64_t min_lo = INT64_MAX;
  for (const auto& [key, r] : c.ranges) {
    auto n = p.per_range.find(key);
    uint64_t left = r.open - (n == p.per_range.end() ? 0 : n->second);
    if (left == 0) {
      if (r.open != 0) p.dropped.push_back(key);
    } else {
      min_lo = std::min(min_lo, r.lo);
    }
  }
  for (int64_t key : p.dropped) {
    c.delete_range.bind(1, key);
    if (auto r = s.run(c.delete_range, "settling claims"); !r) return r;
  }
  // Settled marks below every open range are no longer needed (no open claim covers them).
  bool below =
      (!c.settled.empty() && *c.settled.begin() <= min_lo) ||
      std::any_of(p.marked.begin(), p.marked.end(), [min_lo](int64_t id) { return id <= min_lo; });
  if (below) {
    c.clear_settled_below.bind(1, min_lo);
    if (auto r = s.run(c.clear_settled_below, "settling claims"); !r) return r;
    p.settled_below = min_lo;
  }
  return {};
}

void claims_settled(TaskStoreState& s, const std::vector<Outcome>& /*outcomes*/) {
  ClaimRanges& c = s.claims;
  SettlePlan& p = plan;
  if (p.unclaimed) s.counts_cache.valid = false;  // its status before is not known here
  for (auto [id, status] : p.ids) {
    s.counts_cache.move(static_cast<int64_t>(RcptStatus::kInFlight), status);
  }
  if (p.clear_all) {
    c.ranges.clear();
    c.unsettled.clear();
    c.settled.clear();
    c.emptied.clear();
    return;
  }
  for (const auto& [key, n] : p.per_range) c.ranges[key].open -= n;
  for (const auto& e : p.ids) c.unsettled.erase(e.first);
  for (int64_t key : p.dropped) c.ranges.erase(key);
  c.emptied.clear();
  c.settled.insert(p.marked.begin(), p.marked.end());
  if (p.settled_below != INT64_MIN) {
    c.settled.erase(c.settled.begin(), c.settled.upper_bound(p.settled_below));
  }
}

}  // namespace sb
