// What both kinds of worker (SMTP's WorkerEngine, SMS's SmsWorker) share about rows and
// outcomes: how many they ask for and hand over at once, and how an outcome settles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/ledger.h"
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

}  // namespace sb
