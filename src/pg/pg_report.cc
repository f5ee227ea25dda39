// PgTaskStore's aggregates for `report`: the SQLite store's queries (store/report_store.cc) in
// PostgreSQL's dialect, over one task's rows.
#include <string>
#include <vector>

#include "pg/pg_store.h"

namespace sb {

namespace {

// "{1,2,3}": a smallint[] parameter.
std::string status_array(const std::vector<RcptStatus>& statuses) {
  std::string out = "{";
  for (size_t i = 0; i < statuses.size(); ++i) {
    out += (i ? "," : "") + std::to_string(static_cast<int>(statuses[i]));
  }
  return out + "}";
}

constexpr const char* kDrawn =
    "task = $1 AND updated > 0 AND NOT rejected AND status = ANY($2::smallint[])";

// store/address.h destination_of in SQL, so a report groups in the server (one row per
// destination comes back, however many recipients). An SMS task's E.164 number goes by its
// country calling code (address.cc calling_code, for "+digits"): the codes are prefix-free; 1
// and 7 have one digit, the listed ones two, all others three. An address goes by its domain
// (base/text.h domain_of): after the last '@', ASCII letters lower-cased (lower() would fold
// other letters too, by the server's locale), "" without an '@'.
constexpr const char* kDestination =
    "CASE WHEN left(email, 1) = '+' AND strpos(email, '@') = 0 THEN CASE "
    "WHEN email = '+' THEN '' "
    "WHEN substr(email, 2, 1) IN ('1', '7') THEN left(email, 2) "
    "WHEN substr(email, 2, 2) IN ('20', '27', '30', '31', '32', '33', '34', '36', '39', '40', "
    "'41', '43', '44', '45', '46', '47', '48', '49', '51', '52', '53', '54', '55', '56', '57', "
    "'58', '60', '61', '62', '63', '64', '65', '66', '81', '82', '84', '86', '90', '91', '92', "
    "'93', '94', '95', '98') THEN left(email, 3) "
    "ELSE left(email, 4) END "
    "WHEN strpos(email, '@') > 0 THEN translate(regexp_replace(email, '^.*@', ''), "
    "'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') ELSE '' END";

}  // namespace

Result<std::pair<int64_t, int64_t>> PgTaskStore::outcome_span(
    const std::vector<RcptStatus>& statuses) {
  auto r = run(std::string("SELECT coalesce(min(updated), 0), coalesce(max(updated), 0) "
                           "FROM smtpblast_recipients WHERE ") +
                   kDrawn,
               {task_, status_array(statuses)});
  if (!r) return r.error();
  return std::pair<int64_t, int64_t>{r->int64(0, 0), r->int64(0, 1)};
}

Status PgTaskStore::outcome_histogram(
    const std::vector<RcptStatus>& statuses, int64_t start_s, int64_t width_s,
    const std::function<void(int64_t bucket, RcptStatus s, uint64_t n)>& add) {
  if (width_s <= 0) return {};
  // div() truncates toward zero as SQLite's integer division does.
  auto r = run(std::string("SELECT div(updated - $3::bigint, $4::bigint), status, count(*) "
                           "FROM smtpblast_recipients WHERE ") +
                   kDrawn + " GROUP BY 1, 2",
               {task_, status_array(statuses), std::to_string(start_s), std::to_string(width_s)});
  if (!r) return r.error();
  for (int i = 0; i < r->rows(); ++i) {
    add(r->int64(i, 0), static_cast<RcptStatus>(r->int64(i, 1)),
        static_cast<uint64_t>(r->int64(i, 2)));
  }
  return {};
}

Result<DomainSummary> PgTaskStore::domain_summary(size_t top) {
  // An SMS that a receipt settled (delivered 10, undeliverable 11, expired 12) was sent.
  const std::string per_domain =
      std::string("SELECT (") + kDestination +
      ") COLLATE \"C\" AS d, count(*) FILTER (WHERE status IN (1, 10, 11, 12)) AS s, "
      "count(*) FILTER (WHERE status = 2) AS f, count(*) FILTER (WHERE status = 3) AS x, count(*) "
      "AS n FROM smtpblast_recipients "
      "WHERE task = $1 AND status IN (1, 2, 3, 10, 11, 12) AND NOT rejected GROUP BY 1";
  // One pass over the task's rows (a 10^7-row task is read once, not once for the top rows and
  // again for the totals): the totals ride on every grouped row as window sums, and at least
  // one row comes back so they do even for top 0. COLLATE "C": ties ordered by bytes, as
  // SQLite orders them.
  auto r =
      run("SELECT d, s, f, x, count(*) OVER (), sum(s) OVER ()::bigint, "
          "sum(f) OVER ()::bigint, sum(x) OVER ()::bigint FROM (" +
              per_domain + ") p ORDER BY n DESC, d LIMIT greatest($2::bigint, 1)",
          {task_, std::to_string(top)});
  if (!r) return r.error();
  DomainSummary out;
  for (int i = 0; i < r->rows() && static_cast<size_t>(i) < top; ++i) {
    out.top.push_back({std::string(r->text(i, 0)), static_cast<uint64_t>(r->int64(i, 1)),
                       static_cast<uint64_t>(r->int64(i, 2)),
                       static_cast<uint64_t>(r->int64(i, 3))});
  }
  if (r->rows() > 0) {
    out.domains = static_cast<uint64_t>(r->int64(0, 4));
    out.all = {"", static_cast<uint64_t>(r->int64(0, 5)), static_cast<uint64_t>(r->int64(0, 6)),
               static_cast<uint64_t>(r->int64(0, 7))};
  }
  return out;
}

Result<std::vector<std::pair<std::string, uint64_t>>> PgTaskStore::return_categories() {
  std::vector<std::pair<std::string, uint64_t>> out;
  // A database `returns` never ran on has no table; a reader does not create it.
  auto have = run("SELECT to_regclass('smtpblast_recipient_returns') IS NOT NULL", {});
  if (!have) return have.error();
  if (have->text(0, 0) != "t") return out;
  auto r =
      run("SELECT coalesce(nullif(category, ''), nullif(class, ''), 'unclassified'), count(*) "
          "FROM smtpblast_recipient_returns WHERE task = $1 GROUP BY 1",
          {task_});
  if (!r) return r.error();
  for (int i = 0; i < r->rows(); ++i) {
    out.emplace_back(std::string(r->text(i, 0)), static_cast<uint64_t>(r->int64(i, 1)));
  }
  return out;
}

Result<std::map<int, uint64_t>> PgTaskStore::codes_of(const std::vector<RcptStatus>& statuses) {
  auto r =
      run("SELECT code, count(*) FROM smtpblast_recipients WHERE task = $1 AND "
          "status = ANY($2::smallint[]) GROUP BY code",
          {task_, status_array(statuses)});
  if (!r) return r.error();
  std::map<int, uint64_t> out;
  for (int i = 0; i < r->rows(); ++i) {
    out[static_cast<int>(r->int64(i, 0))] += static_cast<uint64_t>(r->int64(i, 1));
  }
  return out;
}

}  // namespace sb
