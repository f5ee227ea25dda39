// RunResult: what a send run did, for the summary, the JSON line and the exit code.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/run_shared.h"
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
  std::string stopped_by;     // "", "limit", "daily-limit", "account-daily-limit", "signal",
                              // "relay", "error"
  std::string error;          // the reason, when stopped_by is relay or error
  uint64_t resume_at_ms = 0;  // daily limit: when sending may resume (wall ms)

  // The sending account's quota, when the daily limit counts per account.
  std::string account;
  std::string quota_store;
  uint64_t account_limit = 0, account_used = 0;
};

// Everything the command line needs to print the end of a run and choose its exit code.
struct RunResult {
  // The run never started (a bad task, template, flag or file; already said): this exit code.
  int setup_exit = 0;
  RunReport rep;               // exit_code and stopped_by are the command line's to fill
  bool counts_failed = false;  // the task's counts could not be read (already said)
  bool all_done = false;       // nothing left unsent, deferred, failed or in flight
  // Why the run stopped early (the first that applies).
  std::string store_error;      // the task store failed
  std::string account_error;    // the quota store failed
  std::string failure;          // the run's failure: relay, resolver, store, --pickup
  bool fatal = false;           // credentials or TLS: reconnecting cannot help
  bool relay_answered = false;  // some session got a greeting
  bool pickup = false;
  int signals = 0;
  bool daily_reported = false, daily_by_account = false, limit_reported = false;
  std::string daily_message;
  // Side reports.
  uint64_t backup_failures = 0;
  std::string backup_error;
  bool direct = false;
  DnsStats dns;
  ThrottleSnapshot pushback;
  uint64_t pushed_dests = 0;
  // --reset-errors-after: done (count), or its error.
  bool reset_asked = false;
  uint64_t reset_count = 0;
  std::string reset_error;
  // The ledger at the end: claimed, settled, and violations (0 in a correct run).
  uint64_t claimed = 0, settled = 0, ledger_violations = 0;
};

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

}  // namespace sb
