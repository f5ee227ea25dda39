// The task store: a SQLite file holding one mailing's recipients, their statuses and counters.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "store/csv_reader.h"

namespace sb {

// Numeric values are stored in the database; never renumber.
enum class RcptStatus : uint8_t {
  kUnsent = 0,
  kSent = 1,
  kDeferred = 2,
  kFailed = 3,
  kSuppressed = 4,
  kInFlight = 5,    // claimed by a run that has not recorded an outcome yet (issue 4)
  kBounced = 6,     // a hard bounce came back (returns, issue 14): never mailed again
  kComplained = 7,  // the recipient complained (ARF): never mailed again
  // SMS delivery receipts (issue 19; store/sms_receipts.h): what became of a sent SMS. 8 and
  // 9 stay unused: tests and tools use them as "a value no version writes".
  kDelivered = 10,      // every part delivered to the phone
  kUndeliverable = 11,  // a part undeliverable, rejected or deleted by the SMSC
  kExpired = 12,        // a part expired in the SMSC before it could be delivered
};
inline constexpr int kRcptStatusMax = 12;
// A value RcptStatus names (0..7 and 10..12).
inline constexpr bool known_rcpt_status(int64_t v) {
  return (v >= 0 && v <= 7) || (v >= 10 && v <= kRcptStatusMax);
}
// TaskStore::record takes outcomes of sending only (up to kComplained).
inline constexpr int kRcptStatusMaxRecorded = 7;
const char* status_name(RcptStatus s);

struct RecipientRow {
  int64_t id = 0;
  std::string email;
  std::vector<std::string> values;          // aligned with TaskStore::field_names()
  uint32_t attempts = 0;                    // attempts made in earlier runs
  RcptStatus status = RcptStatus::kUnsent;  // status before this claim (unsent, deferred,
                                            // or in flight: left by a killed run)
};

struct Outcome {
  int64_t id = 0;
  RcptStatus status = RcptStatus::kUnsent;
  int code = 0;           // SMTP reply code, 0 when there was none (local failure)
  std::string reply;      // sanitised reply text or local reason, capped at 512 octets
  uint32_t attempts = 0;  // total attempts including this one
  int64_t time = 0;       // unix seconds
  // A release: only the status changes (back to what it was before the claim); attempts,
  // code, reply and time are left as they are. For recipients claimed but never started.
  bool status_only = false;
  // An SMS accepted by its provider: the provider's message id of each part (delivery
  // receipts name them), recorded in the same transaction as the outcome. Empty for e-mail.
  std::vector<std::string> sms_ids;
  // ... and the concatenation reference its parts carried (0..255; -1: one part, or none), so
  // a run resumed after a kill sends a partly accepted message's missing parts with it.
  int sms_ref = -1;
};

// How a recipient list goes into a task.
enum class ImportMode {
  kNew,      // the task must not hold a list yet
  kReplace,  // the task's list (if any) is replaced; refused once anything was attempted
  kAppend,   // new rows are added; addresses already in the task are skipped and counted
};

// An SMS task's recipient key: a phone number, normalised (E.164) by `normalize` (which the
// caller supplies, so the store knows nothing of phone numbers). A value it refuses is imported
// as failed with its reason; duplicates are found after normalisation.
using KeyNormalizer = Result<std::string> (*)(std::string_view value, const void* ctx);

struct ImportOptions {
  CsvOptions csv;  // --csv-encoding, --csv-delimiter
  ImportMode mode = ImportMode::kNew;
  // Addresses deduplicated in a set in memory (~60 octets each); past this many, through the
  // task's unique address index instead, so a list of any length imports in bounded memory.
  size_t dedup_in_memory = size_t{1} << 20;
  // SMS (issue 19): the column holding the key ("phone") and its normaliser; the task is
  // marked as an SMS task (meta sb.channel = "sms"). Empty column: an e-mail list.
  std::string key_column;
  KeyNormalizer normalize = nullptr;
  const void* normalize_ctx = nullptr;
};

struct ImportReport {
  uint64_t imported = 0;
  uint64_t already_present = 0;       // kAppend: the address is in the task already: skipped
  uint64_t removed = 0;               // kReplace: recipients of the list that was replaced
  uint64_t duplicates = 0;            // same address (case-insensitive domain) seen again: skipped
  uint64_t invalid = 0;               // imported as failed with the reason (bad address, bad row)
  std::vector<std::string> problems;  // first few problems, "line N: reason"
};

struct StatusCounts {
  uint64_t total = 0;
  std::map<RcptStatus, uint64_t> by_status;  // known statuses only
  // Rows whose status is none of RcptStatus (a task edited by hand, or written by a newer
  // smtpblast): counted in total and here, never silently dropped; a few of the raw values.
  uint64_t unknown = 0;
  std::vector<std::string> unknown_values;
  std::map<int, uint64_t> by_code;  // last reply code -> count (0 = no reply)
  uint64_t get(RcptStatus s) const {
    auto it = by_status.find(s);
    return it == by_status.end() ? 0 : it->second;
  }
};

// What `returns` records for one returned message (returns_store.cc).
enum class ReturnEffect : uint8_t { kNone, kHard, kSoft, kComplaint };
struct ReturnRecord {
  std::string key;  // identifies the returned message (a hash of its bytes): seen once
  int64_t id = 0;   // the recipient it is about; 0 = none (unmatched, auto-reply)
  ReturnEffect effect = ReturnEffect::kNone;
  std::string status;  // the DSN's enhanced status code, e.g. "5.1.1"
  std::string diagnostic;
  std::string cls;          // classification: hard, soft, block, complaint, ...
  std::string category;     // invalid-recipient, mailbox-full, ...
  std::string kind;         // dsn, arf, autoreply, unknown
  std::string result;       // what was done, for the seen-table ("bounced", "unmatched", ...)
  uint32_t soft_limit = 3;  // this many soft bounces count as a hard one (0: never)
  int64_t time = 0;
};
struct ReturnApplied {
  bool duplicate = false;                   // the key was already recorded: nothing changed
  RcptStatus status = RcptStatus::kUnsent;  // the recipient's status afterwards
  uint32_t soft = 0;                        // soft bounces counted for the recipient so far
};
// What one return does to its recipient, in every store: the status and soft count after
// it, and the category recorded (soft bounces past the limit become "repeated-soft").
struct ReturnOutcome {
  RcptStatus status;
  uint32_t soft;
  std::string category;
};
inline ReturnOutcome return_outcome(RcptStatus status, uint32_t soft, const ReturnRecord& r) {
  ReturnOutcome o{status, soft, r.category};
  if (r.effect == ReturnEffect::kSoft) {
    ++o.soft;
    if (r.soft_limit > 0 && o.soft >= r.soft_limit && status != RcptStatus::kComplained) {
      o.status = RcptStatus::kBounced;
      o.category = "repeated-soft";
    }
  } else if (r.effect == ReturnEffect::kHard) {
    if (status != RcptStatus::kComplained) o.status = RcptStatus::kBounced;
  } else if (r.effect == ReturnEffect::kComplaint) {
    o.status = RcptStatus::kComplained;
  }
  return o;
}
// SMS delivery receipts (issue 19): one receipt as the store needs it (the SMPP side parses
// it: sms/smpp_pdu.h), applied by TaskStore::apply_receipt in either store.
struct SmsReceiptUpdate {
  std::string message_id;  // the SMSC's id of the part (receipted_message_id or "id:")
  // receipt_state_name() of the receipt: "delivered", "expired", "deleted", "undeliverable",
  // "rejected" (final) or "accepted", "enroute", "unknown" (not final: recorded only).
  std::string state;
  std::string stat;  // as the SMSC wrote it ("DELIVRD"), for the recipient's reply text
  std::string err;   // "000"
  int64_t time = 0;  // unix seconds; 0: now
};
enum class SmsReceiptEffect : uint8_t {
  kUnknownId,  // no part has that id (another task's message, or one sent elsewhere): counted
  kDuplicate,  // the part already had this state (the SMSC sent the receipt again)
  kRecorded,   // the part's state changed; the recipient did not (more parts to come, or a
               // state that is not final, or a recipient that is not settled as sent)
  kSettled,    // the recipient's status changed (delivered, undeliverable, expired)
};
struct SmsReceiptApplied {
  SmsReceiptEffect effect = SmsReceiptEffect::kUnknownId;
  int64_t rcpt_id = 0;                      // 0 for an unknown id
  RcptStatus status = RcptStatus::kUnsent;  // the recipient's status afterwards
};
// A part's state (sms_ids.state in SQLite, smtpblast_sms_ids.state in PostgreSQL): SMPP 3.4's
// message_state numbers; 0 = no receipt yet.
inline constexpr int kSmsEnroute = 1, kSmsDelivered = 2, kSmsExpired = 3, kSmsDeleted = 4,
                     kSmsUndeliverable = 5, kSmsAccepted = 6, kSmsUnknown = 7, kSmsRejected = 8;
inline constexpr bool sms_final_state(int s) {
  return s == kSmsDelivered || s == kSmsExpired || s == kSmsDeleted || s == kSmsUndeliverable ||
         s == kSmsRejected;
}
// What one receipt does, in every store. To the part: nothing when it has that state already
// or a final one and this receipt's is not (ENROUTE after DELIVRD): a duplicate.
inline constexpr bool sms_part_changes(int part_state, int receipt_state) {
  return part_state != receipt_state &&
         !(sms_final_state(part_state) && !sms_final_state(receipt_state));
}
// The recipient's parts after the receipt, each part number once: delivered when any row of
// it (a part may have been sent more than once) was delivered; else failed or expired.
struct SmsPartsSeen {
  int64_t parts = 0;      // the message's part count (the largest recorded)
  int64_t delivered = 0;  // part numbers delivered
  bool failed = false;    // a part undeliverable, deleted or rejected (none of its rows delivered)
  bool expired = false;   // a part expired (none of its rows delivered)
};
// To the recipient, after a part changed: a recipient settled as sent (or by an earlier
// receipt) follows its parts on a final receipt: a part failed -> undeliverable; else a part
// expired -> expired; else every part delivered -> delivered; else it stays as it is.
inline RcptStatus sms_receipt_status(RcptStatus status, const SmsPartsSeen& p, int receipt_state) {
  const bool follows = status == RcptStatus::kSent || status == RcptStatus::kDelivered ||
                       status == RcptStatus::kUndeliverable || status == RcptStatus::kExpired;
  if (!follows || !sms_final_state(receipt_state)) return status;
  if (p.failed) return RcptStatus::kUndeliverable;
  if (p.expired) return RcptStatus::kExpired;
  if (p.parts > 0 && p.delivered >= p.parts) return RcptStatus::kDelivered;
  return status;
}
// The recipient's reply when a receipt settles it (export shows it), capped at 512 octets.
inline std::string sms_receipt_reply(const SmsReceiptUpdate& r) {
  std::string reply = "receipt stat:" + (r.stat.empty() ? r.state : r.stat);
  if (!r.err.empty()) reply += " err:" + r.err;
  if (reply.size() > 512) reply.resize(512);
  return reply;
}
// The task's own suppression list (numbers that replied STOP): what adding a key did.
struct TaskSuppressionAdded {
  bool added = false;       // false: the key was listed already
  uint64_t recipients = 0;  // unsent or deferred recipients with that key, now suppressed
};

struct ReturnInfo {  // the last return recorded for a recipient
  uint32_t soft = 0;
  std::string status, diagnostic, cls, category, kind;
  int64_t time = 0;
};

// What `report` draws from a task (report/collect.cc).
struct DomainOutcomes {
  std::string domain;  // domain_of(email): after the last '@', ASCII letters lower-cased
  uint64_t sent = 0, deferred = 0, failed = 0;
};
struct DomainSummary {
  std::vector<DomainOutcomes> top;  // by recipients (sent + deferred + failed), then domain
  uint64_t domains = 0;             // distinct domains
  DomainOutcomes all;               // added up over every domain
};

// What a retry needs of a recipient whose multi-part message was partly accepted: the ids
// recorded per part of its latest message ("" for a part never accepted; empty vector:
// nothing recorded) and the reference they carried (-1: unknown, then the retry must send the
// whole message). The latest message is the last run of rows with one reference and one
// number of parts that names each part once (a phone joins parts the same way).
struct SmsPartial {
  std::vector<std::string> ids;
  int concat_ref = -1;
  // Some parts accepted, some not, and the reference known: only the missing parts need to
  // go, with that reference. A message with every part accepted was sent (a recipient claimed
  // again after that was reset: it is sent whole, afresh).
  bool resumable() const {
    if (concat_ref < 0 || ids.size() < 2) return false;
    size_t have = 0;
    for (const auto& id : ids) have += id.empty() ? 0 : 1;
    return have > 0 && have < ids.size();
  }
  // Folds one recorded part in, in the order the parts were recorded: a part that does not fit
  // the message so far (another reference or part count, or a part it has) starts a new one.
  void add(int64_t part, int64_t parts, std::string id, int64_t ref) {
    if (parts < 1 || parts > 255 || part < 1 || part > parts) return;
    const auto i = static_cast<size_t>(part - 1);
    if (ids.size() != static_cast<size_t>(parts) || ref != concat_ref || !ids[i].empty()) {
      ids.assign(static_cast<size_t>(parts), "");
      concat_ref = ref >= 0 && ref <= 255 ? static_cast<int>(ref) : -1;
    }
    ids[i] = std::move(id);
  }
};

// The store behind a narrow interface (issue 13): the engine claims rows, records outcomes
// (through the journal's commit), releases, counts and reads/writes task metadata through
// these calls only. TaskStore::open gives the SQLite file (the embedded default,
// SqliteTaskStore in store/sqlite_task_store.h); src/pg gives the PostgreSQL task shared by
// several nodes. A backend that cannot do something (returned mail on PostgreSQL) answers with
// a kStore error saying so. Not thread-safe: one thread owns a store and makes every call.
class TaskStore {
 public:
  // Opens (creating when allowed) the task file; WAL mode, synchronous=NORMAL.
  // A file that is not a task store, or is corrupt, is a kStore error naming the file.
  // The path ":memory:" gives a private in-memory task (tests, fuzzing, dry runs).
  // A new task file is created with mode 0600 whatever the umask (it holds recipient data;
  // SQLite gives its -wal, -shm and -journal files the database file's mode); an existing
  // file keeps the mode it has, so `chmod g+r` after creation shares a task on purpose.
  static Result<std::unique_ptr<TaskStore>> open(const std::string& path, bool create);
  // For verbs that only read (status, export): nothing is written, not even the journal
  // mode, so a task on a read-only file system or a read-only copy can be inspected. When
  // SQLite cannot create the -shm file there and no -wal file exists, the file is opened as
  // immutable (nobody can be writing it on a read-only mount).
  static Result<std::unique_ptr<TaskStore>> open_read_only(const std::string& path);
  virtual ~TaskStore() = default;
  TaskStore(const TaskStore&) = delete;
  TaskStore& operator=(const TaskStore&) = delete;

  virtual bool imported() const = 0;  // a recipient list was already imported into this task
  // Imports an RFC 4180 CSV with a header row (UTF-8, optional BOM, quoted fields with
  // newlines, blank lines skipped). Column "email" (case-insensitive) is required: its absence
  // is a kInput error before anything is written. Other columns become merge fields.
  // All rows are written in one transaction; a row with a bad address is stored as failed.
  // Details (see csv_reader.h, address.h): spaces around unquoted fields are dropped; rows
  // whose fields are all empty count as blank; a row shorter than the header, or with more
  // non-empty fields than it, is stored as failed ("bad row") and counted in `invalid`;
  // columns with an empty header name are ignored; a duplicate
  // column name (case-insensitive) is a kInput error. Duplicate addresses compare fully
  // lower-cased (ASCII). kNew into a task that was already imported is a kInput error.
  //
  // Text: UTF-8 by default (a BOM is skipped), or converted from options.csv.encoding; an
  // octet that is not valid there is a kInput error naming line and column, and a quoted
  // field still open at the end is a kInput error naming the line it opened on. A row with
  // fewer fields than the header is stored as failed ("bad row", like a longer one): its
  // values have moved columns or were cut (a lost delimiter or quote), so merging them could
  // send anyone anything, and one broken line must not hold up a whole list.
  // kReplace: in the same transaction, the old list goes (refused with a kInput error when
  // any recipient was sent, deferred, in flight or failed by a server, i.e. attempted).
  // kAppend: the CSV's columns must be the task's merge fields (any order, any case);
  // addresses already in the task (or rows rejected identically before) are skipped and
  // counted in already_present.
  virtual Result<ImportReport> import_csv(const std::string& path,
                                          const ImportOptions& options = {}) = 0;
  // The same from bytes already in memory; `name` stands for the file in messages.
  virtual Result<ImportReport> import_csv_buffer(std::string_view data, std::string_view name,
                                                 const ImportOptions& options = {}) = 0;
  // The merge field names the CSV's header gives (every column but email), after the same
  // header checks as the import, without touching any task: lets `send` check the template
  // and every flag before the task holds a list.
  // `key_column`: an SMS list's phone column instead of "email" (ImportOptions::key_column).
  static Result<std::vector<std::string>> read_csv_fields(const std::string& path,
                                                          const CsvOptions& options = {},
                                                          const std::string& key_column = "");
  // A digest of a file's bytes, as the import records it ("sb.source_digest" meta), so a
  // later `send --recipients F` can tell the same list from a changed one.
  static Result<std::string> file_digest(const std::string& path);
  virtual const std::vector<std::string>& field_names() const = 0;

  // Task metadata (template hash, title, settings), a small key/value table. Keys starting
  // with "sb." are the store's own (schema version, import source) and cannot be set.
  virtual Result<std::optional<std::string>> get_meta(std::string_view key) = 0;
  virtual Status set_meta(std::string_view key, std::string_view value) = 0;
  // The key's value, set to `value` first when it has none. On a shared task this is one
  // insert-if-absent, so nodes that start together agree on it (the task key in every
  // Message-ID); a SQLite task has one sender (its lock), so get then set is enough there.
  virtual Result<std::string> meta_or_set(std::string_view key, std::string_view value) {
    auto have = get_meta(key);
    if (!have) return have.error();
    if (have->has_value()) return std::move(**have);
    if (Status s = set_meta(key, value); !s.ok()) return s.error();
    return std::string(value);
  }

  // Up to `limit` recipients with id > after_id whose status is unsent or deferred
  // (or in flight, left by a killed run), in id order. Appends to out; each row carries the
  // status it had. With mark_in_flight the claimed rows become in flight in the same
  // transaction, so a recipient is in flight in the store before anyone can send it: a run
  // killed at any moment leaves it claimable (and sent again) unless its outcome was recorded.
  // A shared backend (PostgreSQL) claims leases instead: see pg/pg_store.h.
  virtual Result<size_t> claim(int64_t after_id, size_t limit, std::vector<RecipientRow>& out,
                               bool mark_in_flight = false) = 0;
  // After a claim that returned fewer rows than asked: true when rows may still become
  // claimable later without this process doing anything (other nodes hold leases that may
  // expire or be released), so the run waits and claims again instead of ending. A store
  // used by one process at a time (SQLite) answers false: its short claim is the end.
  virtual bool more_later() { return false; }
  // Non-empty (the reason) when this process's claims may have passed to another process:
  // its lease ran out (it was stopped, or cut off from the database). The run must start no
  // more messages. A store used by one process at a time never says so.
  virtual std::string claims_lost() { return {}; }

  // Records outcomes in one transaction (the journal writer batches them).
  virtual Status record(const std::vector<Outcome>& outcomes) = 0;

  // Counts by status; with_codes adds counts by last reply code (a second full scan).
  virtual Result<StatusCounts> counts(bool with_codes = true) = 0;

  // Makes recipients sendable again: all of them (errors_only=false) or only the failed and
  // deferred ones (errors_only=true). They become unsent with attempts, code and reply
  // cleared. Rows rejected at import (bad address, bad row) stay failed: no reset can make
  // an invalid address sendable.
  virtual Status reset(bool errors_only) = 0;

  // Up to `limit` recipients with status `s`, in id order, each with its last outcome
  // (for listing failed or deferred recipients).
  Result<std::vector<std::pair<RecipientRow, Outcome>>> list(RcptStatus s, size_t limit) {
    return list(std::vector<RcptStatus>{s}, limit);
  }
  // The same for any of several statuses, in id order.
  virtual Result<std::vector<std::pair<RecipientRow, Outcome>>> list(
      const std::vector<RcptStatus>& s, size_t limit) = 0;

  // Returned mail (issue 14; returns_store.cc). The tables are created on first use.
  // True when a message with this key was already recorded (by record_return).
  virtual Result<bool> return_seen(std::string_view key) = 0;
  // In one transaction: remembers the key, and for a matched recipient applies the effect:
  // hard -> bounced, complaint -> complained (a complaint also replaces bounced), soft ->
  // counted, and bounced once soft_limit are counted. The recipient's code/reply become the
  // return's, so export and status --failed-style listings show it. A key seen before
  // changes nothing (duplicate = true).
  virtual Result<ReturnApplied> record_return(const ReturnRecord& r) = 0;
  // The same for many in one transaction (one commit for a batch of messages); an error
  // (a recipient id the task does not have) rolls the whole batch back.
  virtual Result<std::vector<ReturnApplied>> record_returns(
      const std::vector<ReturnRecord>& batch) = 0;
  // The recipient's address, or nullopt when the task has no such id.
  virtual Result<std::optional<std::string>> email_of(int64_t id) = 0;
  virtual Result<std::optional<ReturnInfo>> return_info(int64_t id) = 0;
  // Addresses of bounced and complained recipients (for --suppress-out), in id order.
  virtual Result<std::vector<std::string>> returned_addresses() = 0;

  // SMS delivery receipts and STOP replies (issue 19; SQLite: store/sms_receipts.cc and
  // task_suppression.cc, PostgreSQL: pg/pg_sms.cc). The provider ids a receipt names are
  // recorded by record() with the outcome (Outcome::sms_ids).
  // Applies one receipt with the rules above (sms_part_changes, sms_receipt_status) in a
  // transaction of its own. The id is looked up as given, then as the same number in the
  // other base (hex/decimal, as some SMSCs write receipts) and in the other letter case
  // (sms_receipt_id_forms). Store errors only; an unknown id is not one.
  virtual Result<SmsReceiptApplied> apply_receipt(const SmsReceiptUpdate& r) = 0;
  // Adds `key` to the task's suppression list (why, e.g. "STOP reply"; when: unix seconds,
  // 0 = now) and suppresses the task's unsent or deferred recipients with that key, in one
  // transaction. Recipients in flight or sent are left as they are.
  virtual Result<TaskSuppressionAdded> add_suppression(std::string_view key,
                                                       std::string_view reason,
                                                       int64_t time = 0) = 0;
  // The listed keys, oldest first.
  virtual Result<std::vector<std::string>> suppressions() = 0;
  // The recipients' latest SMS as recorded part by part (SmsPartial), one per id in order, so
  // a run resumed after a kill sends only the parts a partly accepted message lacks, with its
  // reference. One query for a claimed batch: a PostgreSQL task is a round trip away.
  virtual Result<std::vector<SmsPartial>> partial_sms(const std::vector<int64_t>& rcpt_ids) = 0;
  Result<SmsPartial> partial_sms(int64_t rcpt_id) {
    auto v = partial_sms(std::vector<int64_t>{rcpt_id});
    if (!v) return v.error();
    return std::move((*v)[0]);
  }

  // Aggregates for `report`, computed where the rows are (SQL), so a task of millions of
  // recipients is never read row by row (store/report_store.cc, pg/pg_report.cc).
  // The rows drawn over time: recipients with an outcome time (updated > 0) that were not
  // rejected at import, whose status is one of `statuses`. Their first and last outcome
  // time in unix seconds; {0, 0} when there are none.
  virtual Result<std::pair<int64_t, int64_t>> outcome_span(
      const std::vector<RcptStatus>& statuses) = 0;
  // The same rows counted by time bucket ((updated - start_s) / width_s) and status.
  virtual Status outcome_histogram(
      const std::vector<RcptStatus>& statuses, int64_t start_s, int64_t width_s,
      const std::function<void(int64_t bucket, RcptStatus s, uint64_t n)>& add) = 0;
  // Recipients sent, deferred or failed (not rejected at import) by their domain.
  virtual Result<DomainSummary> domain_summary(size_t top) = 0;
  // Recorded returns by category (else class, else "unclassified"), each recipient's last
  // return once; empty when `returns` never ran.
  virtual Result<std::vector<std::pair<std::string, uint64_t>>> return_categories() = 0;
  // Recipients with one of `statuses`, by their last reply code (0 = none).
  virtual Result<std::map<int, uint64_t>> codes_of(const std::vector<RcptStatus>& statuses) = 0;

 protected:
  TaskStore() = default;
};

}  // namespace sb
