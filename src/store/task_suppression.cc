// The task's own suppression list (task_suppressed): keys added by STOP replies.
#include <sqlite3.h>

#include <ctime>
#include <string>

#include "store/sqlite_task_store.h"
#include "store/sqlite_util.h"
#include "store/suppression.h"
#include "store/task_store.h"

namespace sb {
namespace {

constexpr const char* kTaskSuppressionSchema = R"sql(
CREATE TABLE IF NOT EXISTS task_suppressed(
  key TEXT PRIMARY KEY,
  reason TEXT NOT NULL,
  time INTEGER NOT NULL
);
)sql";

Error sqlite_error(sqlite3* db, std::string_view what) {
  return make_error(ErrDomain::kStore, std::string(what) + ": " + sqlite3_errmsg(db));
}

bool table_exists(sqlite3* db) {
  Stmt q;
  if (q.prepare(db, "SELECT 1 FROM sqlite_master WHERE name = 'task_suppressed'") != SQLITE_OK) {
    return false;
  }
  return sqlite3_step(q.get()) == SQLITE_ROW;
}

}  // namespace

Result<TaskSuppressionAdded> add_task_suppression(sqlite3* db, std::string_view key,
                                                  std::string_view reason, int64_t time) {
  static_assert(static_cast<int>(RcptStatus::kUnsent) == 0 &&
                static_cast<int>(RcptStatus::kDeferred) == 2 &&
                static_cast<int>(RcptStatus::kSuppressed) == 4);
  TaskSuppressionAdded out;
  if (sqlite3_exec(db, kTaskSuppressionSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error(db, "creating the task's suppression list");
  }
  if (sqlite3_exec(db, "SAVEPOINT task_suppress", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error(db, "adding to the task's suppression list");
  }
  auto fail = [&](std::string_view what) {
    Error e = sqlite_error(db, what);
    sqlite3_exec(db, "ROLLBACK TO task_suppress; RELEASE task_suppress", nullptr, nullptr, nullptr);
    return e;
  };
  const int64_t now = time ? time : static_cast<int64_t>(std::time(nullptr));
  Stmt ins;
  if (ins.prepare(db,
                  "INSERT OR IGNORE INTO task_suppressed(key, reason, time) "
                  "VALUES(?1, ?2, ?3)") != SQLITE_OK) {
    return fail("adding to the task's suppression list");
  }
  ins.bind_text(1, key);
  ins.bind_text(2, reason);
  ins.bind(3, now);
  if (sqlite3_step(ins.get()) != SQLITE_DONE) return fail("adding to the task's suppression list");
  out.added = sqlite3_changes(db) > 0;
  // lower(email) uses the import's address index; a phone number has no letters to fold.
  Stmt upd;
  if (upd.prepare(db,
                  "UPDATE recipients SET status = 4, reply = ?2, updated = ?3 "
                  "WHERE lower(email) = lower(?1) AND status IN (0, 2) AND rejected = 0") !=
      SQLITE_OK) {
    return fail("suppressing recipients");
  }
  std::string reply = "suppressed: " + std::string(reason);
  upd.bind_text(1, key);
  upd.bind_text(2, reply);
  upd.bind(3, now);
  if (sqlite3_step(upd.get()) != SQLITE_DONE) return fail("suppressing recipients");
  out.recipients = static_cast<uint64_t>(sqlite3_changes(db));
  if (sqlite3_exec(db, "RELEASE task_suppress", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail("adding to the task's suppression list");
  }
  return out;
}

Result<std::vector<std::string>> task_suppressions(sqlite3* db) {
  std::vector<std::string> out;
  if (!table_exists(db)) return out;
  Stmt q;
  if (q.prepare(db, "SELECT key FROM task_suppressed ORDER BY time, rowid") != SQLITE_OK) {
    return sqlite_error(db, "reading the task's suppression list");
  }
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out.emplace_back(q.col_text(0));
  if (rc != SQLITE_DONE) return sqlite_error(db, "reading the task's suppression list");
  return out;
}

Result<TaskSuppressionAdded> SqliteTaskStore::add_suppression(std::string_view key,
                                                              std::string_view reason,
                                                              int64_t time) {
  return add_task_suppression(handle(), key, reason, time);
}

Result<std::vector<std::string>> SqliteTaskStore::suppressions() {
  return task_suppressions(handle());
}

}  // namespace sb
