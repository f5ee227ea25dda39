// RLIMIT_NOFILE: many distributions start processes with a soft limit of 1,024 and a much
// higher hard limit; a run with more connections than that silently failed socket() calls.
#include "loop/fd_limit.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdint>

namespace sb {

namespace {
uint64_t from_rlim(rlim_t v) { return v == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(v); }
}  // namespace

uint64_t fds_needed(uint64_t connections, uint64_t workers) {
  // 3 stdio, about 10 for the task store (database, WAL, shared memory, lock, journal),
  // accounting and backup files, 8 per worker loop (epoll, async wakeup, timers' fds, c-ares
  // sockets) and a margin for libraries that open files of their own (OpenSSL, NSS).
  return connections + 32 + 8 * std::max<uint64_t>(workers, 1);
}

FdLimit ensure_fd_limit(uint64_t needed) {
  FdLimit r;
  r.needed = needed;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    r.soft = r.soft_before = r.hard = UINT64_MAX;  // unknown: do not stand in the way
    return r;
  }
  r.soft = r.soft_before = from_rlim(rl.rlim_cur);
  r.hard = from_rlim(rl.rlim_max);
  if (r.soft >= needed) return r;
  // Up to the hard limit; an unlimited hard limit may still be refused above the kernel's
  // nr_open, so then just what is needed.
  rlimit nl = rl;
  nl.rlim_cur = rl.rlim_max;
  bool ok = setrlimit(RLIMIT_NOFILE, &nl) == 0;
  if (!ok && needed <= r.hard) {
    nl.rlim_cur = static_cast<rlim_t>(needed);
    ok = setrlimit(RLIMIT_NOFILE, &nl) == 0;
  }
  if (ok) {
    r.soft = from_rlim(nl.rlim_cur);
    r.raised = true;
  }
  return r;
}

}  // namespace sb
