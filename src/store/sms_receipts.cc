// SMS delivery receipts: part states in sms_ids and the recipient's status derived from them.
#include "store/sms_receipts.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "store/sms_ids.h"
#include "store/sqlite_task_store.h"
#include "store/sqlite_util.h"

namespace sb {
namespace {

Error receipt_sqlite_error(sqlite3* db, std::string_view what) {
  return make_error(ErrDomain::kStore, std::string(what) + ": " + sqlite3_errmsg(db));
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}
bool all_hex(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  for (char c : s) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> sms_receipt_id_forms(const std::string& id) {
  std::vector<std::string> out{id};
  auto add = [&](std::string s) {
    for (const auto& o : out) {
      if (o == s) return;
    }
    out.push_back(std::move(s));
  };
  std::string lower = id, upper = id;
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  add(lower);
  add(upper);
  char buf[32];
  if (all_digits(id)) {  // written in decimal, submitted in hex
    unsigned long long v = std::strtoull(id.c_str(), nullptr, 10);
    std::snprintf(buf, sizeof buf, "%llx", v);
    add(buf);
    std::snprintf(buf, sizeof buf, "%llX", v);
    add(buf);
  }
  if (all_hex(id)) {  // written in hex, submitted in decimal
    unsigned long long v = std::strtoull(id.c_str(), nullptr, 16);
    std::snprintf(buf, sizeof buf, "%llu", v);
    add(buf);
  }
  std::string trimmed = id;  // zero-padded in one of them
  while (trimmed.size() > 1 && trimmed[0] == '0') trimmed.erase(0, 1);
  add(trimmed);
  return out;
}

namespace {

// A savepoint that rolls back unless released.
class Savepoint {
 public:
  explicit Savepoint(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "SAVEPOINT sms_receipt", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~Savepoint() {
    if (ok_ && !released_) {
      sqlite3_exec(db_, "ROLLBACK TO sms_receipt; RELEASE sms_receipt", nullptr, nullptr, nullptr);
    }
  }
  bool ok() const { return ok_; }
  bool release() {
    released_ = true;
    return sqlite3_exec(db_, "RELEASE sms_receipt", nullptr, nullptr, nullptr) == SQLITE_OK;
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool released_ = false;
};

struct PartRow {
  int64_t rowid, rcpt, part, parts, state;
};

}  // namespace

const char* sms_receipt_effect_name(SmsReceiptEffect e) {
  switch (e) {
    case SmsReceiptEffect::kUnknownId: return "unknown id";
    case SmsReceiptEffect::kDuplicate: return "duplicate";
    case SmsReceiptEffect::kRecorded: return "recorded";
    case SmsReceiptEffect::kSettled: return "settled";
  }
  return "?";
}

int sms_part_state(std::string_view n) {
  if (n == "delivered") return kSmsDelivered;
  if (n == "expired") return kSmsExpired;
  if (n == "deleted") return kSmsDeleted;
  if (n == "undeliverable") return kSmsUndeliverable;
  if (n == "rejected") return kSmsRejected;
  if (n == "accepted") return kSmsAccepted;
  if (n == "enroute") return kSmsEnroute;
  return kSmsUnknown;
}

Result<SmsReceiptApplied> apply_sms_receipt(sqlite3* db, const SmsReceiptUpdate& r) {
  SmsReceiptApplied out;
  if (r.message_id.empty()) return out;
  if (auto st = ensure_sms_ids_schema(db); !st) return st.error();
  const int64_t now = r.time ? r.time : static_cast<int64_t>(std::time(nullptr));
  const int state = sms_part_state(r.state);
  Savepoint sp(db);
  if (!sp.ok()) return receipt_sqlite_error(db, "applying an SMS receipt");

  Stmt find;
  if (find.prepare(db,
                   "SELECT rowid, rcpt_id, part, parts, state FROM sms_ids "
                   "WHERE message_id = ?1 ORDER BY rowid DESC LIMIT 1") != SQLITE_OK) {
    return receipt_sqlite_error(db, "reading SMS ids");
  }
  PartRow row{};
  bool found = false;
  for (const std::string& id : sms_receipt_id_forms(r.message_id)) {
    find.bind_text(1, id);
    int rc = sqlite3_step(find.get());
    if (rc == SQLITE_ROW) {
      row = {find.col_int(0), find.col_int(1), find.col_int(2), find.col_int(3), find.col_int(4)};
      found = true;
    }
    find.reset();
    if (found) break;
    if (rc != SQLITE_DONE) return receipt_sqlite_error(db, "reading SMS ids");
  }
  if (!found) {
    sp.release();
    return out;
  }
  out.rcpt_id = row.rcpt;

  Stmt cur;
  if (cur.prepare(db, "SELECT status FROM recipients WHERE id = ?1") != SQLITE_OK) {
    return receipt_sqlite_error(db, "reading a recipient");
  }
  cur.bind(1, row.rcpt);
  if (sqlite3_step(cur.get()) == SQLITE_ROW) out.status = static_cast<RcptStatus>(cur.col_int(0));
  cur.reset();

  if (!sms_part_changes(static_cast<int>(row.state), state)) {
    out.effect = SmsReceiptEffect::kDuplicate;
    if (!sp.release()) return receipt_sqlite_error(db, "applying an SMS receipt");
    return out;
  }
  Stmt upd;
  if (upd.prepare(db, "UPDATE sms_ids SET state = ?1, done = ?2 WHERE rowid = ?3") != SQLITE_OK) {
    return receipt_sqlite_error(db, "recording an SMS receipt");
  }
  upd.bind(1, state);
  upd.bind(2, now);
  upd.bind(3, row.rowid);
  if (sqlite3_step(upd.get()) != SQLITE_DONE)
    return receipt_sqlite_error(db, "recording an SMS receipt");
  out.effect = SmsReceiptEffect::kRecorded;

  // The recipient's parts: per part number, delivered when any row of it (a part may have
  // been sent more than once) was delivered; failed or expired when a row was and none was
  // delivered.
  Stmt parts;
  if (parts.prepare(db,
                    "SELECT part, max(parts), max(state = 2), max(state IN (4, 5, 8)), "
                    "max(state = 3) FROM sms_ids WHERE rcpt_id = ?1 GROUP BY part") != SQLITE_OK) {
    return receipt_sqlite_error(db, "reading SMS ids");
  }
  parts.bind(1, row.rcpt);
  SmsPartsSeen seen;
  int rc;
  while ((rc = sqlite3_step(parts.get())) == SQLITE_ROW) {
    seen.parts = std::max<int64_t>(seen.parts, parts.col_int(1));
    if (parts.col_int(2)) {
      ++seen.delivered;
    } else if (parts.col_int(3)) {
      seen.failed = true;
    } else if (parts.col_int(4)) {
      seen.expired = true;
    }
  }
  parts.reset();
  if (rc != SQLITE_DONE) return receipt_sqlite_error(db, "reading SMS ids");
  const RcptStatus next = sms_receipt_status(out.status, seen, state);
  if (next != out.status) {
    Stmt set;
    if (set.prepare(db,
                    "UPDATE recipients SET status = ?1, reply = ?2, updated = ?3 "
                    "WHERE id = ?4") != SQLITE_OK) {
      return receipt_sqlite_error(db, "recording an SMS receipt");
    }
    set.bind(1, static_cast<int64_t>(next));
    const std::string reply = sms_receipt_reply(r);  // bound without a copy: must outlive step
    set.bind_text(2, reply);
    set.bind(3, now);
    set.bind(4, row.rcpt);
    if (sqlite3_step(set.get()) != SQLITE_DONE) {
      return receipt_sqlite_error(db, "recording an SMS receipt");
    }
    out.status = next;
    out.effect = SmsReceiptEffect::kSettled;
  }
  if (!sp.release()) return receipt_sqlite_error(db, "applying an SMS receipt");
  return out;
}

Result<SmsReceiptApplied> SqliteTaskStore::apply_receipt(const SmsReceiptUpdate& r) {
  return apply_sms_receipt(handle(), r);
}

}  // namespace sb
