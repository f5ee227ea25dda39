// The sms_ids table: provider message ids of SMS parts per recipient.
#include "store/sms_ids.h"

#include <ctime>
#include <string>

#include "store/sqlite_task_store.h"
#include "store/sqlite_util.h"

namespace sb {
namespace {

constexpr const char* kSmsIdsSchema = R"sql(
CREATE TABLE IF NOT EXISTS sms_ids(
  message_id TEXT NOT NULL,
  rcpt_id INTEGER NOT NULL,
  part INTEGER NOT NULL,
  parts INTEGER NOT NULL,
  submitted INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  ref INTEGER NOT NULL DEFAULT -1
);
CREATE INDEX IF NOT EXISTS sms_ids_message ON sms_ids(message_id);
CREATE INDEX IF NOT EXISTS sms_ids_rcpt ON sms_ids(rcpt_id);
)sql";

constexpr std::string_view kInsert =
    "INSERT INTO sms_ids(message_id, rcpt_id, part, parts, submitted, ref) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";

Error sqlite_error(sqlite3* db, std::string_view what) {
  return make_error(ErrDomain::kStore,
                    std::string(what) + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

}  // namespace

Status ensure_sms_ids_schema(sqlite3* db) {
  if (sqlite3_exec(db, kSmsIdsSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error(db, "creating the sms_ids table");
  }
  // A table made before the reference was kept has no `ref` column: its rows stay "not
  // given" (-1), so their messages are sent whole if a retry needs them.
  Stmt probe;
  if (probe.prepare(db, "SELECT ref FROM sms_ids LIMIT 0") != SQLITE_OK &&
      sqlite3_exec(db, "ALTER TABLE sms_ids ADD COLUMN ref INTEGER NOT NULL DEFAULT -1", nullptr,
                   nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error(db, "adding the ref column to sms_ids");
  }
  return {};
}

Status record_sms_ids(sqlite3* db, int64_t rcpt_id, const std::vector<std::string>& ids,
                      int64_t submitted_at, int concat_ref) {
  bool any = false;
  for (const auto& id : ids) any = any || !id.empty();
  if (!any) return {};
  Stmt st;
  if (st.prepare(db, kInsert) != SQLITE_OK) {
    // Only a missing table is expected here (a task that never recorded an SMS id).
    if (auto s = ensure_sms_ids_schema(db); !s) return s;
    if (st.prepare(db, kInsert) != SQLITE_OK) return sqlite_error(db, "recording SMS ids");
  }
  int64_t now = submitted_at ? submitted_at : static_cast<int64_t>(std::time(nullptr));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) continue;
    st.bind_text(1, ids[i]);
    st.bind(2, rcpt_id);
    st.bind(3, static_cast<int64_t>(i + 1));
    st.bind(4, static_cast<int64_t>(ids.size()));
    st.bind(5, now);
    st.bind(6, concat_ref);
    int rc = sqlite3_step(st.get());
    st.reset();
    if (rc != SQLITE_DONE) return sqlite_error(db, "recording SMS ids");
  }
  return {};
}

Result<SmsPartial> partial_sms(sqlite3* db, int64_t rcpt_id) {
  SmsPartial out;
  Stmt q;
  if (q.prepare(db,
                "SELECT part, parts, message_id, ref FROM sms_ids WHERE rcpt_id = ?1 "
                "ORDER BY rowid") != SQLITE_OK) {
    // No table (nothing recorded), or one from before the reference was kept (no partial
    // message can be completed without it): the retry sends the whole message.
    const std::string_view e = sqlite3_errmsg(db);
    if (e.find("no such table") != std::string_view::npos ||
        e.find("no such column") != std::string_view::npos) {
      return out;
    }
    return sqlite_error(db, "reading SMS ids");
  }
  q.bind(1, rcpt_id);
  // The rows of the recipient's latest message, as a phone joins parts: same reference, same
  // number of parts, each part once. A row that differs in either, or names a part the
  // message already has, belongs to a later message (sent whole again: after a reset, or
  // with a changed text) and starts over; so a message accepted whole and sent again after
  // `reset` never passes for the later one's accepted parts.
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    out.add(q.col_int(0), q.col_int(1), std::string(q.col_text(2)), q.col_int(3));
  }
  if (rc != SQLITE_DONE) return sqlite_error(db, "reading SMS ids");
  return out;
}

Result<SmsPartial> SqliteTaskStore::partial_sms(int64_t rcpt_id) {
  return sb::partial_sms(handle(), rcpt_id);
}

sqlite3* sqlite_handle(TaskStore& store) {
  auto* s = dynamic_cast<SqliteTaskStore*>(&store);
  return s ? s->handle() : nullptr;
}

}  // namespace sb
