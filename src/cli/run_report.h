// The end of a send run as a person reads it (summary lines) and as a pipeline reads it (JSON).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/events.h"
#include "engine/run_config.h"
#include "engine/run_result.h"
#include "store/task_store.h"
#include "throttle/throttle.h"

namespace sb {

// "this run: 93 recipients sent, 0 failed, 7 deferred after 21 attempts; 121 attempts in 3.2 s
// (29 msgs/s)" and the task line.
std::string summary_text(const RunReport& r);

// One object: {"ok", "exit_code", "stopped_by", "run": {...}, "task": {...}, "throttle": {...},
// "account": {...}, "resume_at": ISO 8601 UTC, "error"}. Keys documented in README.
nlohmann::json summary_json(const RunReport& r);

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

// The engine's events on stderr: notes as lines, and the progress in the --progress style: a
// terminal's bar redrawn in place (whole lines without control codes when stderr is not a
// terminal), a plain line every 10 s for a log, or one JSON object a second for a pipeline.
class StderrEvents final : public EngineEvents {
 public:
  explicit StderrEvents(ProgressStyle style, bool terminal = false);
  void note(NoteKind kind, const std::string& text) override;
  void progress(const ProgressView& p, bool final_line) override;

 private:
  ProgressStyle style_;
  bool terminal_;
  double last_line_s_ = 0;
};

// Exit codes (cli/pipeline.h ExitCode): 0 every recipient sent (or suppressed), 1 some failed
// or still deferred or unsent, 2 configuration/environment error, 3 stopped by --limit or the
// daily quota, 4 stopped by a signal, 5 stopped by the relay (credentials, sender, TLS).
int exit_code_for(const RunResult& r);

// Prints the end of a run (summary, side reports, the JSON line with --json) and returns its
// exit code.
int report_run(const RunConfig& cfg, RunResult& r);

}  // namespace sb
