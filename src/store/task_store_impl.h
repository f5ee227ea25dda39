// Private state of a TaskStore, shared by the store's .cc files (open/claim/record, import).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/result.h"
#include "store/sqlite_task_store.h"
#include "store/sqlite_util.h"

namespace sb {

// Claims recorded as ranges (claims.cc). A claim that marks its rows in flight writes one row
// per batch, (lo, hi]: every sendable row there was claimed, and is in flight until settled.
// An outcome that leaves a row sendable (deferred, or a release) is noted in the settled table,
// so a reader can tell it from a row still under way. This process's own open claims are kept
// here too, so ranges whose rows are all settled are dropped as the run goes.
struct ClaimRanges {
  bool checked = false;  // an earlier process's claims were settled and the tables made
  struct Open {
    int64_t lo = 0;     // exclusive
    int64_t hi = 0;     // inclusive
    uint64_t open = 0;  // rows claimed in it and not settled yet
  };
  std::unordered_map<int64_t, Open> ranges;        // open ranges by their row key
  std::unordered_map<int64_t, int64_t> unsettled;  // claimed row id -> its range's key
  std::set<int64_t> settled;                       // ids in the settled table
  std::vector<int64_t> emptied;  // ranges with nothing open left, dropped at the next record
  Stmt insert_range, delete_range, insert_settled, delete_settled, clear_settled_below;
};

// What a reader needs to tell rows in flight: the ranges (merged) and the settled ids of
// every open claim, read from the file, so another process's run is seen as it is.
struct ClaimView {
  std::vector<std::pair<int64_t, int64_t>> ranges;  // (lo, hi], sorted, disjoint
  std::unordered_set<int64_t> settled;
  bool empty() const { return ranges.empty(); }
  // The status a reader shows: 0 or 2 inside an open claim and not settled is in flight.
  int64_t effective(int64_t id, int64_t status) const;
};

// counts(false) as of the last full scan, kept up to date by this process's own claims and
// outcomes (claims.cc), so the summary at the end of a run needs no second scan of the task.
// Valid while no other connection changed the file (PRAGMA data_version) and no write of ours
// it cannot follow (reset, import, returns, an outcome for a row it did not claim) was made.
// Writes through this connection that bypass claim() and record() (another module using the
// handle) show as a change of sqlite3_total_changes64 it did not expect, and drop it too.
struct CountsCache {
  bool valid = false;
  int64_t data_version = 0;
  int64_t total_changes = 0;  // the connection's row changes when it was last in step
  // Around claim() and record(): the counts follow only if nothing else wrote since they were
  // last in step; afterwards they are in step again (the caller applied its own changes).
  void check(sqlite3* db) {
    if (valid && sqlite3_total_changes64(db) != total_changes) valid = false;
  }
  void in_step(sqlite3* db) { total_changes = sqlite3_total_changes64(db); }
  uint64_t per_status[kRcptStatusMax + 1] = {};
  uint64_t unknown = 0;
  std::vector<std::string> unknown_values;
  void move(int64_t from, int64_t to) {
    if (from >= 0 && from <= kRcptStatusMax && per_status[from] > 0) {
      --per_status[from];
    } else {
      valid = false;  // not what the scan saw: count again
    }
    if (to >= 0 && to <= kRcptStatusMax) {
      ++per_status[to];
    } else {
      valid = false;
    }
  }
};

// Meta keys the store keeps for itself; set_meta refuses keys with this prefix.
inline constexpr std::string_view kReservedMetaPrefix = "sb.";

struct TaskStoreState {
  SqliteDb db;  // first member: destroyed last, after the statements below
  std::string path;
  bool in_memory = false;
  bool imported = false;
  std::vector<std::string> field_names;

  Stmt begin;
  Stmt commit;
  Stmt rollback;
  Stmt claim;
  Stmt record;
  Stmt release;
  Stmt get_meta;
  Stmt set_meta;
  // Returned mail (returns_store.cc): tables made on first use, statements prepared once.
  bool returns_schema = false;
  ClaimRanges claims;
  CountsCache counts_cache;
  Stmt ret_seen, ret_email, ret_insert, ret_current, ret_upsert, ret_status;

  // A kStore error for the last failed SQLite call, naming the file; corruption and
  // "not a database" get their own wording so the user knows the file itself is the problem.
  Error error(std::string_view what) const;
  // Runs SQL without results (DDL, pragmas that return nothing useful).
  Status exec(const char* sql, std::string_view what);
  // Steps a statement to completion (no rows expected) and resets it.
  Status run(Stmt& st, std::string_view what);
  // Before this process writes: claims an earlier (killed) run left open become per-row
  // in-flight statuses, so every statement that reads the status column sees them; makes
  // the claim tables. Once per store.
  Status settle_left_claims();
  // The open claims as recorded in the file (empty when there are none, or no table).
  Result<ClaimView> claim_view();
  Status begin_txn() { return run(begin, "starting a transaction"); }
  Status commit_txn() { return run(commit, "committing"); }
  void rollback_txn() {
    sqlite3_step(rollback.get());
    rollback.reset();
  }
};

// The claim-range bookkeeping of claim() and record(), split around their commit: the file is
// written inside the caller's transaction, memory is changed only once it committed.
// Inside a marking claim's transaction, rows [first, end) of `rows` just read: records the
// range (after, last], forgets settled marks of rows claimed again; returns the range's key.
Result<int64_t> claims_write_claim(TaskStoreState& s, int64_t after,
                                   const std::vector<RecipientRow>& rows, size_t first);
void claims_claimed(TaskStoreState& s, int64_t key, int64_t after,
                    const std::vector<RecipientRow>& rows, size_t first);
// Inside record()'s transaction, after the outcomes were written: notes the outcomes that leave
// a row sendable, drops ranges with nothing left open (all of them once nothing is).
Status claims_write_settled(TaskStoreState& s, const std::vector<Outcome>& outcomes);
void claims_settled(TaskStoreState& s, const std::vector<Outcome>& outcomes);

struct SqliteTaskStore::Impl : TaskStoreState {};

}  // namespace sb
