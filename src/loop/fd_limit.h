// The process's file-descriptor limit (RLIMIT_NOFILE), checked and raised before a run.
#pragma once

#include <cstdint>

namespace sb {

struct FdLimit {
  uint64_t needed = 0;
  uint64_t soft_before = 0;  // the soft limit found
  uint64_t soft = 0;         // the soft limit now (raised, or as found)
  uint64_t hard = 0;         // the hard limit (UINT64_MAX: unlimited)
  bool raised = false;       // soft was raised (say so)
  bool fits() const { return soft >= needed; }
};

// Descriptors a run with `connections` SMTP connections and `workers` loops may hold at once:
// the sockets, each loop's own (epoll, wakeups, DNS), the task store's files, logs, stdio.
uint64_t fds_needed(uint64_t connections, uint64_t workers);

// When the soft limit is below `needed`, raises it to the hard limit (or to `needed` when the
// hard limit cannot be set). Never lowers it. Reads the limits only through getrlimit and
// setrlimit; fits() says whether the run can go ahead.
FdLimit ensure_fd_limit(uint64_t needed);

}  // namespace sb
