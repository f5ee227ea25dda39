// Starting a helper thread that never takes the run's signals.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <utility>

namespace sb {

// Runs `start` (which creates a thread) with every signal blocked, so the new thread inherits
// that mask. SIGINT and SIGTERM belong to the run: `send` waits for them with sigwait on a
// thread of its own once its workers start. A helper thread started earlier (the metrics
// server, a PostgreSQL lease keeper or rate refill) that did not block them could take one
// with the default action, and the process would die instead of stopping cleanly.
template <typename Start>
decltype(auto) with_signals_blocked(Start&& start) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  struct Restore {
    sigset_t mask;
    ~Restore() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
  } restore{old};
  return std::forward<Start>(start)();
}

}  // namespace sb
