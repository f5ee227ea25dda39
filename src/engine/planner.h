// Planner: claims recipients from the task store in batches, answers suppressed ones, applies
// the shard by domain (--direct) and releases what was claimed but never handed out.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "engine/channel.h"
#include "engine/ledger.h"
#include "store/journal.h"
#include "store/suppression.h"
#include "store/task_store.h"

namespace sb {

class RunShared;

class Planner {
 public:
  static constexpr size_t kBatch = 512;          // recipients claimed per request
  static constexpr size_t kDirectQueue = 32768;  // --direct: rows held per worker at most

  struct Options {
    size_t workers = 1;
    bool direct = false;
    std::shared_ptr<const SuppressionList> suppress;  // null or empty: none
    // Adds what the channel keeps about earlier attempts to a batch before it goes out (an
    // SMS run: partly accepted messages, RowsCmd::sms_resume). Runs on this thread.
    std::function<void(RowsCmd&)> annotate;
  };
  // Every claim opens an obligation in `ledger`; suppressed and released rows settle it here.
  Planner(TaskStore& store, Ledger& ledger, const Clock& clock, RunShared* shared, Options o);

  // A batch of rows for each worker that asked (`requests`, by index); suppressed rows are
  // answered in `out`. `stopping`: nothing more is claimed and held rows are released.
  void serve(const std::vector<size_t>& requests, bool stopping, std::vector<JournalEntry>& out,
             std::vector<std::pair<size_t, RowsCmd>>& cmds);
  // How many rows `worker`'s requests ask for from now on (relay mode; at least kBatch, at
  // most kMaxBatch): a worker that ran dry while waiting asks for more at once.
  void want(size_t worker, size_t rows);
  static constexpr size_t kMaxBatch = 16384;
  // --direct: a worker owns the destination of `domain`: its later rows go there at once.
  void learn_owner(const std::string& domain, size_t worker);
  // Claimed rows never handed to a worker: back to their earlier status.
  void release_all(std::vector<JournalEntry>& out);

  // A shared store (PostgreSQL): after a short claim, other nodes still hold rows that may come
  // back (their lease runs out): the planner keeps the workers' requests and claims again
  // after this long instead of ending the run.
  static constexpr uint64_t kWaitForOthersMs = 500;

  // Nothing more to claim (the store ran out, or failed).
  bool exhausted() const { return exhausted_; }
  size_t held() const { return pending_total_; }
  // The store's claim failed (the run must stop); "" otherwise. error_text(): with its domain.
  const std::string& error() const { return error_; }
  const std::string& error_text() const { return error_text_; }

  // The next `limit` recipients, marked in flight, suppressed ones answered in `out`; false
  // (and error() set) when the store fails. Sets exhausted() at the end.
  bool claim_next(std::vector<RecipientRow>& rows, std::vector<JournalEntry>& out,
                  size_t limit = kBatch);

 private:
  void filter_suppressed(std::vector<RecipientRow>& rows, std::vector<JournalEntry>& out);
  RowsCmd rows_cmd(std::vector<RecipientRow> rows, bool exhausted);
  void serve_relay(const std::vector<size_t>& requests, bool stopping,
                   std::vector<JournalEntry>& out, std::vector<std::pair<size_t, RowsCmd>>& cmds);
  void serve_direct(const std::vector<size_t>& requests, bool stopping,
                    std::vector<JournalEntry>& out, std::vector<std::pair<size_t, RowsCmd>>& cmds);

  TaskStore& store_;
  Ledger& ledger_;
  const Clock& clock_;
  RunShared* shared_;
  Options o_;
  int64_t cursor_ = 0;
  bool exhausted_ = false;
  // A shared store said more may come: no claim before next_try_ms_; workers whose request
  // found nothing wait in waiting_ (relay mode; --direct keeps them parked).
  bool more_later_ = false;
  uint64_t next_try_ms_ = 0;
  std::vector<size_t> waiting_;
  std::string error_;
  std::string error_text_;
  // --direct: a domain's rows go to one worker: by a hash of the domain until a worker has
  // learnt the worker owning its destination (domain_owner_). Claimed rows wait here for
  // their worker's request; parked_ marks workers whose request waits for rows.
  std::vector<std::deque<RecipientRow>> pending_;
  std::vector<bool> parked_;
  std::vector<size_t> want_;  // rows per request, by worker (relay mode)
  size_t pending_total_ = 0;
  std::unordered_map<std::string, size_t> domain_owner_;
};

}  // namespace sb
