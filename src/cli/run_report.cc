// Summary text and JSON of a send run; the throttle's state as fields; the account key.
#include "cli/run_report.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "store/account_quota.h"

namespace sb {

namespace {

std::string num(uint64_t n) { return std::to_string(n); }

std::string plural(uint64_t n, const char* one, const char* many) {
  return num(n) + " " + (n == 1 ? one : many);
}

nlohmann::json counts_json(const StatusCounts& c) {
  nlohmann::json j;
  j["total"] = c.total;
  for (RcptStatus s : {RcptStatus::kUnsent, RcptStatus::kSent, RcptStatus::kDeferred,
                       RcptStatus::kFailed, RcptStatus::kSuppressed, RcptStatus::kInFlight}) {
    std::string key = status_name(s);
    for (char& ch : key) ch = ch == '-' ? '_' : ch;
    j[key] = c.get(s);
  }
  if (c.unknown > 0) j["unknown"] = c.unknown;  // as in `status --json`
  return j;
}

}  // namespace

std::string iso_utc(uint64_t wall_ms) {
  time_t t = static_cast<time_t>(wall_ms / 1000);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string account_key(const std::string& user, const std::string& envelope_from,
                        const std::string& relay_host, bool direct) {
  // ASCII case does not make another mailbox (News@Example.com is news@example.com to every
  // provider we know of), so it must not make another quota either.
  std::string key = direct ? envelope_from + " direct"
                           : (user.empty() ? envelope_from : user) + " at " + relay_host;
  for (char& c : key) {
    if (static_cast<unsigned char>(c) < 0x80) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return key;
}

std::string summary_text(const RunReport& r) {
  std::string out = "this run: " + plural(r.sent, "recipient", "recipients") + " sent, " +
                    num(r.failed) + " failed, " + num(r.deferred) + " deferred";
  if (r.deferred > 0) out += " after " + plural(r.deferred_attempts, "attempt", "attempts");
  if (r.suppressed > 0) out += ", " + num(r.suppressed) + " suppressed";
  char tail[96];
  std::snprintf(tail, sizeof tail, " in %.1f s (%.0f msgs/s)", r.seconds,
                r.seconds > 0 ? static_cast<double>(r.sent) / r.seconds : 0.0);
  out += "; " + plural(r.attempts, "delivery attempt", "delivery attempts") + tail + "\n";
  const StatusCounts& c = r.task;
  out += "task:     " + plural(c.total, "recipient", "recipients") + ": " +
         num(c.get(RcptStatus::kSent)) + " sent, " + num(c.get(RcptStatus::kFailed)) +
         " failed, " + num(c.get(RcptStatus::kDeferred)) + " deferred, " +
         num(c.get(RcptStatus::kUnsent) + c.get(RcptStatus::kInFlight)) + " unsent";
  if (c.get(RcptStatus::kSuppressed) > 0) {
    out += ", " + num(c.get(RcptStatus::kSuppressed)) + " suppressed";
  }
  if (c.unknown > 0) out += ", " + num(c.unknown) + " with an unknown status";
  if (!r.account.empty()) {
    uint64_t left = r.account_used >= r.account_limit ? 0 : r.account_limit - r.account_used;
    out += "\naccount:  " + r.account + ": " + num(r.account_used) + " of " +
           num(r.account_limit) + " recipients in the last 24 h, " + num(left) +
           " left (shared by every task of this account; " + r.quota_store + ")";
  }
  return out;
}

nlohmann::json throttle_json(const ThrottleSnapshot& s) {
  nlohmann::json j;
  j["configured_rate_per_s"] = s.configured_rate_per_s;
  j["adaptive_rate_per_s"] = s.adaptive_rate_per_s;
  j["current_rate_per_s"] = s.current_rate_per_s;
  if (s.next_send_at != 0) {
    j["next_send_at"] = iso_utc(s.next_send_at);
    j["blocked_by"] = limit_name(s.blocked_by);
  } else {
    j["next_send_at"] = nullptr;
    j["blocked_by"] = nullptr;
  }
  j["daily_limit"] = s.daily_limit;
  j["daily_count"] = s.daily_count;
  j["block_size"] = s.block_size;
  j["block_sent"] = s.block_sent;
  j["paused_until"] = s.paused_until != 0 ? nlohmann::json(iso_utc(s.paused_until)) : nullptr;
  j["pushbacks"] = s.pushbacks;
  j["slowdowns"] = s.slowdowns;
  j["quota_replies"] = s.quota_replies;
  j["quota_pauses"] = s.quota_pauses;
  j["rate_cuts"] = s.rate_cuts;
  return j;
}

nlohmann::json summary_json(const RunReport& r) {
  nlohmann::json j;
  j["ok"] = r.exit_code == 0;
  j["exit_code"] = r.exit_code;
  j["stopped_by"] = r.stopped_by.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.stopped_by);
  if (!r.error.empty()) j["error"] = r.error;
  j["resume_at"] = r.resume_at_ms != 0 ? nlohmann::json(iso_utc(r.resume_at_ms)) : nullptr;
  nlohmann::json run;
  run["recipients_sent"] = r.sent;
  run["recipients_failed"] = r.failed;
  run["recipients_deferred"] = r.deferred;
  run["recipients_suppressed"] = r.suppressed;
  run["deferred_attempts"] = r.deferred_attempts;
  run["attempts"] = r.attempts;
  run["seconds"] = r.seconds;
  j["run"] = run;
  j["task"] = counts_json(r.task);
  j["throttle"] = throttle_json(r.throttle);
  if (!r.account.empty()) {
    nlohmann::json a;
    a["account"] = r.account;
    a["quota_store"] = r.quota_store;
    a["daily_limit"] = r.account_limit;
    a["used"] = r.account_used;
    a["remaining"] = r.account_used >= r.account_limit ? 0 : r.account_limit - r.account_used;
    j["account"] = a;
  } else {
    j["account"] = nullptr;
  }
  return j;
}

namespace {
std::string meta(TaskStore& store, const char* key) {
  auto v = store.get_meta(key);
  return v.ok() && v->has_value() ? **v : std::string();
}
}  // namespace

AccountStatus account_status(TaskStore& store) {
  AccountStatus a;
  a.json = nullptr;
  std::string account = meta(store, "account");
  std::string path = meta(store, "account_quota_store");
  if (account.empty() || path.empty()) return a;
  uint64_t limit = std::strtoull(meta(store, "account_daily_limit").c_str(), nullptr, 10);
  auto q = AccountQuota::open(path);
  auto used = q.ok() ? (*q)->used(account, static_cast<uint64_t>(std::time(nullptr)) * 1000)
                     : Result<uint64_t>(q.error());
  if (!used.ok()) {
    a.text = "account:    " + account + ": quota store unreadable: " + used.error().message;
    a.json = {{"account", account}, {"quota_store", path}, {"error", used.error().message}};
    return a;
  }
  uint64_t left = *used >= limit ? 0 : limit - *used;
  a.text = "account:    " + account + ": " + num(*used) + " of " + num(limit) +
           " recipients in the last 24 h (every task of this account), " + num(left) +
           " remaining; quota store " + path;
  a.json = {{"account", account}, {"quota_store", path}, {"daily_limit", limit},
            {"used", *used}, {"remaining", left}};
  return a;
}

void add_status_json(TaskStore& store, const AccountStatus& account, nlohmann::json& j) {
  std::string fields = meta(store, "throttle_json");
  nlohmann::json t = nlohmann::json::parse(fields, nullptr, false);
  j["throttle"] = fields.empty() || t.is_discarded() ? nlohmann::json(nullptr) : t;
  std::string text = meta(store, "throttle");
  j["throttle_text"] = text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
  j["account"] = account.json;
}

}  // namespace sb
