// The one channel between worker engines and the coordinator: typed messages in, typed
// commands out. Workers never call into one another; hand-overs go through the coordinator.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "engine/events.h"
#include "engine/job.h"
#include "engine/ledger.h"
#include "store/journal.h"
#include "store/sms_receipts.h"
#include "store/task_store.h"

namespace sb {

// ---- worker -> coordinator

// Outcomes to journal, and the recipients that left the worker for good (a release rides in
// `entries` as a status-only outcome and settles in `settled`).
struct OutcomesMsg {
  std::vector<JournalEntry> entries;
  std::vector<Settlement> settled;
};
struct WantRowsMsg {
  size_t rows = 0;  // how many at most (0: Planner::kBatch)
};
// --direct: recipients for the worker owning their destination (and what it learnt: later
// rows of these domains go there at once).
struct HandOverMsg {
  size_t owner = 0;
  std::vector<Handover> handovers;
};
// This worker cannot go on (the relay is unreachable, no resolver): the run stops.
struct FailedMsg {
  std::string why;
  bool fatal = false;  // credentials, sender refused, TLS: reconnecting cannot help
};
// Told to finish, it has closed every connection: nothing of it is left.
struct FinishedMsg {};
// The daily limit (or the account's) was reached and --wait is off: the run stops.
struct DailyLimitMsg {
  uint64_t resume_at = 0;  // wall ms
  bool by_account = false;
  // Not ours but the provider's (Gmail's 550 5.4.5, Office 365's SubmissionQuotaExceeded):
  // its reply, as the user should see it. Empty for --daily-limit and the account's quota.
  std::string provider_reply;
};
// --limit: the last message this run may start was started.
struct LimitMsg {};
// Something for the user (the resolver's notes on a domain): the coordinator passes it on
// to the run's events, so workers never print.
struct NoteMsg {
  NoteKind kind = NoteKind::kError;
  std::string text;
};

// SMS (issue 19): delivery receipts and STOP replies that came in on a bind during the run,
// for the task (applied once the outcomes before them are committed, so their ids are there).
struct SmsInboundMsg {
  std::vector<SmsReceiptUpdate> receipts;
  std::vector<std::string> stops;  // E.164 numbers that replied STOP
};

using WorkerMsg = std::variant<OutcomesMsg, WantRowsMsg, HandOverMsg, FailedMsg, FinishedMsg,
                               DailyLimitMsg, LimitMsg, NoteMsg, SmsInboundMsg>;

// ---- coordinator -> worker

// SMS (issue 19): a row whose multi-part message an earlier run left partly accepted (a run
// killed or stopped before the retry): the ids per part ("" for a part still to send) and the
// reference the parts carried, so only the missing parts go, with that reference.
struct SmsResume {
  size_t row = 0;  // index into RowsCmd::rows
  std::vector<std::string> ids;
  uint8_t ref = 0;
};

struct RowsCmd {
  std::vector<RecipientRow> rows;
  std::vector<Obligation> obs;        // aligned with rows
  bool exhausted = false;             // no more rows will come
  std::vector<SmsResume> sms_resume;  // a few rows of an SMS run; empty otherwise
};
struct AdoptCmd {
  std::vector<Handover> handovers;
};
struct StopNewCmd {};  // SIGTERM, --limit, daily limit: start nothing new
struct AbortCmd {
  std::string why;
};
// The ledger is empty and nothing more can be claimed: close connections and finish.
struct FinishCmd {};

using WorkerCommand = std::variant<RowsCmd, AdoptCmd, StopNewCmd, AbortCmd, FinishCmd>;

// Where worker messages queue for the coordinator. Thread-safe; wakes the coordinator.
class CoordinatorInbox {
 public:
  // Outcomes wake the coordinator only in bulk (they are committed on the commit interval
  // anyway) unless `wake_now` (a worker that just went idle: its settlements may end the run);
  // every other message wakes it at once.
  void post(size_t worker, WorkerMsg m, bool wake_now = true) {
    {
      std::lock_guard<std::mutex> g(mu_);
      in_.emplace_back(worker, std::move(m));
      if (auto* o = std::get_if<OutcomesMsg>(&in_.back().second); o != nullptr && !wake_now) {
        pending_outcomes_ += o->entries.size();
      } else {
        has_control_ = true;
      }
    }
    cv_.notify_one();
  }
  // Wakes the coordinator without a message (a signal, a quota top-up wanted).
  void wake() {
    std::lock_guard<std::mutex> g(mu_);
    cv_.notify_one();
  }
  // Waits up to `ms` for a message or for `ready()` (checked under the lock), then takes
  // every message queued.
  template <class Ready>
  void wait_take(uint64_t ms, Ready ready, std::vector<std::pair<size_t, WorkerMsg>>& out) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(ms),
                 [&] { return pending_outcomes_ >= kWakeOutcomes || has_control_ || ready(); });
    take_locked(out);
  }
  void take(std::vector<std::pair<size_t, WorkerMsg>>& out) {
    std::lock_guard<std::mutex> g(mu_);
    take_locked(out);
  }

 private:
  static constexpr size_t kWakeOutcomes = 4096;
  void take_locked(std::vector<std::pair<size_t, WorkerMsg>>& out) {
    if (out.empty()) {
      out.swap(in_);
    } else {
      for (auto& m : in_) out.push_back(std::move(m));
      in_.clear();
    }
    pending_outcomes_ = 0;
    has_control_ = false;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<size_t, WorkerMsg>> in_;
  size_t pending_outcomes_ = 0;
  bool has_control_ = false;
};

// Where coordinator commands go (production: each worker's loop; tests: a queue).
class WorkerPort {
 public:
  virtual ~WorkerPort() = default;
  virtual void send(size_t worker, WorkerCommand cmd) = 0;
};

}  // namespace sb
