// Gathering a report's numbers: SQL aggregates over the task, one streaming pass over the
// accounting log per question, so a task of millions of recipients needs little memory.
#include <sqlite3.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/text.h"
#include "report/accounting_reader.h"
#include "report/report.h"
#include "store/sqlite_util.h"

namespace sb {

namespace {

Error store_error(const std::string& path, std::string_view what, sqlite3* db) {
  return make_error(ErrDomain::kStore, "task file " + path + ": " + std::string(what) + ": " +
                                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

// sb_domain(email): the part after the last '@', lower-cased (base/text.h domain_of), so
// SQL groups by domain exactly as the sender routes.
void sql_domain(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  std::string d =
      p ? domain_of(std::string_view(p, static_cast<size_t>(sqlite3_value_bytes(argv[0])))) : "";
  sqlite3_result_text(ctx, d.data(), static_cast<int>(d.size()), SQLITE_TRANSIENT);
}

// A read-only connection of our own for the aggregates (the TaskStore has checked the file).
class Db {
 public:
  explicit Db(std::string path) : path_(std::move(path)) {}
  Status open() {
    if (sqlite3_open_v2(path_.c_str(), &db_.h, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return store_error(path_, "cannot open it", db_.h);
    }
    // As TaskStore::open_read_only: where SQLite cannot create the -shm file (a read-only
    // file system) and no -wal file exists, nobody can be writing: read it as immutable.
    // (With a -wal file the TaskStore has already refused, saying why.)
    Stmt probe;
    int rc = probe.prepare(db_.h, "SELECT count(*) FROM sqlite_master");
    if (rc == SQLITE_OK) rc = sqlite3_step(probe.get());
    probe = Stmt();
    if ((rc & 0xFF) == SQLITE_CANTOPEN) {
      sqlite3_close_v2(db_.h);
      db_.h = nullptr;
      if (sqlite3_open_v2(sqlite_file_uri(path_, "immutable=1").c_str(), &db_.h,
                          SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
                          nullptr) != SQLITE_OK) {
        return store_error(path_, "cannot open it", db_.h);
      }
    }
    sqlite3_busy_timeout(db_.h, 10000);
    if (sqlite3_create_function(db_.h, "sb_domain", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                sql_domain, nullptr, nullptr) != SQLITE_OK) {
      return store_error(path_, "setting up", db_.h);
    }
    return {};
  }
  // Runs `sql` with integer parameters, calling row(stmt) for each row.
  template <class F>
  Status query(std::string_view sql, std::initializer_list<int64_t> params, F&& row) {
    Stmt st;
    if (st.prepare(db_.h, sql) != SQLITE_OK) return store_error(path_, "reading it", db_.h);
    int i = 1;
    for (int64_t p : params) st.bind(i++, p);
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) row(st);
    if (rc != SQLITE_DONE) return store_error(path_, "reading it", db_.h);
    return {};
  }
  bool has_table(const char* name) {
    bool found = false;
    Stmt st;
    if (st.prepare(db_.h, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1") ==
        SQLITE_OK) {
      st.bind_text(1, name);
      found = sqlite3_step(st.get()) == SQLITE_ROW;
    }
    return found;
  }

 private:
  std::string path_;
  SqliteDb db_;
};

// Task status -> the outcome it is drawn as; kOutcomeCount for statuses not drawn.
size_t outcome_of(int64_t status) {
  switch (static_cast<RcptStatus>(status)) {
    case RcptStatus::kSent: return kOutSent;
    case RcptStatus::kDeferred: return kOutDeferred;
    case RcptStatus::kFailed: return kOutFailed;
    case RcptStatus::kBounced: return kOutBounced;
    case RcptStatus::kComplained: return kOutComplained;
    case RcptStatus::kSuppressed: return kOutSuppressed;
    default: return kOutcomeCount;
  }
}

std::string meta(TaskStore& store, const char* key) {
  auto v = store.get_meta(key);
  return v.ok() && v->has_value() ? **v : std::string();
}

void sort_by_count(std::vector<std::pair<std::string, uint64_t>>& v) {
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
}

void set_axis(ReportData& d, size_t max_buckets) {
  if (d.first_s == 0) return;
  const int64_t b = choose_bucket_seconds(d.last_s - d.first_s + 1, max_buckets);
  d.axis.bucket_s = b;
  d.axis.start_s = d.first_s - d.first_s % b;
  d.axis.count = static_cast<size_t>((d.last_s - d.axis.start_s) / b + 1);
  d.buckets.assign(d.axis.count, OutcomeCounts{});
}

void widen(ReportData& d, int64_t lo, int64_t hi) {
  if (lo <= 0) return;
  d.first_s = d.first_s == 0 ? lo : std::min(d.first_s, lo);
  d.last_s = std::max(d.last_s, hi);
}

// The rows drawn over time from the task: in accounting mode only the returns (bounced,
// complained), which the log never holds. Addresses rejected at import carry the import's
// time and were never attempted: they are in the status table, not over time.
std::string drawn_rows(bool from_log) {
  return std::string("updated > 0 AND rejected = 0 AND status IN ") +
         (from_log ? "(6, 7)" : "(1, 2, 3, 4, 6, 7)");
}

Status task_time_range(Db& db, ReportData& d, bool from_log) {
  std::string sql =
      "SELECT min(updated), max(updated) FROM recipients WHERE " + drawn_rows(from_log);
  return db.query(sql, {}, [&](Stmt& st) { widen(d, st.col_int(0), st.col_int(1)); });
}

Status task_buckets(Db& db, ReportData& d, bool from_log) {
  if (d.axis.count == 0) return {};
  std::string sql = "SELECT (updated - ?1) / ?2, status, count(*) FROM recipients WHERE " +
                    drawn_rows(from_log) + " GROUP BY 1, 2";
  return db.query(sql, {d.axis.start_s, d.axis.bucket_s}, [&](Stmt& st) {
    int64_t i = st.col_int(0);
    size_t o = outcome_of(st.col_int(1));
    if (i >= 0 && static_cast<size_t>(i) < d.buckets.size() && o < kOutcomeCount) {
      d.buckets[static_cast<size_t>(i)][o] += static_cast<uint64_t>(st.col_int(2));
    }
  });
}

// Per domain from the task: each attempted recipient once, by its current status (addresses
// rejected at import went nowhere).
Status task_destinations(Db& db, ReportData& d, size_t top) {
  constexpr const char* kRows = "FROM recipients WHERE status IN (1, 2, 3) AND rejected = 0";
  auto st =
      db.query(std::string("SELECT sb_domain(email) AS d, sum(status = 1), sum(status = 2), "
                           "sum(status = 3), count(*) AS n ") +
                   kRows + " GROUP BY d ORDER BY n DESC, d LIMIT ?1",
               {static_cast<int64_t>(top)}, [&](Stmt& s) {
                 d.destinations.push_back(
                     {std::string(s.col_text(0)), static_cast<uint64_t>(s.col_int(1)),
                      static_cast<uint64_t>(s.col_int(2)), static_cast<uint64_t>(s.col_int(3))});
               });
  if (!st) return st;
  // The domains and the totals, for "other" (all of them minus the top rows).
  st = db.query(std::string("SELECT count(*), sum(s), sum(f), sum(x) FROM (SELECT "
                            "sum(status = 1) AS s, sum(status = 2) AS f, sum(status = 3) AS x ") +
                    kRows + " GROUP BY sb_domain(email))",
                {}, [&](Stmt& s) {
                  d.destination_count = static_cast<uint64_t>(s.col_int(0));
                  d.other = {"other", static_cast<uint64_t>(s.col_int(1)),
                             static_cast<uint64_t>(s.col_int(2)),
                             static_cast<uint64_t>(s.col_int(3))};
                });
  if (!st) return st;
  for (const DestinationRow& r : d.destinations) {
    d.other.sent -= r.sent;
    d.other.deferred -= r.deferred;
    d.other.failed -= r.failed;
  }
  return {};
}

// Bounce classes from the task: what `returns` classified, else the failed and deferred
// recipients' last reply by class (4xx, 5xx, no reply).
Status task_classes(Db& db, ReportData& d) {
  if (db.has_table("recipient_returns")) {
    auto st = db.query(
        "SELECT coalesce(nullif(category, ''), nullif(class, ''), 'unclassified'), count(*) "
        "FROM recipient_returns GROUP BY 1",
        {}, [&](Stmt& s) {
          d.classes.emplace_back(std::string(s.col_text(0)), static_cast<uint64_t>(s.col_int(1)));
        });
    if (!st) return st;
  }
  if (!d.classes.empty()) {
    d.classes_source = "returned mail classified by `smtpblast returns` (last return each)";
    return {};
  }
  d.classes_source = "failed and deferred recipients by the class of their last reply";
  return db.query(
      "SELECT CASE WHEN code >= 500 THEN '5xx permanent' WHEN code >= 400 THEN '4xx temporary' "
      "ELSE 'no reply (local)' END, count(*) FROM recipients WHERE status IN (2, 3) GROUP BY 1",
      {}, [&](Stmt& s) {
        d.classes.emplace_back(std::string(s.col_text(0)), static_cast<uint64_t>(s.col_int(1)));
      });
}

void add_throttle(TaskStore& store, ReportData& d) {
  std::string text = meta(store, "throttle_json");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_object()) {
    for (auto& [k, v] : j.items()) {
      if (v.is_object() || v.is_array()) continue;
      d.throttle.emplace_back(k, v.is_string() ? v.get<std::string>()
                                 : v.is_null() ? std::string("none")
                                               : v.dump());
    }
  }
  std::string account = meta(store, "account");
  if (!account.empty()) {
    d.throttle.emplace_back("account", account);
    d.throttle.emplace_back("account_daily_limit", meta(store, "account_daily_limit"));
  }
}

void add_settings(TaskStore& store, ReportData& d) {
  // Only these keys: what the task records about the run, never a credential.
  static constexpr std::pair<const char*, const char*> kKeys[] = {
      {"title", "title"},
      {"sender", "sender"},
      {"relay", "relay"},
      {"dkim_domain", "DKIM domain"},
      {"template_hash", "template hash"}};
  for (const auto& [key, label] : kKeys) {
    std::string v = meta(store, key);
    if (!v.empty() || std::strcmp(key, "title") != 0) d.settings.emplace_back(label, v);
  }
}

}  // namespace

Result<ReportData> collect_report(const ReportOptions& o) {
  ReportData d;
  d.task_path = o.task_path;
  d.accounting_path = o.accounting_path;
  auto store = TaskStore::open_read_only(o.task_path);
  if (!store.ok()) return store.error();
  auto counts = (*store)->counts();
  if (!counts.ok()) return counts.error();
  d.status = std::move(*counts);
  add_settings(**store, d);
  add_throttle(**store, d);

  Db db(o.task_path);
  if (auto st = db.open(); !st) return st.error();
  const bool from_log = !o.accounting_path.empty();
  std::unique_ptr<AccountingReader> log;
  if (from_log) {
    auto r = AccountingReader::open(o.accounting_path);
    if (!r.ok()) return r.error();
    log = std::move(*r);
    int64_t lo = 0, hi = 0;
    if (auto st = log->time_range(lo, hi); !st) return st.error();
    widen(d, lo / 1000, hi / 1000);
  }
  if (auto st = task_time_range(db, d, from_log); !st) return st.error();
  set_axis(d, o.max_buckets);
  if (auto st = task_buckets(db, d, from_log); !st) return st.error();

  if (from_log) {
    auto agg = log->aggregate(d, o.top_destinations);
    if (!agg) return agg.error();
  } else {
    for (auto& [code, n] : d.status.by_code) {
      d.codes.emplace_back(code == 0 ? "none" : std::to_string(code), n);
    }
    if (auto st = task_destinations(db, d, o.top_destinations); !st) return st.error();
    if (auto st = task_classes(db, d); !st) return st.error();
  }
  sort_by_count(d.codes);
  sort_by_count(d.classes);
  return d;
}

const char* outcome_name(size_t i) {
  static constexpr const char* kNames[kOutcomeCount] = {"sent",    "deferred",   "failed",
                                                        "bounced", "complained", "suppressed"};
  return i < kOutcomeCount ? kNames[i] : "?";
}

}  // namespace sb
