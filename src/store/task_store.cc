// The task store: opening and identifying the SQLite file, claiming, recording, counting.
#include "store/task_store.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "store/address.h"
#include "store/field_codec.h"
#include "store/sms_ids.h"
#include "store/sqlite_task_store.h"
#include "store/task_store_impl.h"

namespace sb {
namespace {

constexpr int kSchemaVersion = 1;
constexpr std::string_view kAppName = "smtpblast";
constexpr int kBusyTimeoutMs = 5000;
constexpr size_t kMaxReply = 512;
// 64 MiB page cache (negative = KiB): the claim/record working set of a large task fits.
constexpr const char* kCacheSizePragma = "PRAGMA cache_size=-65536";

// SQLite keeps allocation statistics (sqlite3_memory_used) under a global mutex taken on every
// malloc and free, ~12% of an outcome's UPDATE; smtpblast never reads them. The setting is
// accepted only before SQLite initialises, so it is made while the program starts (a refusal,
// SQLITE_MISUSE, only leaves the statistics on).
[[maybe_unused]] const int kNoMemoryStatistics = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);

// Rows are referenced by status value in SQL below; keep these in sync with RcptStatus.
static_assert(static_cast<int>(RcptStatus::kUnsent) == 0 &&
              static_cast<int>(RcptStatus::kDeferred) == 2 &&
              static_cast<int>(RcptStatus::kFailed) == 3 &&
              static_cast<int>(RcptStatus::kInFlight) == 5);

// The recipients' address index is created by the import, after the bulk insert, because
// building it at the end is much faster (see csv_import.cc). `rejected` marks rows that
// failed at import (bad address or row): no reset makes them sendable.
constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE fields(pos INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE recipients(
  id INTEGER PRIMARY KEY,
  email TEXT NOT NULL,
  fields BLOB,
  status INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  code INTEGER NOT NULL DEFAULT 0,
  reply TEXT,
  updated INTEGER NOT NULL DEFAULT 0,
  rejected INTEGER NOT NULL DEFAULT 0
);
INSERT INTO meta(key, value) VALUES ('sb.app', 'smtpblast'), ('sb.schema_version', '1');
)sql";

Error store_error(std::string msg) { return make_error(ErrDomain::kStore, std::move(msg)); }

bool valid_status(RcptStatus s) { return known_rcpt_status(static_cast<int>(s)); }
// What record() takes: outcomes of sending. The receipt statuses are set by the SMS receipts
// (sms_receipts.cc) only, never by a run's journal.
bool recordable_status(RcptStatus s) { return static_cast<int>(s) <= kRcptStatusMaxRecorded; }

// Task files hold addresses and merge data: owner-only, whatever the umask. Creating the
// file ourselves is the only way to choose its mode (SQLite uses 0644 & ~umask), and SQLite
// gives its -wal, -shm and -journal files the mode of the database file.
Status create_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return {};  // created meanwhile: SQLite opens what is there
    return store_error("cannot create task file " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
  return {};
}

}  // namespace

const char* status_name(RcptStatus s) {
  switch (s) {
    case RcptStatus::kUnsent: return "unsent";
    case RcptStatus::kSent: return "sent";
    case RcptStatus::kDeferred: return "deferred";
    case RcptStatus::kFailed: return "failed";
    case RcptStatus::kSuppressed: return "suppressed";
    case RcptStatus::kInFlight: return "in-flight";
    case RcptStatus::kBounced: return "bounced";
    case RcptStatus::kComplained: return "complained";
    case RcptStatus::kDelivered: return "delivered";
    case RcptStatus::kUndeliverable: return "undeliverable";
    case RcptStatus::kExpired: return "expired";
  }
  return "unknown";
}

Error TaskStoreState::error(std::string_view what) const {
  int rc = sqlite3_errcode(db.h) & 0xFF;
  std::string msg = db.h ? sqlite3_errmsg(db.h) : "out of memory";
  if (rc == SQLITE_CORRUPT) return store_error(path + " is corrupt: " + msg);
  if (rc == SQLITE_NOTADB) {
    return store_error(path + " is not an smtpblast task file (not a SQLite database, or " +
                       "its header is damaged)");
  }
  std::string out = path + ": " + std::string(what) + ": " + msg;
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    out += " (is another smtpblast process using this task?)";
  }
  return store_error(std::move(out));
}

Status TaskStoreState::exec(const char* sql, std::string_view what) {
  if (sqlite3_exec(db.h, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return error(what);
  return {};
}

Status TaskStoreState::run(Stmt& st, std::string_view what) {
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) {
    Error e = error(what);
    st.reset();
    return e;
  }
  st.reset();
  return {};
}

SqliteTaskStore::SqliteTaskStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteTaskStore::~SqliteTaskStore() = default;

sqlite3* SqliteTaskStore::handle() const { return impl_->db.h; }

Result<std::unique_ptr<TaskStore>> TaskStore::open(const std::string& path, bool create) {
  return SqliteTaskStore::open_impl(path, create, false);
}

Result<std::unique_ptr<TaskStore>> TaskStore::open_read_only(const std::string& path) {
  return SqliteTaskStore::open_impl(path, false, true);
}

Result<std::unique_ptr<TaskStore>> SqliteTaskStore::open_impl(const std::string& path, bool create,
                                                              bool read_only) {
  auto impl = std::make_unique<Impl>();
  Impl& s = *impl;
  s.path = path;
  s.in_memory = path == ":memory:";
  if (!s.in_memory) {
    std::error_code ec;
    auto st = std::filesystem::status(path, ec);
    if (st.type() == std::filesystem::file_type::not_found) {
      if (!create) return store_error("task file " + path + " does not exist");
      if (auto c = create_private_file(path); !c) return c.error();
    } else if (ec) {
      return store_error("cannot open task file " + path + ": " + ec.message());
    } else if (st.type() == std::filesystem::file_type::directory) {
      return store_error(path + " is a directory, not an smtpblast task file");
    }
  }
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX |
              (create ? SQLITE_OPEN_CREATE : 0);
  if (sqlite3_open_v2(path.c_str(), &s.db.h, flags, nullptr) != SQLITE_OK) {
    return s.error("cannot open the task file");
  }
  sqlite3_busy_timeout(s.db.h, kBusyTimeoutMs);
  if (read_only && !s.in_memory) {
    // A WAL-mode file needs its -shm file even to be read. On a read-only file system SQLite
    // cannot create it ("unable to open database file"); with no -wal file there is nothing
    // but the main file to read, and nobody can be writing it, so it is opened immutable.
    Stmt probe;
    int rc = probe.prepare(s.db.h, "SELECT count(*) FROM sqlite_master");
    if (rc == SQLITE_OK) rc = sqlite3_step(probe.get());
    probe = Stmt();
    std::error_code ec;
    bool has_wal = std::filesystem::exists(path + "-wal", ec);
    if ((rc & 0xFF) == SQLITE_CANTOPEN && has_wal) {
      return store_error(path +
                         ": cannot read it where it is: its -wal file holds the latest "
                         "changes, and SQLite cannot create the -shm file it needs beside "
                         "it (a read-only directory or file system?); copy " +
                         path + " with its -wal file to a writable place and read the copy");
    }
    if ((rc & 0xFF) == SQLITE_READONLY) {
      // A hot journal: a writer (an import runs in rollback-journal mode) was killed mid-
      // transaction, and a read-only connection may not roll it back (SQLITE_READONLY_ROLLBACK).
      // Rolling it back is what the next writer does anyway and restores the last committed
      // state, so one read-write connection does it, then the read-only one reads.
      sqlite3_close_v2(s.db.h);
      s.db.h = nullptr;
      sqlite3* rw = nullptr;
      int rrc =
          sqlite3_open_v2(path.c_str(), &rw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
      if (rrc == SQLITE_OK) {
        sqlite3_busy_timeout(rw, kBusyTimeoutMs);
        rrc = sqlite3_exec(rw, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr);
      }
      sqlite3_close_v2(rw);
      if (rrc != SQLITE_OK) {
        return store_error(path +
                           ": a run was stopped in the middle of writing it, and its "
                           "journal cannot be rolled back here (no write access); run "
                           "send or status where the file is writable");
      }
      if (sqlite3_open_v2(path.c_str(), &s.db.h, flags, nullptr) != SQLITE_OK) {
        return s.error("cannot open the task file");
      }
      sqlite3_busy_timeout(s.db.h, kBusyTimeoutMs);
    }
    if ((rc & 0xFF) == SQLITE_CANTOPEN) {
      sqlite3_close_v2(s.db.h);
      s.db.h = nullptr;
      if (sqlite3_open_v2(sqlite_file_uri(path, "immutable=1").c_str(), &s.db.h,
                          SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                          nullptr) != SQLITE_OK) {
        return s.error("cannot open the task file");
      }
    }
  }

  // Identify the file before changing anything (not even the journal mode), so that a
  // foreign database given by mistake is left exactly as it was.
  Stmt q;
  if (q.prepare(s.db.h, "SELECT count(*) FROM sqlite_master") != SQLITE_OK) {
    return s.error("reading the schema");
  }
  int rc = sqlite3_step(q.get());
  if (rc != SQLITE_ROW) return s.error("reading the schema");
  bool empty = q.col_int(0) == 0;
  q = Stmt();
  if (empty) {
    // An empty database: a foreign file, or a run killed while it was creating the task (then
    // send initialises it and goes on).
    if (!create) {
      return store_error(path +
                         " holds no task yet (an empty database: a run may have been "
                         "stopped while creating it; run send again)");
    }
    if (auto st = s.exec("BEGIN IMMEDIATE", "creating the task"); !st) return st.error();
    if (sqlite3_exec(s.db.h, kSchema, nullptr, nullptr, nullptr) != SQLITE_OK) {
      Error e = s.error("creating the task");
      sqlite3_exec(s.db.h, "ROLLBACK", nullptr, nullptr, nullptr);
      return e;
    }
    if (auto st = s.exec("COMMIT", "creating the task"); !st) return st.error();
  } else {
    // A database without our meta table fails to prepare with "no such table".
    if (q.prepare(s.db.h,
                  "SELECT key, value FROM meta WHERE key IN "
                  "('sb.app', 'sb.schema_version')") != SQLITE_OK) {
      int code = sqlite3_errcode(s.db.h) & 0xFF;
      if (code == SQLITE_ERROR) {
        return store_error(path +
                           " is not an smtpblast task file (it is some other SQLite "
                           "database)");
      }
      return s.error("reading the task's metadata");
    }
    std::string app, version;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      (q.col_text(0) == "sb.app" ? app : version) = std::string(q.col_text(1));
    }
    if (rc != SQLITE_DONE) return s.error("reading the task's metadata");
    if (app != kAppName) {
      return store_error(path +
                         " is not an smtpblast task file (it is some other SQLite "
                         "database)");
    }
    int v = 0;
    auto [ptr, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
    if (ec != std::errc() || ptr != version.data() + version.size() || v < 1) {
      return store_error(path + " is corrupt: bad schema version '" + printable(version, 40) + "'");
    }
    if (v > kSchemaVersion) {
      return store_error(path + " was written by a newer smtpblast (schema version " +
                         std::to_string(v) + "; this one reads up to " +
                         std::to_string(kSchemaVersion) + ")");
    }
    q = Stmt();
  }

  if (!s.in_memory && !read_only) {
    // WAL: readers (status) never block the sender, and a commit is one append.
    if (q.prepare(s.db.h, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
        sqlite3_step(q.get()) != SQLITE_ROW) {
      return s.error("switching to WAL mode");
    }
    if (q.col_text(0) != "wal") {
      return store_error(path + ": cannot use WAL mode (journal mode stays " +
                         std::string(q.col_text(0)) + "); is it on a network file system?");
    }
    q = Stmt();
  }
  // NORMAL in WAL mode syncs at checkpoints only: a power loss may drop the last commits
  // (those recipients are then re-sent or re-claimed), but never corrupts the file.
  if (auto st = s.exec("PRAGMA synchronous=NORMAL", "setting synchronous mode");
      !st && !read_only) {
    return st.error();
  }
  if (auto st = s.exec(kCacheSizePragma, "setting the cache size"); !st) return st.error();
  if (auto st = s.exec("PRAGMA temp_store=MEMORY", "setting temp_store"); !st) return st.error();

  // The imported flag and field names are read once here and kept in memory.
  if (q.prepare(s.db.h, "SELECT value FROM meta WHERE key = 'sb.imported'") != SQLITE_OK) {
    return s.error("reading the task's metadata");
  }
  rc = sqlite3_step(q.get());
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return s.error("reading the task's metadata");
  s.imported = rc == SQLITE_ROW;
  if (q.prepare(s.db.h, "SELECT name FROM fields ORDER BY pos") != SQLITE_OK) {
    return s.error("reading the field names");
  }
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    s.field_names.emplace_back(q.col_text(0));
  }
  if (rc != SQLITE_DONE) return s.error("reading the field names");
  q = Stmt();

  struct {
    Stmt& st;
    const char* sql;
  } stmts[] = {
      {s.begin, "BEGIN IMMEDIATE"},
      {s.commit, "COMMIT"},
      {s.rollback, "ROLLBACK"},
      // Walks the rowid from after_id (no status index: see csv_import.cc).
      {s.claim,
       "SELECT id, email, fields, attempts, status FROM recipients "
       "WHERE status IN (0, 2, 5) AND id > ?1 ORDER BY id LIMIT ?2"},
      {s.record,
       "UPDATE recipients SET status = ?1, code = ?2, reply = ?3, attempts = ?4, "
       "updated = ?5 WHERE id = ?6"},
      {s.release, "UPDATE recipients SET status = ?1 WHERE id = ?2"},
      {s.get_meta, "SELECT value FROM meta WHERE key = ?1"},
      {s.set_meta,
       "INSERT INTO meta(key, value) VALUES (?1, ?2) "
       "ON CONFLICT(key) DO UPDATE SET value = excluded.value"},
  };
  for (auto& p : stmts) {
    if (p.st.prepare(s.db.h, p.sql) != SQLITE_OK) return s.error("preparing statements");
  }
  return std::unique_ptr<TaskStore>(new SqliteTaskStore(std::move(impl)));
}

bool SqliteTaskStore::imported() const { return impl_->imported; }

const std::vector<std::string>& SqliteTaskStore::field_names() const { return impl_->field_names; }

Result<std::optional<std::string>> SqliteTaskStore::get_meta(std::string_view key) {
  Impl& s = *impl_;
  s.get_meta.bind_text(1, key);
  int rc = sqlite3_step(s.get_meta.get());
  std::optional<std::string> out;
  if (rc == SQLITE_ROW) {
    out.emplace(s.get_meta.col_text(0));
  } else if (rc != SQLITE_DONE) {
    Error e = s.error("reading metadata");
    s.get_meta.reset();
    return e;
  }
  s.get_meta.reset();
  return out;
}

Status SqliteTaskStore::set_meta(std::string_view key, std::string_view value) {
  Impl& s = *impl_;
  if (key.substr(0, kReservedMetaPrefix.size()) == kReservedMetaPrefix) {
    return store_error("metadata key '" + std::string(key) + "' is reserved for the store");
  }
  s.set_meta.bind_text(1, key);
  s.set_meta.bind_text(2, value);
  s.counts_cache.check(s.db.h);  // metadata (a run's throttle state) changes no count
  Status st = s.run(s.set_meta, "writing metadata");
  s.counts_cache.in_step(s.db.h);
  return st;
}

Result<size_t> SqliteTaskStore::claim(int64_t after_id, size_t limit,
                                      std::vector<RecipientRow>& out, bool mark_in_flight) {
  Impl& s = *impl_;
  // A claim that marks nothing only reads: it shows rows under another run's claims as in
  // flight, as they are.
  ClaimView view;
  if (mark_in_flight) {
    s.counts_cache.check(s.db.h);
    if (auto st = s.settle_left_claims(); !st) return st.error();
    if (auto b = s.begin_txn(); !b) return b.error();
  } else if (auto v = s.claim_view(); !v) {
    return v.error();
  } else {
    view = std::move(*v);
  }
  size_t first = out.size();
  auto fail = [&](Error e) -> Result<size_t> {
    out.resize(first);
    if (mark_in_flight) s.rollback_txn();
    return e;
  };
  Stmt& st = s.claim;
  st.bind(1, after_id);
  st.bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  size_t n = 0;
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    RecipientRow& r = out.emplace_back();
    r.id = st.col_int(0);
    r.email = st.col_text(1);
    if (!decode_fields(st.col_blob(2), s.field_names.size(), r.values)) {
      std::string id = std::to_string(r.id);
      st.reset();
      return fail(store_error(s.path + " is corrupt: bad merge fields for recipient " + id));
    }
    r.attempts = static_cast<uint32_t>(st.col_int(3));
    int64_t status = st.col_int(4);
    if (mark_in_flight) {
      if (s.claims.unsettled.count(r.id) != 0) status = static_cast<int>(RcptStatus::kInFlight);
    } else if (!view.empty()) {
      status = view.effective(r.id, status);
    }
    r.status = static_cast<RcptStatus>(status);
    ++n;
  }
  if (rc != SQLITE_DONE) {
    Error e = s.error("claiming recipients");
    st.reset();
    return fail(std::move(e));
  }
  st.reset();
  if (mark_in_flight) {
    // One row for the batch (claims.cc), not an in-flight status written per row.
    int64_t key = 0;
    if (n > 0) {
      auto k = claims_write_claim(s, after_id, out, first);
      if (!k) return fail(k.error());
      key = *k;
    }
    if (auto c = s.commit_txn(); !c) return fail(c.error());
    if (n > 0) claims_claimed(s, key, after_id, out, first);
    s.counts_cache.in_step(s.db.h);
  }
  return n;
}

Status SqliteTaskStore::record(const std::vector<Outcome>& outcomes) {
  Impl& s = *impl_;
  if (outcomes.empty()) return {};
  for (const Outcome& o : outcomes) {
    if (!recordable_status(o.status)) {
      return store_error("bug: outcome for recipient " + std::to_string(o.id) +
                         " has unknown status " + std::to_string(static_cast<int>(o.status)));
    }
  }
  s.counts_cache.check(s.db.h);
  if (auto st = s.settle_left_claims(); !st) return st;
  if (auto st = s.begin_txn(); !st) return st;
  Stmt& st = s.record;
  for (const Outcome& o : outcomes) {
    if (o.status_only) {
      s.release.bind(1, static_cast<int>(o.status));
      s.release.bind(2, o.id);
      if (auto r = s.run(s.release, "releasing recipients"); !r) {
        s.rollback_txn();
        return r;
      }
      continue;
    }
    st.bind(1, static_cast<int>(o.status));
    st.bind(2, o.code);
    st.bind_text(3, cap_utf8(o.reply, kMaxReply));
    st.bind(4, o.attempts);
    st.bind(5, o.time);
    st.bind(6, o.id);
    // An id that matches no row is ignored: it cannot lose a recipient, only an outcome
    // for one that does not exist.
    if (auto r = s.run(st, "recording outcomes"); !r) {
      s.rollback_txn();
      return r;
    }
    // An SMS's provider ids go in with its outcome (one commit): a receipt that comes later
    // finds its recipient, and a kill -9 cannot keep the outcome but lose the ids.
    if (!o.sms_ids.empty()) {
      if (auto r = record_sms_ids(s.db.h, o.id, o.sms_ids, o.time, o.sms_ref); !r) {
        s.rollback_txn();
        return r;
      }
    }
  }
  if (auto r = claims_write_settled(s, outcomes); !r) {
    s.rollback_txn();
    return r;
  }
  if (auto c = s.commit_txn(); !c) {
    s.rollback_txn();
    return c;
  }
  claims_settled(s, outcomes);
  s.counts_cache.in_step(s.db.h);
  return {};
}

namespace {

// Changes when another connection commits to the file (our own commits leave it).
Result<int64_t> data_version(TaskStoreState& s) {
  Stmt q;
  if (q.prepare(s.db.h, "PRAGMA data_version") != SQLITE_OK ||
      sqlite3_step(q.get()) != SQLITE_ROW) {
    return s.error("counting recipients");
  }
  return q.col_int(0);
}

StatusCounts from_cache(const CountsCache& c) {
  StatusCounts out;
  for (int v = 0; v <= kRcptStatusMax; ++v) {
    if (c.per_status[v] > 0) out.by_status[static_cast<RcptStatus>(v)] = c.per_status[v];
    out.total += c.per_status[v];
  }
  out.total += c.unknown;
  out.unknown = c.unknown;
  out.unknown_values = c.unknown_values;
  return out;
}

}  // namespace

Result<StatusCounts> SqliteTaskStore::counts(bool with_codes) {
  Impl& s = *impl_;
  s.counts_cache.check(s.db.h);
  if (!with_codes && s.counts_cache.valid) {
    auto v = data_version(s);
    if (!v) return v.error();
    if (*v == s.counts_cache.data_version) return from_cache(s.counts_cache);
  }
  // The claims and the rows from one snapshot, while a run may be writing both.
  bool own_txn = sqlite3_get_autocommit(s.db.h) != 0;
  if (own_txn) {
    if (auto b = s.exec("BEGIN", "counting recipients"); !b) return b.error();
  }
  auto out = counts_in_snapshot(with_codes);
  if (own_txn) sqlite3_exec(s.db.h, "COMMIT", nullptr, nullptr, nullptr);  // it only read
  return out;
}

Result<StatusCounts> SqliteTaskStore::counts_in_snapshot(bool with_codes) {
  Impl& s = *impl_;
  StatusCounts out;
  auto view = s.claim_view();
  if (!view) return view.error();
  // Open claims (claims.cc): unsent and deferred rows under them count as in flight; their
  // codes count as an in-flight row's did (an unsent one's is 0).
  const bool overlay = !view->empty();
  std::map<int, uint64_t> claimed_codes;
  Stmt q;
  // One pass that counts each known status here (a GROUP BY sorts every row first, and
  // count(*) FILTER per status costs more still: ~1,600 instructions a row against ~650).
  // The type as well: a text or real status would read as a number that looks known.
  if (q.prepare(s.db.h, overlay ? "SELECT status, id, code FROM recipients"
                                : "SELECT status FROM recipients") != SQLITE_OK) {
    return s.error("counting recipients");
  }
  uint64_t per_status[kRcptStatusMax + 1] = {};
  uint64_t total = 0;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    ++total;
    if (sqlite3_column_type(q.get(), 0) != SQLITE_INTEGER) continue;
    int64_t v = q.col_int(0);
    if (overlay && (v == 0 || v == 2)) {
      int64_t e = view->effective(q.col_int(1), v);
      if (e != v && v == 0) ++claimed_codes[static_cast<int>(q.col_int(2))];
      v = e;
    }
    if (known_rcpt_status(v)) ++per_status[v];
  }
  if (rc != SQLITE_DONE) return s.error("counting recipients");
  uint64_t known = 0;
  for (int v = 0; v <= kRcptStatusMax; ++v) {
    if (per_status[v] > 0) out.by_status[static_cast<RcptStatus>(v)] = per_status[v];
    known += per_status[v];
  }
  out.total = known;
  if (known != total) {
    // Rows with an unknown status (a task edited by hand): rare, so grouped only then.
    if (q.prepare(s.db.h,
                  "SELECT status, typeof(status), count(*) FROM recipients "
                  "GROUP BY status") != SQLITE_OK) {
      return s.error("counting recipients");
    }
    constexpr size_t kUnknownShown = 5;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      auto n = static_cast<uint64_t>(q.col_int(2));
      int64_t v = q.col_int(0);
      if (q.col_text(1) == "integer" && v >= 0 && valid_status(static_cast<RcptStatus>(v))) {
        continue;  // counted above
      }
      out.total += n;
      out.unknown += n;
      if (out.unknown_values.size() < kUnknownShown) {
        out.unknown_values.push_back(printable(q.col_text(0), 40));
      }
    }
    if (rc != SQLITE_DONE) return s.error("counting recipients");
  }
  // What the summary at the end of the run reads, kept from here on (CountsCache).
  if (auto v = data_version(s); v) {
    CountsCache& cc = s.counts_cache;
    std::copy(std::begin(per_status), std::end(per_status), std::begin(cc.per_status));
    cc.unknown = out.unknown;
    cc.unknown_values = out.unknown_values;
    cc.data_version = *v;
    cc.in_step(s.db.h);
    cc.valid = true;
  }
  if (!with_codes) return out;
  if (q.prepare(s.db.h,
                "SELECT code, count(*) FROM recipients WHERE status != 0 "
                "GROUP BY code") != SQLITE_OK) {
    return s.error("counting reply codes");
  }
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    out.by_code[static_cast<int>(q.col_int(0))] = static_cast<uint64_t>(q.col_int(1));
  }
  if (rc != SQLITE_DONE) return s.error("counting reply codes");
  for (auto [code, n] : claimed_codes) out.by_code[code] += n;
  return out;
}

Status SqliteTaskStore::reset(bool errors_only) {
  Impl& s = *impl_;
  const char* sql = errors_only
                        ? "UPDATE recipients SET status = 0, attempts = 0, code = 0, reply = NULL, "
                          "updated = ?1 WHERE rejected = 0 AND status IN (2, 3)"
                        : "UPDATE recipients SET status = 0, attempts = 0, code = 0, reply = NULL, "
                          "updated = ?1 WHERE rejected = 0 AND (status != 0 OR attempts != 0) "
                          // a bounced or complained address stays off the list (issue 14)
                          "AND status NOT IN (6, 7)";
  Stmt q;
  if (q.prepare(s.db.h, sql) != SQLITE_OK) return s.error("resetting recipients");
  q.bind(1, static_cast<int64_t>(std::time(nullptr)));
  if (auto st = s.settle_left_claims(); !st) return st;  // in flight is a status again
  s.counts_cache.valid = false;
  if (auto st = s.begin_txn(); !st) return st;
  if (auto st = s.run(q, "resetting recipients"); !st) {
    s.rollback_txn();
    return st;
  }
  if (auto c = s.commit_txn(); !c) {
    s.rollback_txn();
    return c;
  }
  return {};
}

Result<std::vector<std::pair<RecipientRow, Outcome>>> SqliteTaskStore::list(
    const std::vector<RcptStatus>& statuses, size_t limit) {
  Impl& s = *impl_;
  std::string in;
  for (RcptStatus st : statuses) {
    if (!in.empty()) in += ", ";
    in += std::to_string(static_cast<int>(st));
  }
  if (in.empty()) return std::vector<std::pair<RecipientRow, Outcome>>{};
  // Open claims (claims.cc) decide which unsent and deferred rows are in flight: those rows
  // are read too and filtered here, from one snapshot.
  auto wanted = [&](RcptStatus x) {
    return std::find(statuses.begin(), statuses.end(), x) != statuses.end();
  };
  bool own_txn = sqlite3_get_autocommit(s.db.h) != 0;
  if (own_txn) {
    if (auto b = s.exec("BEGIN", "listing recipients"); !b) return b.error();
  }
  struct EndRead {
    sqlite3* db;
    bool own;
    ~EndRead() {
      if (own) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);  // it only read
    }
  } end_read{s.db.h, own_txn};
  auto view = s.claim_view();
  if (!view) return view.error();
  const bool overlay =
      !view->empty() && (wanted(RcptStatus::kInFlight) || wanted(RcptStatus::kUnsent) ||
                         wanted(RcptStatus::kDeferred));
  if (overlay && wanted(RcptStatus::kInFlight)) in += ", 0, 2";
  Stmt q;
  if (q.prepare(s.db.h,
                "SELECT id, email, fields, attempts, code, reply, updated, status "
                "FROM recipients WHERE status IN (" +
                    in + ") ORDER BY id LIMIT ?1") != SQLITE_OK) {
    return s.error("listing recipients");
  }
  q.bind(1, overlay ? -1 : static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  std::vector<std::pair<RecipientRow, Outcome>> out;
  int rc = SQLITE_DONE;
  while (out.size() < limit && (rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    int64_t status = q.col_int(7);
    if (overlay) {
      status = view->effective(q.col_int(0), status);
      if (!wanted(static_cast<RcptStatus>(status))) continue;
    }
    auto& [r, o] = out.emplace_back();
    r.id = o.id = q.col_int(0);
    r.email = q.col_text(1);
    if (!decode_fields(q.col_blob(2), s.field_names.size(), r.values)) {
      return store_error(s.path + " is corrupt: bad merge fields for recipient " +
                         std::to_string(r.id));
    }
    r.attempts = o.attempts = static_cast<uint32_t>(q.col_int(3));
    o.status = static_cast<RcptStatus>(status);
    o.code = static_cast<int>(q.col_int(4));
    o.reply = q.col_text(5);
    o.time = q.col_int(6);
  }
  if (out.size() < limit && rc != SQLITE_DONE) return s.error("listing recipients");
  return out;
}

}  // namespace sb
