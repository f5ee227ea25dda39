// Imports a recipient CSV into the task store: header checks, address checks, dedup, bulk insert.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "store/address.h"
#include "store/address_set.h"
#include "store/csv_reader.h"
#include "store/field_codec.h"
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

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Error input_error(std::string msg) { return make_error(ErrDomain::kInput, std::move(msg)); }

// Receives records from the CsvReader; the first one is the header. Nothing is written until
// the header has been accepted, and everything after it goes into one transaction.
class Importer final : public CsvSink {
 public:
  Importer(TaskStoreState& s, std::string_view name) : s_(s), name_(name) {}
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
  Result<ImportReport> finish(Status reader_status);

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
  bool insert(std::string_view email, RcptStatus status, std::string_view reply);

  TaskStoreState& s_;
  std::string name_;
  std::optional<Error> error_;
  bool have_header_ = false;
  bool txn_ = false;
  bool cache_raised_ = false;
  bool journal_switched_ = false;
  size_t email_col_ = 0;
  std::vector<int> col_field_;  // per header column: merge field index, or kNoField
  std::vector<std::string> names_;
  AddressSet seen_;  // address keys -> line of first sight
  std::string blob_;
  std::string key_;
  Stmt insert_;
  int64_t now_ = static_cast<int64_t>(std::time(nullptr));
  ImportReport report_;
};

bool Importer::header(const std::vector<std::string>& f, size_t n, uint64_t line) {
  std::unordered_map<std::string, size_t> cols;  // lower-cased name -> 1-based column
  std::optional<size_t> email;
  col_field_.assign(n, kNoField);
  std::string found;
  for (size_t i = 0; i < n; ++i) {
    std::string_view nm = trim_ascii(f[i]);
    if (!found.empty()) found += ", ";
    found += printable(nm, kShownValue);
    if (nm.empty()) {
      problem(line, "column " + std::to_string(i + 1) + " has no name; its values are ignored");
      continue;
    }
    auto [it, fresh] = cols.try_emplace(ascii_lower(nm), i + 1);
    if (!fresh) {
      return fail(input_error(name_ + ": column '" + printable(nm, kShownValue) +
                              "' appears twice in the header (columns " +
                              std::to_string(it->second) + " and " + std::to_string(i + 1) +
                              "); rename one of them"));
    }
    if (it->first == "email") {
      email = i;
    } else {
      col_field_[i] = static_cast<int>(names_.size());
      names_.emplace_back(nm);
    }
  }
  if (!email) {
    return fail(input_error(name_ + ": no 'email' column in the header (found: " + found + ")"));
  }
  email_col_ = *email;
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
  if (insert_.prepare(s_.db.h,
                      "INSERT INTO recipients(email, fields, status, reply, "
                      "updated, rejected) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") != SQLITE_OK) {
    return fail(s_.error("preparing the import"));
  }
  return true;
}

bool Importer::insert(std::string_view email, RcptStatus status, std::string_view reply) {
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
    Error e = s_.error("importing recipients");
    st.reset();
    return fail(std::move(e));
  }
  // Only reset, not clear: every parameter is bound again for the next row.
  sqlite3_reset(st.get());
  return true;
}

bool Importer::row(const std::vector<std::string>& f, size_t n, uint64_t line) {
  const size_t ncols = col_field_.size();
  std::string_view email = email_col_ < n ? trim_ascii(f[email_col_]) : std::string_view();
  blob_.clear();
  for (size_t i = 0; i < ncols; ++i) {
    if (col_field_[i] == kNoField) continue;
    append_field(blob_, i < n ? std::string_view(f[i]) : std::string_view());
  }
  // Trailing empty fields (a trailing comma) are harmless; real extra values mean the row
  // does not line up with the header, so its values cannot be trusted.
  size_t used = n;
  while (used > ncols && f[used - 1].empty()) --used;
  if (used > ncols) {
    std::string why = std::to_string(n) + " fields, header has " + std::to_string(ncols);
    problem(line, why);
    ++report_.invalid;
    return insert(email, RcptStatus::kFailed, "bad row: " + why);
  }
  std::string why = address_problem(email);
  if (!why.empty()) {
    problem(line, "invalid address: " + why +
                      (email.empty() ? "" : " (" + printable(email, kShownValue) + ")"));
    ++report_.invalid;
    return insert(email, RcptStatus::kFailed, "invalid address: " + why);
  }
  address_key(email, key_);
  if (uint64_t first = seen_.insert(key_, line)) {
    problem(line, "duplicate of line " + std::to_string(first) + " (" +
                      printable(email, kShownValue) + ")");
    ++report_.duplicates;
    return true;
  }
  ++report_.imported;
  return insert(email, RcptStatus::kUnsent, {});
}

Result<ImportReport> Importer::finish(Status reader_status) {
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
  // Every row is read: the dedup set is done. Free it before SQLite sorts the index, so
  // their peaks do not add up (1M addresses: ~60 MB each).
  seen_ = AddressSet();
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
                "('sb.source', ?2)") != SQLITE_OK) {
    return s_.error("saving the import");
  }
  std::string when = std::to_string(now_);
  q.bind_text(1, when);
  q.bind_text(2, name_);
  if (auto st = s_.run(q, "saving the import"); !st) return st.error();
  // The address index serves lookups by address (bounces, complaints) and backs the dedup
  // with a constraint. It is built after the bulk insert: one sort instead of a million
  // B-tree inserts. SQLite's built-in lower() folds ASCII only, exactly like address_key().
  // There is deliberately no index for claim(): it walks the rowid from after_id, so one
  // pass over the task is one table scan whatever the mix of statuses, while a partial
  // "claimable" index cost ~1 s per million rows here and an index update per outcome.
  if (auto st = s_.exec("CREATE UNIQUE INDEX recipients_address ON recipients(lower(email)) "
                        "WHERE rejected = 0",
                        "indexing recipients");
      !st) {
    return st.error();
  }
  if (auto st = s_.commit_txn(); !st) return st.error();
  txn_ = false;
  s_.imported = true;
  s_.field_names = std::move(names_);
  return std::move(report_);
}

}  // namespace

Result<ImportReport> TaskStore::import_csv_buffer(std::string_view data, std::string_view name) {
  Impl& s = *impl_;
  if (s.imported) {
    return input_error(s.path +
                       " already holds an imported recipient list; use a new task file "
                       "to send to " +
                       std::string(name));
  }
  Importer imp(s, name);
  CsvReader reader(imp);
  Status st = reader.feed(data);
  if (st) st = reader.finish();
  return imp.finish(std::move(st));
}

Result<ImportReport> TaskStore::import_csv(const std::string& path) {
  Impl& s = *impl_;
  if (s.imported) {
    return input_error(s.path +
                       " already holds an imported recipient list; use a new task file "
                       "to send to " +
                       path);
  }
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return input_error("cannot open " + path + ": " + std::strerror(errno));
  Importer imp(s, path);
  CsvReader reader(imp);
  std::string buf(kReadChunk, '\0');
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
  if (st) st = reader.finish();
  return imp.finish(std::move(st));
}

}  // namespace sb
