// Coordinator: the journal thread of a run. It hears the workers through one channel
// (CoordinatorInbox), claims through the planner, commits through the journal, keeps the
// ledger, applies limits and signals, and answers with one typed command (WorkerCommand).
// The run is over when nothing more can be claimed (or the run stops) and the ledger is
// empty: then, and only then, it tells the workers to finish.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "engine/account_allowance.h"
#include "engine/channel.h"
#include "engine/events.h"
#include "engine/ledger.h"
#include "engine/planner.h"
#include "engine/run_config.h"
#include "engine/run_shared.h"
#include "store/journal.h"
#include "store/task_store.h"
#include "throttle/throttle.h"

namespace sb {

class Coordinator {
 public:
  struct Deps {
    const RunConfig* cfg = nullptr;
    TaskStore* store = nullptr;
    Journal* journal = nullptr;
    Ledger* ledger = nullptr;
    Planner* planner = nullptr;
    SharedThrottle* throttle = nullptr;
    RunShared* shared = nullptr;
    CoordinatorInbox* inbox = nullptr;
    WorkerPort* port = nullptr;
    AccountAllowance* account = nullptr;  // null: no account quota
    EngineEvents* events = nullptr;
    const Clock* clock = nullptr;
    const std::atomic<int>* signals = nullptr;  // SIGINT/SIGTERM received; may be null
    size_t workers = 1;
    uint64_t todo = 0;  // for the progress line's ETA
    // SMS receipts and STOP replies, applied to the task on this thread after the outcomes
    // that came before them are committed. Null: dropped (an e-mail run never gets any).
    std::function<void(SmsInboundMsg&)> sms_inbound;
  };
  explicit Coordinator(Deps d);

  // Waits for messages and steps until every worker has finished, then commits the rest.
  void run();
  // One turn of the loop on what the workers said (`msgs`, taken from the inbox): a test
  // drives the coordinator with this on one thread. False once every worker has finished.
  bool step(std::vector<std::pair<size_t, WorkerMsg>>& msgs);
  // After the workers are gone: commits what they said last (a batch released late) and
  // checks the ledger is empty.
  void wind_up();

  // For the result.
  uint64_t sent() const { return done_sent_; }
  uint64_t failed() const { return done_failed_; }
  uint64_t suppressed() const { return done_suppressed_; }
  uint64_t attempts() const { return attempts_; }
  uint64_t deferred() const { return deferred_now_.size(); }
  uint64_t deferred_attempts() const { return deferred_attempts_; }
  const std::string& failure() const { return failure_; }
  const std::string& store_error() const { return store_error_; }
  bool fatal() const { return fatal_; }
  int signals_seen() const { return signals_seen_; }
  bool daily_reported() const { return daily_reported_; }
  bool daily_by_account() const { return daily_by_account_; }
  uint64_t daily_resume_at() const { return daily_resume_at_; }
  const std::string& daily_message() const { return daily_message_; }
  bool limit_reported() const { return limit_reported_; }
  bool finish_sent() const { return finish_sent_; }
  ProgressView progress_view() const;
  // Sets the run's failure (the first wins).
  void fail(const std::string& why);
  void save_throttle_state();

 private:
  void take(size_t worker, WorkerMsg& m);
  void commit(std::vector<JournalEntry>& v);
  // Receipts and STOP replies, once nothing committed-before-them is pending.
  void apply_inbound();
  void tally(const std::vector<JournalEntry>& v);
  template <class Cmd>
  void send_all(const Cmd& c) {
    for (size_t i = 0; i < workers_; ++i) port_.send(i, WorkerCommand{c});
  }
  void stop_all_new();
  void apply_limits_and_signals();
  void maybe_finish_run();
  // The gauges --metrics shows that only the coordinator knows: recipients remaining and the
  // daily quota (a throttle snapshot, so a few times a second at most).
  void publish_metrics();

  const RunConfig& cfg_;
  TaskStore& store_;
  Journal& journal_;
  Ledger& ledger_;
  Planner& planner_;
  SharedThrottle& throttle_;
  RunShared& shared_;
  CoordinatorInbox& inbox_;
  WorkerPort& port_;
  AccountAllowance* account_;
  EngineEvents& events_;
  const Clock& clock_;
  const std::atomic<int>* signals_;
  const size_t workers_;
  const uint64_t todo_;

  std::vector<JournalEntry> outcomes_;  // not yet committed
  std::function<void(SmsInboundMsg&)> sms_inbound_;
  std::vector<SmsInboundMsg> inbound_;  // waiting for the outcomes before them
  std::vector<size_t> requests_;        // workers that asked for rows this turn
  std::vector<std::pair<size_t, RowsCmd>> cmds_;
  size_t finished_ = 0;
  bool finish_sent_ = false;
  std::string failure_;
  std::string store_error_;
  bool fatal_ = false;
  bool stop_requested_ = false;
  uint64_t daily_resume_at_ = 0;  // set when the daily limit stopped the run
  bool daily_by_account_ = false;
  std::string daily_provider_reply_;  // the provider's own daily limit stopped the run
  bool daily_reported_ = false;
  std::string daily_message_;
  bool limit_hit_ = false;
  bool limit_reported_ = false;
  int signals_seen_ = 0;
  uint64_t first_signal_at_ = 0;
  bool stop_timed_out_ = false;
  uint64_t t0_ = 0;
  uint64_t last_commit_ = 0;
  uint64_t last_progress_ = 0;
  uint64_t last_metrics_ = 0;
  uint64_t done_sent_ = 0, done_failed_ = 0, done_suppressed_ = 0, attempts_ = 0;
  // Per recipient, not per attempt: recipients whose latest outcome in this run is deferred,
  // with their attempts in this run (a later outcome of the same recipient replaces it).
  std::unordered_map<int64_t, uint32_t> deferred_now_;
  uint64_t deferred_attempts_ = 0;  // the attempts of the recipients in deferred_now_
};

}  // namespace sb
