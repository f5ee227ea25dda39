// SendRun: one send run from start to end: the task, the template, the journal, then either
// the workers and the coordinator or --pickup; returns what happened (the CLI prints it).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "base/clock.h"
#include "engine/account_allowance.h"
#include "engine/events.h"
#include "engine/ledger.h"
#include "engine/run_config.h"
#include "engine/run_result.h"
#include "engine/run_shared.h"
#include "message/sms_template.h"
#include "message/template.h"
#include "pg/pg_throttle.h"
#include "store/journal.h"
#include "store/task_store.h"
#include "throttle/throttle.h"

namespace sb {

class CoordinatorInbox;
class LoopEnv;
class RunWorker;
struct SmsInboundMsg;
struct RowsCmd;
class Worker;

// Runs one send: never throws, says everything through `events`, and leaves the exit code
// to the caller (cli/run_report.h exit_code_for).
RunResult run_send(const RunConfig& cfg, EngineEvents& events);

// Imports a recipient CSV into a task and says what it did through `events`; 0, or 2 on error.
int import_recipients(TaskStore& store, const std::string& path, const ImportOptions& options,
                      EngineEvents& events);

class SendRun {
 public:
  SendRun(const RunConfig& cfg, EngineEvents& events);
  ~SendRun();
  RunResult run();

 private:
  // task_setup.cc
  int prepare();
  int prepare_task();
  int check_identity();  // a task resumed with another sender, relay or DKIM domain (0 or 2)
  int open_account_quota();
  void not_imported_again();
  int setup_throttle();    // --rate, --daily-limit, blocks: the run's throttle
  int setup_accounting();  // --accounting
  void restore_daily_state();
  // sms_setup.cc: an SMS task (issue 19): its kind, the list (phone numbers), the SMS text.
  int prepare_sms_task();
  // send_run.cc
  bool check_fd_limit();
  void run_workers();
  // sms_setup.cc: receipts and STOP replies that came in during the run, into the task.
  void apply_sms_inbound(SmsInboundMsg& m);
  // sms_setup.cc: the rows of a batch whose message an earlier run left partly accepted.
  void find_partial_sms(RowsCmd& c);
  std::unique_ptr<RunWorker> make_sms_worker(uint32_t index, Worker& w, LoopEnv& env,
                                             RunShared& shared, CoordinatorInbox& inbox);
  RunResult finish();
  // pickup.cc
  void run_pickup();

  RunConfig cfg_;  // a copy: the run completes it (the envelope sender, VERP keys)
  EngineEvents& events_;
  const Clock& clock_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<CompiledTemplate> tpl_;
  std::unique_ptr<SmsTemplate> sms_tpl_;  // an SMS run's text (tpl_ is then null)
  PgSharedLimits pg_limits_;              // a PostgreSQL mailing's shared rates; outlive throttle_
  std::unique_ptr<SharedThrottle> throttle_;
  ThrottleConfig dest_tcfg_;  // --direct: push-back only (see Destination::push_back)
  JournalOptions journal_opts_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<QuotaSource> quota_;  // until the allowance takes it
  std::string account_key_;
  std::unique_ptr<AccountAllowance> account_;
  std::string account_error_;
  std::optional<EmlNamer> pickup_namer_;
  bool name_uses_subject_ = false;  // the pattern has {{subject}}: render it per message
  int lock_fd_ = -1;
  uint64_t todo_ = 0;
  uint64_t t0_ = 0;
  std::atomic<int> signals_{0};
  RunResult res_;
  // What finish() reads from the run (the coordinator's or the pickup's).
  std::string failure_;
  std::string store_error_;
  bool fatal_ = false;
  uint64_t sms_receipts_ = 0, sms_receipts_unknown_ = 0, sms_stops_ = 0;
  bool sms_partial_warned_ = false;
  uint64_t sent_ = 0, failed_ = 0, deferred_ = 0, deferred_attempts_ = 0, suppressed_ = 0,
           attempts_ = 0;
};

}  // namespace sb
