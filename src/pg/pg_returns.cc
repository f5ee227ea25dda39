// PgTaskStore's returned mail (issue 14 on a shared task): processed-message memory and the
// bounce/complaint states, with the same rules as the SQLite store (store/returns_store.cc).
#include <string>
#include <vector>

#include "base/utf8.h"
#include "pg/pg_store.h"

namespace sb {

namespace {

// Created on first use, as on SQLite, so databases made before gain them when `returns` first
// runs (the schema version stays: older readers ignore tables they do not know). Serialised
// by the store's advisory lock: CREATE ... IF NOT EXISTS is not safe against itself.
constexpr const char* kReturnsSchema = R"sql(
SELECT pg_advisory_xact_lock(7152013);
CREATE TABLE IF NOT EXISTS smtpblast_returns_seen (
  task text NOT NULL REFERENCES smtpblast_tasks ON DELETE CASCADE,
  key text NOT NULL,
  id bigint NOT NULL DEFAULT 0,
  result text NOT NULL,
  time bigint NOT NULL,
  PRIMARY KEY (task, key));
CREATE TABLE IF NOT EXISTS smtpblast_recipient_returns (
  task text NOT NULL,
  id bigint NOT NULL,
  soft integer NOT NULL DEFAULT 0,
  status text, diagnostic text, class text, category text, kind text,
  time bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (task, id),
  FOREIGN KEY (task, id) REFERENCES smtpblast_recipients ON DELETE CASCADE);
)sql";

// "5.1.1" -> 550-ish basic code for the recipients' code column (export shows it).
int basic_code(const std::string& status) {
  if (!status.empty() && (status[0] == '4' || status[0] == '5'))
    return (status[0] - '0') * 100 + 50;
  return 0;
}

}  // namespace

std::string pg_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = s[i] == '\0' ? 0 : utf8_len(s, i);
    if (n == 0) {
      out += '?';
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

Status PgTaskStore::ensure_returns_schema() {
  if (returns_schema_) return {};
  if (auto s = db_->exec_script(kReturnsSchema); !s) return s;
  returns_schema_ = true;
  return {};
}

Result<bool> PgTaskStore::return_seen(std::string_view key) {
  if (auto s = ensure_returns_schema(); !s) return s.error();
  auto r = run("SELECT 1 FROM smtpblast_returns_seen WHERE task = $1 AND key = $2",
               {task_, pg_text(key)});
  if (!r) return r.error();
  return r->rows() > 0;
}

Result<std::optional<ReturnInfo>> PgTaskStore::return_info(int64_t id) {
  if (auto s = ensure_returns_schema(); !s) return s.error();
  auto r =
      run("SELECT soft, coalesce(status, ''), coalesce(diagnostic, ''), coalesce(class, ''), "
          "coalesce(category, ''), coalesce(kind, ''), time FROM smtpblast_recipient_returns "
          "WHERE task = $1 AND id = $2",
          {task_, std::to_string(id)});
  if (!r) return r.error();
  if (r->rows() == 0) return std::optional<ReturnInfo>();
  ReturnInfo i;
  i.soft = static_cast<uint32_t>(r->int64(0, 0));
  i.status = std::string(r->text(0, 1));
  i.diagnostic = std::string(r->text(0, 2));
  i.cls = std::string(r->text(0, 3));
  i.category = std::string(r->text(0, 4));
  i.kind = std::string(r->text(0, 5));
  i.time = r->int64(0, 6);
  return std::optional<ReturnInfo>(std::move(i));
}

Result<std::vector<std::string>> PgTaskStore::returned_addresses() {
  auto r =
      run("SELECT email FROM smtpblast_recipients WHERE task = $1 AND status IN (6, 7) ORDER BY id",
          {task_});
  if (!r) return r.error();
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.emplace_back(r->text(i, 0));
  return out;
}

// One record inside the caller's transaction (the rules of store/returns_store.cc). A bounced
// or complained recipient also loses its owner: a node that still holds it in flight (sent
// again by a run under way) is refused by the fence, and cannot make it `sent` again.
Status PgTaskStore::apply_return(const ReturnRecord& r, ReturnApplied& out) {
  const std::string id = std::to_string(r.id);
  auto seen = db_->exec(
      "INSERT INTO smtpblast_returns_seen(task, key, id, result, time) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
      {task_, pg_text(r.key), id, pg_text(r.result), std::to_string(r.time)});
  if (!seen) return seen.error();
  if (seen->affected() == 0) {
    out.duplicate = true;
    return {};
  }
  if (r.id <= 0) return {};  // kNone (a block, a "delivered" DSN) is kept as information only
  auto cur = db_->exec(
      "SELECT r.status, coalesce(x.soft, 0) FROM smtpblast_recipients r "
      "LEFT JOIN smtpblast_recipient_returns x ON x.task = r.task AND x.id = r.id "
      "WHERE r.task = $1 AND r.id = $2 FOR UPDATE OF r",
      {task_, id});
  if (!cur) return cur.error();
  if (cur->rows() == 0)
    return make_error(ErrDomain::kStore,
                      "task '" + task_ + "' in " + where() + " has no recipient " + id);
  auto status = static_cast<RcptStatus>(cur->int64(0, 0));
  auto soft = static_cast<uint32_t>(cur->int64(0, 1));
  const ReturnOutcome after = return_outcome(status, soft, r);
  const RcptStatus next = after.status;
  const std::string& category = after.category;
  soft = after.soft;
  auto up = db_->exec(
      "INSERT INTO smtpblast_recipient_returns(task, id, soft, status, diagnostic, class, "
      "category, kind, time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
      "ON CONFLICT (task, id) DO UPDATE SET soft = excluded.soft, status = excluded.status, "
      "diagnostic = excluded.diagnostic, class = excluded.class, "
      "category = excluded.category, kind = excluded.kind, time = excluded.time",
      {task_, id, std::to_string(soft), pg_text(r.status), pg_text(r.diagnostic), pg_text(r.cls),
       pg_text(category), pg_text(r.kind), std::to_string(r.time)});
  if (!up) return up.error();
  if (next != status) {
    // The reply column keeps what export shows: code, class/category, diagnostic.
    std::string reply = (r.status.empty() ? std::string() : r.status + " ") +
                        (next == RcptStatus::kComplained ? std::string("complaint") : r.cls) + "/" +
                        category + ": " + r.diagnostic;
    if (reply.size() > 512) reply.resize(512);
    auto st = db_->exec(
        "UPDATE smtpblast_recipients SET status = $3, code = $4, reply = $5, updated = $6, "
        "node = NULL, epoch = NULL, lease_deadline = NULL WHERE task = $1 AND id = $2",
        {task_, id, std::to_string(static_cast<int>(next)),
         std::to_string(next == RcptStatus::kComplained ? 0 : basic_code(r.status)), pg_text(reply),
         std::to_string(r.time)});
    if (!st) return st.error();
  }
  out.status = next;
  out.soft = soft;
  return {};
}

Result<std::vector<ReturnApplied>> PgTaskStore::record_returns(
    const std::vector<ReturnRecord>& batch) {
  if (auto s = ensure_returns_schema(); !s) return s.error();
  std::vector<ReturnApplied> out(batch.size());
  // One transaction on the connection as it is: a broken connection fails the batch (nothing
  // of it is kept), and `returns` stops with the error; run again, nothing is counted twice.
  if (auto b = db_->exec("BEGIN"); !b) return b.error();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (auto s = apply_return(batch[i], out[i]); !s) {
      (void)db_->exec("ROLLBACK");
      return s.error();
    }
  }
  if (auto c = db_->exec("COMMIT"); !c) {
    (void)db_->exec("ROLLBACK");
    return c.error();
  }
  return out;
}

Result<ReturnApplied> PgTaskStore::record_return(const ReturnRecord& r) {
  auto v = record_returns({r});
  if (!v) return v.error();
  return (*v)[0];
}

}  // namespace sb
