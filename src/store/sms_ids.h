// Provider message ids of sent SMS parts, kept in the task file so receipts find their recipient.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "store/task_store.h"

namespace sb {

class TaskStore;

// Table sms_ids in the task file (issue 19), created on first use (CREATE ... IF NOT EXISTS),
// so tasks made earlier gain it when an SMS is first recorded:
//   message_id TEXT    the id the SMSC or HTTP provider gave the part (submit_sm_resp)
//   rcpt_id   INTEGER  the recipient (recipients.id)
//   part      INTEGER  1-based part number of a concatenated message (1 for a single part)
//   parts     INTEGER  how many parts the message had
//   submitted INTEGER  unix seconds when the id was recorded
//   state     INTEGER  0 until a receipt comes; then the receipt's state (sms_receipts.h)
//   done      INTEGER  unix seconds of that receipt (0 before)
//   ref       INTEGER  the concatenation reference the parts carried (-1: not given)
// Rows are only added: a recipient sent again gains new rows, and a receipt for an older id
// still finds it. Indexed by message_id (receipts) and rcpt_id.
Status ensure_sms_ids_schema(sqlite3* db);

// Records the ids of one recipient's message, one per part in part order (ids[0] is part 1);
// an empty id is a part that has no id to record (not accepted, or recorded before when only
// missing parts were sent again) and is skipped. Runs inside the caller's transaction (the
// journal's commit) and opens none; creates the table when it is missing. `submitted_at` 0
// means now. Errors are kStore with SQLite's message.
// `concat_ref`: SmsMessage::concat_ref of a multi-part message (-1: not kept), so a run
// resumed after a kill can send a partly accepted message's missing parts (partial_sms).
Status record_sms_ids(sqlite3* db, int64_t rcpt_id, const std::vector<std::string>& ids,
                      int64_t submitted_at = 0, int concat_ref = -1);

// SqliteTaskStore::partial_sms (SmsPartial is in store/task_store.h).
Result<SmsPartial> partial_sms(sqlite3* db, int64_t rcpt_id);

// The SQLite connection behind a task store (an SqliteTaskStore), or null for another backend
// (PostgreSQL keeps its ids in smtpblast_sms_ids: pg/pg_sms.cc; TaskStore::apply_receipt works on
// both). The store still owns it; use it on the store's thread.
sqlite3* sqlite_handle(TaskStore& store);

}  // namespace sb
