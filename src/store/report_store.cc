// The task store's aggregates for `report` (SQLite): SQL over the recipients, grouped in place.
#include <string>
#include <vector>

#include "base/text.h"
#include "store/address.h"
#include "store/sqlite_task_store.h"
#include "store/task_store.h"
#include "store/task_store_impl.h"

namespace sb {
namespace {

// "(1, 2, 3)": the statuses as an SQL list (numbers only: nothing from input).
std::string status_list(const std::vector<RcptStatus>& statuses) {
  std::string out = "(";
  for (size_t i = 0; i < statuses.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(static_cast<int>(statuses[i]));
  }
  return out + (statuses.empty() ? "NULL)" : ")");
}

std::string drawn_rows(const std::vector<RcptStatus>& statuses) {
  return "updated > 0 AND rejected = 0 AND status IN " + status_list(statuses);
}

// sb_domain(email): the part after the last '@', lower-cased (base/text.h domain_of), so
// SQL groups by domain exactly as the sender routes; an SMS task's E.164 number groups by its
// country calling code.
void sql_domain(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  std::string_view key(p ? p : "", p ? static_cast<size_t>(sqlite3_value_bytes(argv[0])) : 0);
  std::string d = destination_of(key);
  sqlite3_result_text(ctx, d.data(), static_cast<int>(d.size()), SQLITE_TRANSIENT);
}

// Runs `sql` with integer parameters, calling row(stmt) for each row.
template <class F>
Status query(TaskStoreState& s, const std::string& sql, std::initializer_list<int64_t> params,
             F&& row) {
  Stmt st;
  if (st.prepare(s.db.h, sql) != SQLITE_OK) return s.error("reading it for the report");
  int i = 1;
  for (int64_t p : params) st.bind(i++, p);
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) row(st);
  if (rc != SQLITE_DONE) return s.error("reading it for the report");
  return {};
}

}  // namespace

Result<std::pair<int64_t, int64_t>> SqliteTaskStore::outcome_span(
    const std::vector<RcptStatus>& statuses) {
  std::pair<int64_t, int64_t> out{0, 0};
  auto st = query(*impl_,
                  "SELECT coalesce(min(updated), 0), coalesce(max(updated), 0) FROM recipients "
                  "WHERE " +
                      drawn_rows(statuses),
                  {}, [&](Stmt& q) {
                    out = {q.col_int(0), q.col_int(1)};
                  });
  if (!st) return st.error();
  return out;
}

Status SqliteTaskStore::outcome_histogram(
    const std::vector<RcptStatus>& statuses, int64_t start_s, int64_t width_s,
    const std::function<void(int64_t bucket, RcptStatus s, uint64_t n)>& add) {
  if (width_s <= 0) return {};
  return query(*impl_,
               "SELECT (updated - ?1) / ?2, status, count(*) FROM recipients WHERE " +
                   drawn_rows(statuses) + " GROUP BY 1, 2",
               {start_s, width_s}, [&](Stmt& q) {
                 add(q.col_int(0), static_cast<RcptStatus>(q.col_int(1)),
                     static_cast<uint64_t>(q.col_int(2)));
               });
}

Result<DomainSummary> SqliteTaskStore::domain_summary(size_t top) {
  Impl& s = *impl_;
  if (sqlite3_create_function(s.db.h, "sb_domain", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                              sql_domain, nullptr, nullptr) != SQLITE_OK) {
    return s.error("setting up the report");
  }
  // An SMS that a receipt settled (delivered 10, undeliverable 11, expired 12) was sent.
  constexpr const char* kRows =
      "FROM recipients WHERE status IN (1, 2, 3, 10, 11, 12) AND rejected = 0";
  DomainSummary out;
  auto st = query(s,
                  std::string("SELECT sb_domain(email) AS d, sum(status IN (1, 10, 11, 12)), "
                              "sum(status = 2), sum(status = 3), count(*) AS n ") +
                      kRows + " GROUP BY d ORDER BY n DESC, d LIMIT ?1",
                  {static_cast<int64_t>(top)}, [&](Stmt& q) {
                    out.top.push_back(
                        {std::string(q.col_text(0)), static_cast<uint64_t>(q.col_int(1)),
                         static_cast<uint64_t>(q.col_int(2)), static_cast<uint64_t>(q.col_int(3))});
                  });
  if (!st) return st.error();
  st = query(s,
             std::string("SELECT count(*), coalesce(sum(s), 0), coalesce(sum(f), 0), "
                         "coalesce(sum(x), 0) FROM (SELECT sum(status IN (1, 10, 11, 12)) AS s, "
                         "sum(status = 2) AS f, sum(status = 3) AS x ") +
                 kRows + " GROUP BY sb_domain(email))",
             {}, [&](Stmt& q) {
               out.domains = static_cast<uint64_t>(q.col_int(0));
               out.all = {"", static_cast<uint64_t>(q.col_int(1)),
                          static_cast<uint64_t>(q.col_int(2)), static_cast<uint64_t>(q.col_int(3))};
             });
  if (!st) return st.error();
  return out;
}

Result<std::vector<std::pair<std::string, uint64_t>>> SqliteTaskStore::return_categories() {
  Impl& s = *impl_;
  std::vector<std::pair<std::string, uint64_t>> out;
  // A task `returns` never ran on has no table (and a read-only one cannot get it).
  bool have = false;
  auto st = query(s,
                  "SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                  "name = 'recipient_returns'",
                  {}, [&](Stmt&) { have = true; });
  if (!st) return st.error();
  if (!have) return out;
  st = query(s,
             "SELECT coalesce(nullif(category, ''), nullif(class, ''), 'unclassified'), count(*) "
             "FROM recipient_returns GROUP BY 1",
             {}, [&](Stmt& q) {
               out.emplace_back(std::string(q.col_text(0)), static_cast<uint64_t>(q.col_int(1)));
             });
  if (!st) return st.error();
  return out;
}

Result<std::map<int, uint64_t>> SqliteTaskStore::codes_of(const std::vector<RcptStatus>& statuses) {
  std::map<int, uint64_t> out;
  auto st = query(*impl_,
                  "SELECT code, count(*) FROM recipients WHERE status IN " + status_list(statuses) +
                      " GROUP BY code",
                  {}, [&](Stmt& q) {
                    out[static_cast<int>(q.col_int(0))] += static_cast<uint64_t>(q.col_int(1));
                  });
  if (!st) return st.error();
  return out;
}

}  // namespace sb
