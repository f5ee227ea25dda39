// The task store's part for returned mail: processed-message memory, bounce/complaint states.
#include <algorithm>
#include <string>

#include "store/sqlite_task_store.h"
#include "store/task_store.h"
#include "store/task_store_impl.h"

namespace sb {
namespace {

// Created on first use, so tasks made before issue 14 gain them when `returns` first runs and
// `send`/`status` never pay for them. returns_seen: one row per returned message processed
// (its key is a hash of the bytes), whatever came of it, so a second run changes nothing.
// recipient_returns: the last return per recipient and its soft-bounce count.
constexpr const char* kReturnsSchema = R"sql(
CREATE TABLE IF NOT EXISTS returns_seen(
  key TEXT PRIMARY KEY,
  id INTEGER NOT NULL DEFAULT 0,
  result TEXT NOT NULL,
  time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recipient_returns(
  id INTEGER PRIMARY KEY,
  soft INTEGER NOT NULL DEFAULT 0,
  status TEXT, diagnostic TEXT, class TEXT, category TEXT, kind TEXT,
  time INTEGER NOT NULL DEFAULT 0
);
)sql";

Status ensure_schema(TaskStoreState& s) {
  if (s.returns_schema) return {};
  if (sqlite3_exec(s.db.h, kReturnsSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return s.error("creating the returned-mail tables");
  }
  s.returns_schema = true;
  return {};
}

// Prepares `st` once (the statements live as long as the store); false on failure.
bool prepared(TaskStoreState& s, Stmt& st, std::string_view sql) {
  if (st) return true;
  return st.prepare(s.db.h, sql) == SQLITE_OK;
}

// "5.1.1" -> 550-ish basic code for the recipients.code column (export shows it).
int basic_code(const std::string& status) {
  if (status.size() >= 1 && (status[0] == '4' || status[0] == '5')) {
    return (status[0] - '0') * 100 + 50;
  }
  return 0;
}

}  // namespace

Result<bool> SqliteTaskStore::return_seen(std::string_view key) {
  Impl& s = *impl_;
  if (auto st = ensure_schema(s); !st) return st.error();
  if (!prepared(s, s.ret_seen, "SELECT 1 FROM returns_seen WHERE key = ?1")) {
    return s.error("reading processed returns");
  }
  Stmt& q = s.ret_seen;
  q.bind_text(1, key);
  int rc = sqlite3_step(q.get());
  q.reset();
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) return s.error("reading processed returns");
  return false;
}

Result<std::optional<std::string>> SqliteTaskStore::email_of(int64_t id) {
  Impl& s = *impl_;
  if (!prepared(s, s.ret_email, "SELECT email FROM recipients WHERE id = ?1")) {
    return s.error("reading a recipient");
  }
  Stmt& q = s.ret_email;
  q.bind(1, id);
  int rc = sqlite3_step(q.get());
  if (rc == SQLITE_ROW) {
    std::optional<std::string> out(std::string(q.col_text(0)));
    q.reset();
    return out;
  }
  q.reset();
  if (rc != SQLITE_DONE) return s.error("reading a recipient");
  return std::optional<std::string>();
}

Result<std::optional<ReturnInfo>> SqliteTaskStore::return_info(int64_t id) {
  Impl& s = *impl_;
  if (auto st = ensure_schema(s); !st) return st.error();
  Stmt q;
  if (q.prepare(s.db.h,
                "SELECT soft, status, diagnostic, class, category, kind, time "
                "FROM recipient_returns WHERE id = ?1") != SQLITE_OK) {
    return s.error("reading a recipient's returns");
  }
  q.bind(1, id);
  int rc = sqlite3_step(q.get());
  if (rc == SQLITE_DONE) return std::optional<ReturnInfo>();
  if (rc != SQLITE_ROW) return s.error("reading a recipient's returns");
  ReturnInfo i;
  i.soft = static_cast<uint32_t>(q.col_int(0));
  i.status = q.col_text(1);
  i.diagnostic = q.col_text(2);
  i.cls = q.col_text(3);
  i.category = q.col_text(4);
  i.kind = q.col_text(5);
  i.time = q.col_int(6);
  return std::optional<ReturnInfo>(std::move(i));
}

Result<std::vector<std::string>> SqliteTaskStore::returned_addresses() {
  Impl& s = *impl_;
  Stmt q;
  if (q.prepare(s.db.h, "SELECT email FROM recipients WHERE status IN (6, 7) ORDER BY id") !=
      SQLITE_OK) {
    return s.error("listing returned recipients");
  }
  std::vector<std::string> out;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out.emplace_back(q.col_text(0));
  if (rc != SQLITE_DONE) return s.error("listing returned recipients");
  return out;
}

namespace {

// One record inside the caller's transaction; an error leaves the rollback to the caller.
Status apply_return(TaskStoreState& s, const ReturnRecord& r, ReturnApplied& out) {
  static_assert(static_cast<int>(RcptStatus::kBounced) == 6 &&
                static_cast<int>(RcptStatus::kComplained) == 7);
  auto fail = [&](std::string_view what) { return s.error(what); };
  if (!prepared(s, s.ret_insert,
                "INSERT OR IGNORE INTO returns_seen(key, id, result, time) "
                "VALUES (?1, ?2, ?3, ?4)")) {
    return fail("recording a processed return");
  }
  Stmt& q = s.ret_insert;
  q.bind_text(1, r.key);
  q.bind(2, r.id);
  q.bind_text(3, r.result);
  q.bind(4, r.time);
  int qrc = sqlite3_step(q.get());
  Error qrc_err = qrc == SQLITE_DONE ? Error{} : s.error("recording a processed return");
  q.reset();
  if (qrc != SQLITE_DONE) return qrc_err;
  if (sqlite3_changes(s.db.h) == 0) {
    out.duplicate = true;
    return {};
  }
  if (r.id > 0) {  // kNone (a block, a "delivered" DSN) is kept as information only
    if (!prepared(s, s.ret_current,
                  "SELECT r.status, coalesce(x.soft, 0) FROM recipients r "
                  "LEFT JOIN recipient_returns x ON x.id = r.id WHERE r.id = ?1")) {
      return fail("reading a recipient");
    }
    Stmt& cur = s.ret_current;
    cur.bind(1, r.id);
    int rc = sqlite3_step(cur.get());
    if (rc != SQLITE_ROW) {
      cur.reset();
      if (rc == SQLITE_DONE) {
        return make_error(ErrDomain::kStore, s.path + " has no recipient " + std::to_string(r.id));
      }
      return fail("reading a recipient");
    }
    auto status = static_cast<RcptStatus>(cur.col_int(0));
    uint32_t soft = static_cast<uint32_t>(cur.col_int(1));
    cur.reset();
    const ReturnOutcome after = return_outcome(status, soft, r);
    const RcptStatus next = after.status;
    const std::string& category = after.category;
    soft = after.soft;
    if (!prepared(s, s.ret_upsert,
                  "INSERT INTO recipient_returns(id, soft, status, diagnostic, class, category, "
                  "kind, time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                  "ON CONFLICT(id) DO UPDATE SET soft = excluded.soft, status = excluded.status, "
                  "diagnostic = excluded.diagnostic, class = excluded.class, "
                  "category = excluded.category, kind = excluded.kind, time = excluded.time")) {
      return fail("recording a recipient's return");
    }
    Stmt& up = s.ret_upsert;
    up.bind(1, r.id);
    up.bind(2, soft);
    up.bind_text(3, r.status);
    up.bind_text(4, r.diagnostic);
    up.bind_text(5, r.cls);
    up.bind_text(6, category);
    up.bind_text(7, r.kind);
    up.bind(8, r.time);
    int urc = sqlite3_step(up.get());
    Error urc_err = urc == SQLITE_DONE ? Error{} : s.error("recording a recipient's return");
    up.reset();
    if (urc != SQLITE_DONE) return urc_err;
    if (next != status) {
      // The reply column keeps what export shows: code, class/category, diagnostic.
      std::string reply = (r.status.empty() ? std::string() : r.status + " ") +
                          (next == RcptStatus::kComplained ? std::string("complaint") : r.cls) +
                          "/" + category + ": " + r.diagnostic;
      if (reply.size() > 512) reply.resize(512);
      if (!prepared(s, s.ret_status,
                    "UPDATE recipients SET status = ?2, code = ?3, reply = ?4, updated = ?5 "
                    "WHERE id = ?1")) {
        return fail("recording a recipient's return");
      }
      Stmt& rs = s.ret_status;
      rs.bind(1, r.id);
      rs.bind(2, static_cast<int>(next));
      rs.bind(3, next == RcptStatus::kComplained ? 0 : basic_code(r.status));
      rs.bind_text(4, reply);
      rs.bind(5, r.time);
      int src = sqlite3_step(rs.get());
      Error src_err = src == SQLITE_DONE ? Error{} : s.error("recording a recipient's return");
      rs.reset();
      if (src != SQLITE_DONE) return src_err;
    }
    out.status = next;
    out.soft = soft;
  }
  return {};
}

}  // namespace

Result<std::vector<ReturnApplied>> SqliteTaskStore::record_returns(
    const std::vector<ReturnRecord>& batch) {
  Impl& s = *impl_;
  if (auto st = ensure_schema(s); !st) return st.error();
  s.counts_cache.valid = false;  // statuses change here
  std::vector<ReturnApplied> out(batch.size());
  if (auto st = s.begin_txn(); !st) return st.error();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (auto st = apply_return(s, batch[i], out[i]); !st) {
      s.rollback_txn();
      return st.error();
    }
  }
  if (auto c = s.commit_txn(); !c) {
    s.rollback_txn();
    return c.error();
  }
  return out;
}

Result<ReturnApplied> SqliteTaskStore::record_return(const ReturnRecord& r) {
  auto v = record_returns({r});
  if (!v.ok()) return v.error();
  return (*v)[0];
}

}  // namespace sb
