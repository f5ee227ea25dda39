// Private state of a TaskStore, shared by the store's .cc files (open/claim/record, import).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "store/sqlite_task_store.h"
#include "store/sqlite_util.h"

namespace sb {

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
  Stmt mark_in_flight;
  Stmt get_meta;
  Stmt set_meta;
  // Returned mail (returns_store.cc): tables made on first use, statements prepared once.
  bool returns_schema = false;
  Stmt ret_seen, ret_email, ret_insert, ret_current, ret_upsert, ret_status;

  // A kStore error for the last failed SQLite call, naming the file; corruption and
  // "not a database" get their own wording so the user knows the file itself is the problem.
  Error error(std::string_view what) const;
  // Runs SQL without results (DDL, pragmas that return nothing useful).
  Status exec(const char* sql, std::string_view what);
  // Steps a statement to completion (no rows expected) and resets it.
  Status run(Stmt& st, std::string_view what);
  Status begin_txn() { return run(begin, "starting a transaction"); }
  Status commit_txn() { return run(commit, "committing"); }
  void rollback_txn() {
    sqlite3_step(rollback.get());
    rollback.reset();
  }
};

struct SqliteTaskStore::Impl : TaskStoreState {};

}  // namespace sb
