// Imports a recipient CSV into the task store: header checks, address checks, dedup, bulk insert.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "base/display_text.h"

#include "base/text.h"
#include "store/address.h"
#include "store/address_set.h"
#include "store/csv_reader.h"
#include "store/field_codec.h"
#include "store/sqlite_task_store.h"
#include "store/task_store.h"
#include "store/task_store_impl.h"

namespace sb {
namespace {

constexpr size_t kMaxProblems = 20;
constexpr size_t kReadChunk = 1 << 20;
constexpr size_t kShownValue = 80;  // octets of an offending value quoted in a problem
constexpr int kNoField = -1;        // header column that is not a merge field
// A bigger cache while importing keeps the index builds at the end in memory.
constexpr const char* kImportCacheSizePragma = "PRAGMA cache_size=-32768";
constexpr const char* kNormalCacheSizePragma = "PRAGMA cache_size=-65536";

Error input_error(std::string msg) { return make_error(ErrDomain::kInput, std::move(msg)); }

// The address index: IF NOT EXISTS, as a long list has it built before the end (index mode).
constexpr const char* kAddressIndexSql =
    "CREATE UNIQUE INDEX IF NOT EXISTS recipients_address ON recipients(lower(email)) "
    "WHERE rejected = 0";

// The line a kAppend import finds an address on when the task already holds it.
constexpr uint64_t kInTask = UINT32_MAX;

// What a header row says: the email column and, per column, its merge field name ("" for
// a column without a name, whose values are ignored).
struct Header {
  size_t email_col = 0;
  std::vector<std::string> names;  // per column, trimmed, as written (the email column too)
};

// Checks a header row: names unique (ASCII case-insensitive), an email column present.
// `problem` is told about columns without a name.
template <class Problem>
Result<Header> parse_header(const std::vector<std::string>& f, size_t n, std::string_view file,
                            Problem&& problem, std::string_view key_column = "email") {
  std::unordered_map<std::string, size_t> cols;  // lower-cased name -> 1-based column
  std::optional<size_t> email;
  Header h;
  std::vector<std::string> found;
  for (size_t i = 0; i < n; ++i) {
    std::string_view nm = trim_ascii(f[i]);
    found.emplace_back(nm);
    h.names.emplace_back(nm);
    if (nm.empty()) {
      problem("column " + std::to_string(i + 1) + " has no name; its values are ignored");
      continue;
    }
    auto [it, fresh] = cols.try_emplace(lower_ascii(nm), i + 1);
    if (!fresh) {
      return input_error(std::string(file) + ": column '" + printable(nm, kShownValue) +
                         "' appears twice in the header (columns " + std::to_string(it->second) +
                         " and " + std::to_string(i + 1) + "); rename one of them");
    }
    if (it->first == key_column) email = i;
  }
  if (!email) {
    return input_error(std::string(file) + ": no '" + std::string(key_column) +
                       "' column in the header (found: " + capped_list(found, "", 10, 200) +
                       "); if the columns are separated by something other than a comma, "
                       "give --csv-delimiter");
  }
  h.email_col = *email;
  return h;
}

// 64-bit FNV-1a, streamed: tells one list file from another, not a security digest.
struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ull;
  void add(std::string_view d) {
    for (char c : d) {
      h ^= static_cast<unsigned char>(c);
      h *= 0x100000001b3ull;
    }
  }
  std::string hex() const {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

// Receives records from the CsvReader; the first one is the header. Nothing is written until
// the header has been accepted, and everything after it goes into one transaction.
class Importer final : public CsvSink {
 public:
  Importer(TaskStoreState& s, std::string_view name, const ImportOptions& o)
      : s_(s),
        name_(name),
        mode_(o.mode),
        dedup_cap_(o.dedup_in_memory),
        key_column_(o.key_column.empty() ? "email" : lower_ascii(o.key_column)),
        normalize_(o.normalize),
        normalize_ctx_(o.normalize_ctx) {}
  ~Importer() override {
    if (txn_) s_.rollback_txn();
    // Only a memory hint: a failure to lower the cache again is harmless.
    if (cache_raised_) (void)s_.exec(kNormalCacheSizePragma, "setting the cache size");
    // Failing to return to WAL leaves a correct file in rollback mode; open() retries WAL.
    if (journal_switched_) (void)s_.exec("PRAGMA journal_mode=WAL", "switching to WAL mode");
  }
  Importer(const Importer&) = delete;
  Importer& operator=(const Importer&) = delete;

  bool on_record(const std::vector<std::string>& f, size_t n, uint64_t line) override {
    return have_header_ ? row(f, n, line) : header(f, n, line);
  }

  // Completes the import after the reader is done (reader_status: its own outcome).
  Result<ImportReport> finish(Status reader_status, const std::string& digest);

 private:
  bool header(const std::vector<std::string>& f, size_t n, uint64_t line);
  bool row(const std::vector<std::string>& f, size_t n, uint64_t line);
  bool fail(Error e) {
    error_ = std::move(e);
    return false;
  }
  void problem(uint64_t line, std::string text) {
    if (report_.problems.size() < kMaxProblems) {
      report_.problems.push_back("line " + std::to_string(line) + ": " + std::move(text));
    }
  }
  // `duplicate` (index mode): set instead of failing when the address index refuses the row.
  bool insert(std::string_view email, RcptStatus status, std::string_view reply, uint64_t line,
              bool* duplicate = nullptr);
  bool map_onto_task_fields(const Header& h);
  bool clear_old_list();
  bool load_present_addresses(bool addresses);
  bool has_address_index();
  bool dedup_by_index();
  bool index_duplicate(std::string_view email, uint64_t line);
  uint64_t line_of(int64_t id) const;

  TaskStoreState& s_;
  std::string name_;
  ImportMode mode_;
  size_t dedup_cap_;
  std::string key_column_;  // lower-cased: "email", or an SMS list's phone column
  KeyNormalizer normalize_;
  const void* normalize_ctx_;
  std::string normalized_;  // the row's key after normalize_
  std::optional<Error> error_;
  bool have_header_ = false;
  bool txn_ = false;
  bool cache_raised_ = false;
  bool journal_switched_ = false;
  size_t email_col_ = 0;
  size_t need_cols_ = 0;        // up to the last named column: a row needs at least these fields
  std::vector<int> col_field_;  // per header column: merge field index, or kNoField
  std::vector<std::string> names_;
  std::vector<std::string_view> values_;  // one row's values in field order
  AddressSet seen_;  // address keys -> line of first sight (kInTask: in the task already)
  // Index mode: past dedup_cap_ addresses (or appending to a task that has its address index)
  // a repeat is found by the unique index refusing the row, not by seen_, which is freed.
  bool index_mode_ = false;
  Stmt find_;                     // the id of the row holding an address key
  int64_t first_id_ = INT64_MAX;  // the first row this import inserted (older: in the task)
  // The line of each row this import inserted, as (first id, line - id) at every change of the
  // offset: a run of rows one line each is one entry, so this grows with the repeats and
  // multi-line rows of the file, not with its length.
  std::vector<std::pair<int64_t, int64_t>> line_marks_;
  std::unordered_set<std::string> rejected_present_;  // kAppend: rows rejected before
  std::string blob_;
  std::string key_;
  Stmt insert_;
  int64_t now_ = static_cast<int64_t>(std::time(nullptr));
  ImportReport report_;
};

bool Importer::header(const std::vector<std::string>& f, size_t n, uint64_t line) {
  auto h = parse_header(
      f, n, name_, [&](std::string p) { problem(line, std::move(p)); }, key_column_);
  if (!h.ok()) return fail(h.error());
  col_field_.assign(n, kNoField);
  if (mode_ == ImportMode::kAppend && s_.imported) {
    if (!map_onto_task_fields(*h)) return false;
  } else {
    for (size_t i = 0; i < n; ++i) {
      if (i == h->email_col || h->names[i].empty()) continue;
      col_field_[i] = static_cast<int>(names_.size());
      names_.push_back(h->names[i]);
    }
  }
  values_.assign(
      mode_ == ImportMode::kAppend && s_.imported ? s_.field_names.size() : names_.size(),
      std::string_view());
  email_col_ = h->email_col;
  for (size_t i = 0; i < n; ++i) {
    if (!h->names[i].empty()) need_cols_ = i + 1;
  }
  have_header_ = true;

  // The header is good: from here on everything is written, in one transaction.
  if (auto st = s_.exec(kImportCacheSizePragma, "setting the cache size"); !st) {
    return fail(st.error());
  }
  cache_raised_ = true;
  // In rollback-journal mode a transaction into a fresh file journals only the few pages
  // that existed before it (new pages need no undo record), so the rows are written once
  // and a crash still rolls back cleanly. In WAL mode every page would be written twice
  // (WAL, then checkpoint). Back to WAL after the import. If another process holds the file
  // open the switch is refused and the import simply runs in WAL mode.
  if (!s_.in_memory) {
    Stmt q;
    if (q.prepare(s_.db.h, "PRAGMA journal_mode=DELETE") == SQLITE_OK &&
        sqlite3_step(q.get()) == SQLITE_ROW && q.col_text(0) == "delete") {
      journal_switched_ = true;
    }
  }
  if (auto st = s_.begin_txn(); !st) return fail(st.error());
  txn_ = true;
  if (mode_ == ImportMode::kReplace && s_.imported && !clear_old_list()) return false;
  if (mode_ == ImportMode::kAppend && s_.imported) {
    // The task's address index (built by its first import) finds the repeats: the task's
    // addresses need not be held in memory.
    index_mode_ = has_address_index();
    if (error_ || !load_present_addresses(!index_mode_)) return false;
    if (index_mode_ && !dedup_by_index()) return false;
  }
  if (insert_.prepare(s_.db.h,
                      "INSERT INTO recipients(email, fields, status, reply, "
                      "updated, rejected) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") != SQLITE_OK) {
    return fail(s_.error("preparing the import"));
  }
  return true;
}

// kAppend: every task field needs a column and every named column a task field, or the new
// rows would be merged with values missing or dropped.
bool Importer::map_onto_task_fields(const Header& h) {
  std::unordered_map<std::string, int> pos;
  for (size_t i = 0; i < s_.field_names.size(); ++i) {
    pos.emplace(lower_ascii(s_.field_names[i]), static_cast<int>(i));
  }
  std::vector<bool> covered(s_.field_names.size(), false);
  std::vector<std::string> extra;
  for (size_t i = 0; i < h.names.size(); ++i) {
    if (i == h.email_col || h.names[i].empty()) continue;
    auto it = pos.find(lower_ascii(h.names[i]));
    if (it == pos.end()) {
      extra.push_back(h.names[i]);
      continue;
    }
    col_field_[i] = it->second;
    covered[static_cast<size_t>(it->second)] = true;
  }
  std::vector<std::string> missing;
  for (size_t i = 0; i < covered.size(); ++i) {
    if (!covered[i]) missing.push_back(s_.field_names[i]);
  }
  if (missing.empty() && extra.empty()) return true;
  std::string msg = name_ + ": its columns are not the task's merge fields (";
  if (!missing.empty()) msg += "missing: " + capped_list(missing, "'");
  if (!missing.empty() && !extra.empty()) msg += "; ";
  if (!extra.empty()) msg += "not in the task: " + capped_list(extra, "'");
  msg += "); appended rows need the same columns, in any order";
  return fail(input_error(std::move(msg)));
}

// kReplace, inside the import's transaction: only a list nobody was mailed from goes.
bool Importer::clear_old_list() {
  Stmt q;
  if (q.prepare(s_.db.h,
                "SELECT count(*) FROM recipients WHERE status IN (1, 2, 5) OR attempts > 0 "
                "OR (status = 3 AND rejected = 0)") != SQLITE_OK ||
      sqlite3_step(q.get()) != SQLITE_ROW) {
    return fail(s_.error("checking the task before replacing its list"));
  }
  if (int64_t n = q.col_int(0); n > 0) {
    return fail(input_error(
        s_.path + ": the list cannot be replaced: " + std::to_string(n) +
        " recipients were already sent to or attempted; send the new list as a new task, or "
        "add its new rows with import --append"));
  }
  if (q.prepare(s_.db.h, "SELECT count(*) FROM recipients") != SQLITE_OK ||
      sqlite3_step(q.get()) != SQLITE_ROW) {
    return fail(s_.error("counting the old list"));
  }
  report_.removed = static_cast<uint64_t>(q.col_int(0));
  q = Stmt();
  for (const char* sql :
       {"DROP INDEX IF EXISTS recipients_address", "DELETE FROM recipients", "DELETE FROM fields",
        "DELETE FROM meta WHERE key IN ('sb.imported', 'sb.source', "
        "'sb.source_digest')"}) {
    if (auto st = s_.exec(sql, "removing the old list"); !st) return fail(st.error());
  }
  return true;
}

// kAppend: the addresses already in the task, so the new file's repeats are skipped (only
// the rejected ones when `addresses` is false: the address index finds the others).
bool Importer::load_present_addresses(bool addresses) {
  Stmt q;
  if (q.prepare(s_.db.h, addresses
                             ? "SELECT email, rejected FROM recipients"
                             : "SELECT email, rejected FROM recipients WHERE rejected != 0") !=
      SQLITE_OK) {
    return fail(s_.error("reading the task's addresses"));
  }
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    if (q.col_int(1) == 0) {
      address_key(q.col_text(0), key_);
      seen_.insert(key_, kInTask);
    } else {
      rejected_present_.emplace(q.col_text(0));
    }
  }
  if (rc != SQLITE_DONE) return fail(s_.error("reading the task's addresses"));
  return true;
}

bool Importer::has_address_index() {
  Stmt q;
  if (q.prepare(s_.db.h,
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND "
                "name = 'recipients_address'") != SQLITE_OK) {
    return fail(s_.error("reading the task's schema"));
  }
  int rc = sqlite3_step(q.get());
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail(s_.error("reading the task's schema"));
  return rc == SQLITE_ROW;
}

// From here on the address index deduplicates: built now (one sort of the rows so far, which
// seen_ has kept unique) unless the task has it, and seen_ is freed.
bool Importer::dedup_by_index() {
  seen_ = AddressSet();  // first: its memory and the index's sort would add up
  if (auto st = s_.exec(kAddressIndexSql, "indexing recipients"); !st) return fail(st.error());
  if (find_.prepare(s_.db.h,
                    "SELECT id FROM recipients WHERE lower(email) = ?1 AND rejected = 0") !=
      SQLITE_OK) {
    return fail(s_.error("preparing the import"));
  }
  index_mode_ = true;
  return true;
}

// Index mode: the index refused `email`; report it as seen_ would have.
bool Importer::index_duplicate(std::string_view email, uint64_t line) {
  find_.bind_text(1, key_);
  int rc = sqlite3_step(find_.get());
  if (rc != SQLITE_ROW) {
    Error e = s_.error("looking up a repeated address");
    find_.reset();
    return fail(std::move(e));
  }
  int64_t id = find_.col_int(0);
  find_.reset();
  if (id < first_id_) {
    ++report_.already_present;
    return true;
  }
  problem(line, "duplicate of line " + std::to_string(line_of(id)) + " (" +
                    printable(email, kShownValue) + ")");
  ++report_.duplicates;
  return true;
}

uint64_t Importer::line_of(int64_t id) const {
  auto it = std::upper_bound(line_marks_.begin(), line_marks_.end(), id,
                             [](int64_t v, const auto& m) { return v < m.first; });
  if (it == line_marks_.begin()) return 0;  // not a row of this import (not reached)
  return static_cast<uint64_t>(id + std::prev(it)->second);
}

bool Importer::insert(std::string_view email, RcptStatus status, std::string_view reply,
                      uint64_t line, bool* duplicate) {
  Stmt& st = insert_;
  st.bind_text(1, email);
  st.bind_blob(2, blob_);
  st.bind(3, static_cast<int>(status));
  bool rejected = status != RcptStatus::kUnsent;
  if (rejected) {
    st.bind_text(4, reply);
    st.bind(5, now_);
  } else {
    st.bind_null(4);
    st.bind(5, 0);
  }
  st.bind(6, rejected ? 1 : 0);
  if (sqlite3_step(st.get()) != SQLITE_DONE) {
    if (duplicate != nullptr && sqlite3_extended_errcode(s_.db.h) == SQLITE_CONSTRAINT_UNIQUE) {
      sqlite3_reset(st.get());  // only this row is undone, not the transaction
      *duplicate = true;
      return true;
    }
    Error e = s_.error("importing recipients");
    st.reset();
    return fail(std::move(e));
  }
  // Only reset, not clear: every parameter is bound again for the next row.
  sqlite3_reset(st.get());
  const int64_t id = sqlite3_last_insert_rowid(s_.db.h);
  if (first_id_ == INT64_MAX) first_id_ = id;
  const int64_t offset = static_cast<int64_t>(line) - id;
  if (line_marks_.empty() || line_marks_.back().second != offset) {
    line_marks_.emplace_back(id, offset);
  }
  return true;
}

bool Importer::row(const std::vector<std::string>& f, size_t n, uint64_t line) {
  const size_t ncols = col_field_.size();
  std::string_view email = email_col_ < n ? trim_ascii(f[email_col_]) : std::string_view();
  for (auto& v : values_) v = {};
  for (size_t i = 0; i < ncols && i < n; ++i) {
    if (col_field_[i] != kNoField) values_[static_cast<size_t>(col_field_[i])] = f[i];
  }
  blob_.clear();
  for (std::string_view v : values_) append_field(blob_, v);
  auto rejected = [&](std::string why) {
    if (mode_ == ImportMode::kAppend && rejected_present_.count(std::string(email)) > 0) {
      ++report_.already_present;
      return true;
    }
    ++report_.invalid;
    return insert(email, RcptStatus::kFailed, why, line);
  };
  // Trailing empty fields (a trailing comma) are harmless, and so is a row that stops before
  // trailing columns without a name (ignored anyway); real extra values, or missing ones,
  // mean the row does not line up with the header, so its values cannot be trusted.
  size_t used = n;
  while (used > ncols && f[used - 1].empty()) --used;
  if (used > ncols || n < need_cols_) {
    std::string why = std::to_string(n) + (n == 1 ? " field" : " fields") + ", header has " +
                      std::to_string(ncols);
    problem(line, why);
    return rejected("bad row: " + why);
  }
  if (normalize_ != nullptr) {
    auto number = normalize_(email, normalize_ctx_);
    if (!number.ok()) {
      problem(line, "invalid number: " + number.error().message +
                        (email.empty() ? "" : " (" + printable(email, kShownValue) + ")"));
      return rejected("invalid number: " + number.error().message);
    }
    normalized_ = std::move(number).value();
    email = normalized_;
  }
  std::string why = normalize_ != nullptr ? std::string() : address_problem(email);
  if (!why.empty()) {
    problem(line, "invalid address: " + why +
                      (email.empty() ? "" : " (" + printable(email, kShownValue) + ")"));
    return rejected("invalid address: " + why);
  }
  address_key(email, key_);
  if (!index_mode_ && seen_.size() >= dedup_cap_ && !dedup_by_index()) return false;
  if (index_mode_) {
    bool duplicate = false;
    if (!insert(email, RcptStatus::kUnsent, {}, line, &duplicate)) return false;
    if (duplicate) return index_duplicate(email, line);
    ++report_.imported;
    return true;
  }
  if (uint64_t first = seen_.insert(key_, line)) {
    if (first == kInTask) {
      ++report_.already_present;
      return true;
    }
    problem(line, "duplicate of line " + std::to_string(first) + " (" +
                      printable(email, kShownValue) + ")");
    ++report_.duplicates;
    return true;
  }
  ++report_.imported;
  return insert(email, RcptStatus::kUnsent, {}, line);
}

Result<ImportReport> Importer::finish(Status reader_status, const std::string& digest) {
  if (error_) return *error_;
  if (!reader_status) {
    return input_error(name_ + ": " + reader_status.error().message);
  }
  if (!have_header_) {
    return input_error(name_ +
                       ": the file is empty; expected a header row with an 'email' "
                       "column");
  }
  insert_ = Stmt();
  find_ = Stmt();
  // Every row is read: the dedup set is done. Free it before SQLite sorts the index, so
  // their peaks do not add up (1M addresses: ~60 MB each).
  seen_ = AddressSet();
  if (mode_ == ImportMode::kAppend && s_.imported) {
    if (auto st = s_.commit_txn(); !st) return st.error();
    txn_ = false;
    return std::move(report_);
  }
  Stmt q;
  if (q.prepare(s_.db.h, "INSERT INTO fields(pos, name) VALUES (?1, ?2)") != SQLITE_OK) {
    return s_.error("saving the field names");
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    q.bind(1, static_cast<int64_t>(i));
    q.bind_text(2, names_[i]);
    if (auto st = s_.run(q, "saving the field names"); !st) return st.error();
  }
  if (q.prepare(s_.db.h,
                "INSERT INTO meta(key, value) VALUES ('sb.imported', ?1), "
                "('sb.source', ?2), ('sb.source_digest', ?3)") != SQLITE_OK) {
    return s_.error("saving the import");
  }
  std::string when = std::to_string(now_);
  q.bind_text(1, when);
  q.bind_text(2, name_);
  q.bind_text(3, digest);
  if (auto st = s_.run(q, "saving the import"); !st) return st.error();
  // An SMS task: `send` refuses it and `sms send` refuses an e-mail task.
  if (normalize_ != nullptr) {
    if (q.prepare(s_.db.h,
                  "INSERT OR REPLACE INTO meta(key, value) VALUES ('sb.channel', 'sms')") !=
        SQLITE_OK) {
      return s_.error("saving the import");
    }
    if (auto st = s_.run(q, "saving the import"); !st) return st.error();
  }
  // The address index serves lookups by address (bounces, complaints) and backs the dedup
  // with a constraint. It is built after the bulk insert: one sort instead of a million
  // B-tree inserts. SQLite's built-in lower() folds ASCII only, exactly like address_key().
  // There is deliberately no index for claim(): it walks the rowid from after_id, so one
  // pass over the task is one table scan whatever the mix of statuses, while a partial
  // "claimable" index cost ~1 s per million rows here and an index update per outcome.
  if (auto st = s_.exec(kAddressIndexSql, "indexing recipients"); !st) return st.error();
  if (auto st = s_.commit_txn(); !st) return st.error();
  txn_ = false;
  s_.imported = true;
  s_.field_names = std::move(names_);
  return std::move(report_);
}

Status check_import_allowed(const TaskStoreState& s, const ImportOptions& o,
                            std::string_view name) {
  if (s.imported && o.mode == ImportMode::kNew) {
    return input_error(s.path + " already holds an imported recipient list; to use " +
                       std::string(name) +
                       " instead while nothing was sent, import it with --replace; to add "
                       "its new rows, with --append; or use a new task file");
  }
  return check_csv_options(o.csv);
}

}  // namespace

Result<ImportReport> SqliteTaskStore::import_csv_buffer(std::string_view data,
                                                        std::string_view name,
                                                        const ImportOptions& options) {
  Impl& s = *impl_;
  if (auto st = check_import_allowed(s, options, name); !st) return st.error();
  if (auto st = s.settle_left_claims(); !st) return st.error();  // --replace reads in flight
  s.counts_cache.valid = false;
  Importer imp(s, name, options);
  CsvReader reader(imp, options.csv);
  Fnv1a digest;
  digest.add(data);
  Status st = reader.feed(data);
  if (st) st = reader.finish();
  return imp.finish(std::move(st), digest.hex());
}

Result<ImportReport> SqliteTaskStore::import_csv(const std::string& path,
                                                 const ImportOptions& options) {
  Impl& s = *impl_;
  if (auto st = check_import_allowed(s, options, path); !st) return st.error();
  if (auto st = s.settle_left_claims(); !st) return st.error();  // --replace reads in flight
  s.counts_cache.valid = false;
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return input_error("cannot open " + path + ": " + std::strerror(errno));
  Importer imp(s, path, options);
  CsvReader reader(imp, options.csv);
  Fnv1a digest;
  std::string buf(kReadChunk, '\0');
  Status st;
  while (st && !reader.stopped()) {
    size_t got = std::fread(buf.data(), 1, buf.size(), fp);
    digest.add(std::string_view(buf.data(), got));
    if (got > 0) st = reader.feed(std::string_view(buf.data(), got));
    if (got < buf.size()) {
      if (std::ferror(fp)) st = input_error("cannot read " + path + ": " + std::strerror(errno));
      break;
    }
  }
  std::fclose(fp);
  if (st) st = reader.finish();
  return imp.finish(std::move(st), digest.hex());
}

namespace {

// Stops the reader after the header row, keeping its field names or its problem.
class HeaderReader final : public CsvSink {
 public:
  HeaderReader(std::string_view name, std::string key)
      : result_(input_error(std::string(name) +
                            ": the file is empty; expected a header row with an '" + key +
                            "' column")),
        name_(name),
        key_(std::move(key)) {}
  bool on_record(const std::vector<std::string>& f, size_t n, uint64_t) override {
    auto h = parse_header(
        f, n, name_, [](std::string) {}, key_);
    if (!h.ok()) {
      result_ = h.error();
    } else {
      std::vector<std::string> names;
      for (size_t i = 0; i < h->names.size(); ++i) {
        if (i != h->email_col && !h->names[i].empty()) names.push_back(h->names[i]);
      }
      result_ = std::move(names);
    }
    return false;
  }
  Result<std::vector<std::string>> result_;

 private:
  std::string name_;
  std::string key_;  // lower-cased, as the import compares it
};

}  // namespace

Result<std::vector<std::string>> TaskStore::read_csv_fields(const std::string& path,
                                                            const CsvOptions& options,
                                                            const std::string& key_column) {
  if (auto st = check_csv_options(options); !st) return st.error();
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return input_error("cannot open " + path + ": " + std::strerror(errno));
  HeaderReader h(path, key_column.empty() ? std::string("email") : lower_ascii(key_column));
  CsvReader reader(h, options);
  std::string buf(1 << 16, '\0');
  Status st;
  while (st && !reader.stopped()) {
    size_t got = std::fread(buf.data(), 1, buf.size(), fp);
    if (got > 0) st = reader.feed(std::string_view(buf.data(), got));
    if (got < buf.size()) {
      if (std::ferror(fp)) st = input_error("cannot read " + path + ": " + std::strerror(errno));
      break;
    }
  }
  std::fclose(fp);
  if (st && !reader.stopped()) st = reader.finish();
  if (!st) return input_error(path + ": " + st.error().message);
  return std::move(h.result_);
}

Result<std::string> TaskStore::file_digest(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return input_error("cannot open " + path + ": " + std::strerror(errno));
  Fnv1a digest;
  std::string buf(kReadChunk, '\0');
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), fp)) > 0) {
    digest.add(std::string_view(buf.data(), got));
  }
  bool bad = std::ferror(fp) != 0;
  std::fclose(fp);
  if (bad) return input_error("cannot read " + path);
  return digest.hex();
}

}  // namespace sb
