// PgTaskStore's SMS side (issue 19 on a shared task): provider ids recorded with the outcome,
// delivery receipts and STOP replies, with the same rules as the SQLite store.
#include <algorithm>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include "pg/pg_array.h"
#include "pg/pg_store.h"
#include "store/sms_receipts.h"

namespace sb {

namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

// The ids are inserted only for the recipients the fenced UPDATE wrote (its RETURNING rows),
// in the same statement: a node whose lease ran out records neither the outcome nor the ids,
// and a kill -9 cannot keep one without the other. Every outcome's ids go in, not only the
// folded one's: a partly accepted message (deferred with its accepted parts' ids) followed by
// its retry in the same batch keeps the ids of both.
bool PgTaskStore::with_sms_ids(const std::vector<Outcome>& outcomes, std::string& update,
                               PgParams& params) {
  PgArray rcpt, mid, part, parts, sub, ref;
  const int64_t now = unix_now();
  for (const Outcome& o : outcomes) {
    for (size_t i = 0; i < o.sms_ids.size(); ++i) {
      if (o.sms_ids[i].empty()) continue;  // a part not accepted (or recorded before)
      rcpt.add(o.id);
      mid.add(pg_text(o.sms_ids[i]));
      part.add(static_cast<int64_t>(i + 1));
      parts.add(static_cast<int64_t>(o.sms_ids.size()));
      sub.add(o.time != 0 ? o.time : now);
      ref.add(static_cast<int64_t>(o.sms_ref));
    }
  }
  if (rcpt.empty()) return false;
  const size_t first = params.size() + 1;
  auto arg = [&](size_t k, const char* type) {
    return "$" + std::to_string(first + k) + "::" + type + "[]";
  };
  update =
      ", u AS (" + update +
      " RETURNING r.id), s AS (INSERT INTO smtpblast_sms_ids(task, rcpt_id, message_id, "
      "part, parts, submitted, ref) SELECT $1, x.rcpt, x.mid, x.part, x.parts, x.sub, x.ref FROM "
      "unnest(" +
      arg(0, "bigint") + ", " + arg(1, "text") + ", " + arg(2, "integer") + ", " +
      arg(3, "integer") + ", " + arg(4, "bigint") + ", " + arg(5, "integer") +
      ") WITH ORDINALITY AS x(rcpt, mid, part, parts, sub, ref, n) "
      "WHERE x.rcpt IN (SELECT id FROM u) ORDER BY x.n) SELECT count(*) FROM u";
  for (const PgArray* a : {&rcpt, &mid, &part, &parts, &sub, &ref}) params.emplace_back(a->done());
  return true;
}

// A resumed run's view of its recipients' latest messages, folded as SQLite's (SmsPartial::add)
// in the order the parts were recorded (seq); one round trip for a claimed batch.
Result<std::vector<SmsPartial>> PgTaskStore::partial_sms(const std::vector<int64_t>& ids) {
  std::vector<SmsPartial> out(ids.size());
  if (ids.empty()) return out;
  std::unordered_map<int64_t, size_t> at;
  PgArray arr;
  for (size_t i = 0; i < ids.size(); ++i) {
    at.emplace(ids[i], i);
    arr.add(ids[i]);
  }
  auto r =
      run("SELECT rcpt_id, part, parts, message_id, ref FROM smtpblast_sms_ids WHERE task = $1 AND "
          "rcpt_id = ANY($2::bigint[]) ORDER BY rcpt_id, seq",
          {task_, arr.done()});
  if (!r) return r.error();
  for (int i = 0; i < r->rows(); ++i) {
    auto it = at.find(r->int64(i, 0));
    if (it == at.end()) continue;
    out[it->second].add(r->int64(i, 1), r->int64(i, 2), std::string(r->text(i, 3)), r->int64(i, 4));
  }
  return out;
}

// --- receipts ---------------------------------------------------------------------------

Status PgTaskStore::apply_receipt_txn(const SmsReceiptUpdate& r, SmsReceiptApplied& out) {
  const int64_t now = r.time != 0 ? r.time : unix_now();
  const int state = sms_part_state(r.state);
  PgArray forms;
  for (const std::string& f : sms_receipt_id_forms(r.message_id)) forms.add(pg_text(f));
  // The first form that names a part, and of its rows the newest (a part sent again).
  auto find = db_->exec(
      "SELECT seq, rcpt_id, state FROM smtpblast_sms_ids "
      "WHERE task = $1 AND message_id = ANY($2::text[]) "
      "ORDER BY array_position($2::text[], message_id), seq DESC LIMIT 1 FOR UPDATE",
      {task_, forms.done()});
  if (!find) return find.error();
  if (find->rows() == 0) return {};  // kUnknownId
  const std::string seq(find->text(0, 0));
  const std::string rcpt(find->text(0, 1));
  const int part_state = static_cast<int>(find->int64(0, 2));
  out.rcpt_id = find->int64(0, 1);
  // The recipient is locked before its parts are read: two receipts of one message's parts
  // settle it one after the other, the second seeing the first's part.
  auto cur =
      db_->exec("SELECT status FROM smtpblast_recipients WHERE task = $1 AND id = $2 FOR UPDATE",
                {task_, rcpt});
  if (!cur) return cur.error();
  if (cur->rows() > 0) out.status = static_cast<RcptStatus>(cur->int64(0, 0));
  if (!sms_part_changes(part_state, state)) {
    out.effect = SmsReceiptEffect::kDuplicate;
    return {};
  }
  auto upd = db_->exec("UPDATE smtpblast_sms_ids SET state = $2, done = $3 WHERE seq = $1",
                       {seq, std::to_string(state), std::to_string(now)});
  if (!upd) return upd.error();
  out.effect = SmsReceiptEffect::kRecorded;
  auto parts = db_->exec(
      "SELECT max(parts), bool_or(state = 2), bool_or(state IN (4, 5, 8)), bool_or(state = 3) "
      "FROM smtpblast_sms_ids WHERE task = $1 AND rcpt_id = $2 GROUP BY part",
      {task_, rcpt});
  if (!parts) return parts.error();
  SmsPartsSeen seen;
  for (int i = 0; i < parts->rows(); ++i) {
    seen.parts = std::max<int64_t>(seen.parts, parts->int64(i, 0));
    if (parts->text(i, 1) == "t") {
      ++seen.delivered;
    } else if (parts->text(i, 2) == "t") {
      seen.failed = true;
    } else if (parts->text(i, 3) == "t") {
      seen.expired = true;
    }
  }
  const RcptStatus next = sms_receipt_status(out.status, seen, state);
  if (next == out.status) return {};
  auto set = db_->exec(
      "UPDATE smtpblast_recipients SET status = $3, reply = $4, updated = $5 "
      "WHERE task = $1 AND id = $2",
      {task_, rcpt, std::to_string(static_cast<int>(next)), pg_text(sms_receipt_reply(r)),
       std::to_string(now)});
  if (!set) return set.error();
  out.status = next;
  out.effect = SmsReceiptEffect::kSettled;
  return {};
}

Result<SmsReceiptApplied> PgTaskStore::apply_receipt(const SmsReceiptUpdate& r) {
  if (r.message_id.empty()) return SmsReceiptApplied{};
  // One transaction per receipt. A connection that broke (the server restarted) is made
  // again once and the receipt applied again from the start: nothing of the failed attempt
  // was kept.
  for (int attempt = 0;; ++attempt) {
    SmsReceiptApplied out;
    Status s;
    if (attempt > 0) {
      if (auto again = run("SELECT 1", {}); !again) return again.error();  // reconnects
    }
    if (auto b = db_->exec("BEGIN"); !b) {
      s = b.error();
    } else {
      s = apply_receipt_txn(r, out);
    }
    if (s) {
      auto c = db_->exec("COMMIT");
      if (c) return out;
      s = c.error();
    }
    (void)db_->exec("ROLLBACK");
    if (attempt > 0 || !db_->broken()) return s.error();
  }
}

// --- the task's suppression list --------------------------------------------------------

// One statement: the key listed and its unsent or deferred recipients suppressed together. A
// deferred recipient held by a node for a retry loses its owner, so that node's late outcome
// is refused by the fence and cannot make it sent or deferred again.
Result<TaskSuppressionAdded> PgTaskStore::add_suppression(std::string_view key,
                                                          std::string_view reason, int64_t time) {
  const std::string when = std::to_string(time != 0 ? time : unix_now());
  auto r = run(
      "WITH ins AS (INSERT INTO smtpblast_suppressed(task, key, reason, time) "
      "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1), "
      "upd AS (UPDATE smtpblast_recipients SET status = 4, reply = $5, updated = $4, "
      "node = NULL, epoch = NULL, lease_deadline = NULL "
      "WHERE task = $1 AND lower(email) = lower($2) AND status IN (0, 2) AND NOT rejected "
      "RETURNING 1) SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
      {task_, pg_text(key), pg_text(reason), when, pg_text("suppressed: " + std::string(reason))});
  if (!r) return r.error();
  TaskSuppressionAdded out;
  out.added = r->int64(0, 0) > 0;
  out.recipients = static_cast<uint64_t>(r->int64(0, 1));
  return out;
}

Result<std::vector<std::string>> PgTaskStore::suppressions() {
  auto r = run("SELECT key FROM smtpblast_suppressed WHERE task = $1 ORDER BY time, seq", {task_});
  if (!r) return r.error();
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) out.emplace_back(r->text(i, 0));
  return out;
}

}  // namespace sb
