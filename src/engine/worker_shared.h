// What both kinds of worker (SMTP's WorkerEngine, SMS's SmsWorker) share about rows and
// outcomes: how many they ask for and hand over at once, how an outcome settles, and the
// buffer their outcomes and settlements wait in for the coordinator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "engine/channel.h"
#include "engine/ledger.h"
#include "store/journal.h"
#include "store/task_store.h"

namespace sb {

inline constexpr size_t kWorkerRows = 512;  // recipients a worker asks for at once
// ... at most, after it ran dry while waiting for rows: a worker holds queued what its
// connections take while the journal thread answers (a commit under a loaded CPU takes 100s of
// ms), so a worker that found its queue empty asks for twice as many from then on. 4096, not
// more: 16,384 measured no better on 20/100 ms links, cost ~40 MB more peak RSS (windows kept
// full) and slowed short runs on loopback (bench/RESULTS.md, "Why send waits").
inline constexpr size_t kWorkerRowsMax = 4096;
inline constexpr size_t kOutcomeFlush = 256;     // outcomes a worker hands over at once
inline constexpr uint64_t kOutcomeFlushMs = 50;  // ... or after this long (at most the commit
                                                 // interval)

// The ledger's view of a recipient's last outcome: anything but sent, failed or suppressed
// leaves it for a later attempt.
inline Settle settle_of(RcptStatus s) {
  switch (s) {
    case RcptStatus::kSent: return Settle::kSent;
    case RcptStatus::kFailed: return Settle::kFailed;
    case RcptStatus::kSuppressed: return Settle::kSuppressed;
    default: return Settle::kDeferred;
  }
}

// A worker's outcomes (for the journal) and settlements (for the ledger), handed to the
// coordinator together, a batch at a time. Every recipient a worker holds leaves through here
// once: recorded and settled by its last outcome, or released unattempted.
class OutcomeBuffer {
 public:
  OutcomeBuffer() { entries_.reserve(kOutcomeFlush); }

  // A new outcome entry to fill in; the recipient stays the worker's until settle().
  JournalEntry& record() { return entries_.emplace_back(); }
  // The recipient leaves after attempts: its last outcome (already recorded) settles it.
  void settle(Obligation& ob, RcptStatus last) {
    settled_.push_back(Settlement{ob.consume(), settle_of(last)});
  }
  // The recipient leaves unattempted in this run: back to its earlier status.
  void release(const RecipientRow& row, Obligation& ob) {
    add_released(entries_, row);
    settled_.push_back(Settlement{ob.consume(), Settle::kReleased});
  }

  // The recipient leaves the worker for good: released when this run recorded no outcome for
  // it (`run_attempts` 0), else settled by its last one (`last`).
  void leave(const RecipientRow& row, Obligation& ob, uint32_t run_attempts, RcptStatus last) {
    if (run_attempts == 0) {
      release(row, ob);
    } else {
      settle(ob, last);
    }
  }

  bool empty() const { return entries_.empty() && settled_.empty(); }
  bool full() const { return entries_.size() >= kOutcomeFlush; }

  // Hands everything gathered to the coordinator as one OutcomesMsg (nothing when empty).
  void post(CoordinatorInbox& inbox, size_t worker, bool wake_now) {
    if (empty()) return;
    OutcomesMsg m;
    m.entries.swap(entries_);
    m.settled.swap(settled_);
    inbox.post(worker, std::move(m), wake_now);
    entries_.reserve(kOutcomeFlush);
  }

 private:
  std::vector<JournalEntry> entries_;
  std::vector<Settlement> settled_;
};

}  // namespace sb
