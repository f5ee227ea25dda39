// The end of a send run as a person reads it (summary lines) and as a pipeline reads it (JSON).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "store/task_store.h"
#include "throttle/throttle.h"

namespace sb {

// What one run did. Recipients and attempts are counted apart: a recipient deferred three
// times in a run is one deferred recipient after three attempts.
struct RunReport {
  // This run, per recipient (its latest outcome in the run).
  uint64_t sent = 0, failed = 0, deferred = 0, suppressed = 0;
  uint64_t deferred_attempts = 0;  // attempts of the recipients still deferred
  uint64_t attempts = 0;           // every delivery attempt of the run
  double seconds = 0;
  StatusCounts task;  // the task after the run
  ThrottleSnapshot throttle;
  bool show_throttle = false;

  int exit_code = 0;
  std::string stopped_by;  // "", "limit", "daily-limit", "account-daily-limit", "signal",
                           // "relay", "error"
  std::string error;       // the reason, when stopped_by is relay or error
  uint64_t resume_at_ms = 0;  // daily limit: when sending may resume (wall ms)

  // The sending account's quota, when the daily limit counts per account.
  std::string account;
  std::string quota_store;
  uint64_t account_limit = 0, account_used = 0;
};

// "this run: 93 recipients sent, 0 failed, 7 deferred after 21 attempts; 121 attempts in 3.2 s
// (29 msgs/s)" and the task line.
std::string summary_text(const RunReport& r);

// One object: {"ok", "exit_code", "stopped_by", "run": {...}, "task": {...}, "throttle": {...},
// "account": {...}, "resume_at": ISO 8601 UTC, "error"}. Keys documented in README.
nlohmann::json summary_json(const RunReport& r);

// The throttle's state as fields (status --json, the summary): rates per second, the daily
// count and limit, blocks, pause, push-back counters.
nlohmann::json throttle_json(const ThrottleSnapshot& s);

// Wall ms -> "2026-12-04T07:50:00Z".
std::string iso_utc(uint64_t wall_ms);

// The account key the daily limit counts against: "<user> at <relay host>" for a relay with
// AUTH, "<envelope sender> at <relay host>" without, "<envelope sender> direct" for --direct;
// ASCII letters lower-cased.
std::string account_key(const std::string& user, const std::string& envelope_from,
                        const std::string& relay_host, bool direct);

// `status`: the sending account's quota as the task's last run recorded it (meta "account",
// "account_quota_store", "account_daily_limit"), read now from the shared store.
struct AccountStatus {
  std::string text;     // one line for `status`; "" when the task has no account quota
  nlohmann::json json;  // {"account", "quota_store", "daily_limit", "used", "remaining"} or null
};
AccountStatus account_status(TaskStore& store);

// `status --json`: "throttle" (the last run's throttle state as fields, null before any run),
// "throttle_text" (the same as prose) and "account" (AccountStatus::json).
void add_status_json(TaskStore& store, const AccountStatus& account, nlohmann::json& j);

}  // namespace sb
