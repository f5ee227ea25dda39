// Gathering a report's numbers: SQL aggregates over the task, one streaming pass over the
// accounting log per question, so a task of millions of recipients needs little memory.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "pg/task_open.h"
#include "report/accounting_reader.h"
#include "report/report.h"

namespace sb {

namespace {

// Task status -> the outcome it is drawn as; kOutcomeCount for statuses not drawn.
size_t outcome_of(int64_t status) {
  switch (static_cast<RcptStatus>(status)) {
    case RcptStatus::kSent: return kOutSent;
    case RcptStatus::kDeferred: return kOutDeferred;
    case RcptStatus::kFailed: return kOutFailed;
    case RcptStatus::kBounced: return kOutBounced;
    case RcptStatus::kComplained: return kOutComplained;
    case RcptStatus::kSuppressed: return kOutSuppressed;
    case RcptStatus::kDelivered: return kOutDelivered;
    case RcptStatus::kUndeliverable: return kOutUndeliverable;
    case RcptStatus::kExpired: return kOutExpired;
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
// complained) and an SMS's delivery receipts, which the log never holds. Addresses rejected at
// import carry the import's time and were never attempted: they are in the status table, not
// over time (the store leaves them out).
std::vector<RcptStatus> drawn_statuses(bool from_log) {
  if (from_log) {
    return {RcptStatus::kBounced, RcptStatus::kComplained, RcptStatus::kDelivered,
            RcptStatus::kUndeliverable, RcptStatus::kExpired};
  }
  return {RcptStatus::kSent,       RcptStatus::kDeferred,      RcptStatus::kFailed,
          RcptStatus::kSuppressed, RcptStatus::kBounced,       RcptStatus::kComplained,
          RcptStatus::kDelivered,  RcptStatus::kUndeliverable, RcptStatus::kExpired};
}

Status task_time_range(TaskStore& store, ReportData& d, bool from_log) {
  auto span = store.outcome_span(drawn_statuses(from_log));
  if (!span) return span.error();
  widen(d, span->first, span->second);
  return {};
}

Status task_buckets(TaskStore& store, ReportData& d, bool from_log) {
  if (d.axis.count == 0) return {};
  return store.outcome_histogram(
      drawn_statuses(from_log), d.axis.start_s, d.axis.bucket_s,
      [&](int64_t i, RcptStatus s, uint64_t n) {
        size_t o = outcome_of(static_cast<int64_t>(s));
        if (i >= 0 && static_cast<size_t>(i) < d.buckets.size() && o < kOutcomeCount) {
          d.buckets[static_cast<size_t>(i)][o] += n;
        }
      });
}

// Per domain from the task: each attempted recipient once, by its current status (addresses
// rejected at import went nowhere).
Status task_destinations(TaskStore& store, ReportData& d, size_t top) {
  auto sum = store.domain_summary(top);
  if (!sum) return sum.error();
  for (const DomainOutcomes& r : sum->top) {
    d.destinations.push_back({r.domain, r.sent, r.deferred, r.failed});
  }
  // "other": all of them minus the top rows.
  d.destination_count = sum->domains;
  d.other = {"other", sum->all.sent, sum->all.deferred, sum->all.failed};
  for (const DestinationRow& r : d.destinations) {
    d.other.sent -= r.sent;
    d.other.deferred -= r.deferred;
    d.other.failed -= r.failed;
  }
  return {};
}

// Bounce classes from the task: what `returns` classified, else the failed and deferred
// recipients' last reply by class (4xx, 5xx, no reply).
Status task_classes(TaskStore& store, ReportData& d) {
  auto returned = store.return_categories();
  if (!returned) return returned.error();
  d.classes = std::move(*returned);
  if (!d.classes.empty()) {
    d.classes_source = "returned mail classified by `smtpblast returns` (last return each)";
    return {};
  }
  d.classes_source = "failed and deferred recipients by the class of their last reply";
  auto codes = store.codes_of({RcptStatus::kDeferred, RcptStatus::kFailed});
  if (!codes) return codes.error();
  std::map<std::string, uint64_t> by_class;
  for (const auto& [code, n] : *codes) {
    by_class[code >= 500   ? "5xx permanent"
             : code >= 400 ? "4xx temporary"
                           : "no reply (local)"] += n;
  }
  d.classes.assign(by_class.begin(), by_class.end());
  return {};
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
  auto store = open_task_store(o.task_path, TaskOpen::kRead);  // a file or a PostgreSQL URL
  if (!store.ok()) return store.error();
  auto counts = (*store)->counts();
  if (!counts.ok()) return counts.error();
  d.status = std::move(*counts);
  d.sms = meta(**store, "sb.channel") == "sms";
  add_settings(**store, d);
  add_throttle(**store, d);

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
  if (auto st = task_time_range(**store, d, from_log); !st) return st.error();
  set_axis(d, o.max_buckets);
  if (auto st = task_buckets(**store, d, from_log); !st) return st.error();

  if (from_log) {
    auto agg = log->aggregate(d, o.top_destinations);
    if (!agg) return agg.error();
  } else {
    for (auto& [code, n] : d.status.by_code) {
      d.codes.emplace_back(code == 0 ? "none" : std::to_string(code), n);
    }
    if (auto st = task_destinations(**store, d, o.top_destinations); !st) return st.error();
    if (auto st = task_classes(**store, d); !st) return st.error();
  }
  sort_by_count(d.codes);
  sort_by_count(d.classes);
  return d;
}

const char* outcome_name(size_t i) {
  static constexpr const char* kNames[kOutcomeCount] = {"sent",      "deferred",      "failed",
                                                        "bounced",   "complained",    "suppressed",
                                                        "delivered", "undeliverable", "expired"};
  return i < kOutcomeCount ? kNames[i] : "?";
}

}  // namespace sb
