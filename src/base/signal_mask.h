// Who takes SIGINT and SIGTERM: one waiting thread per run, never a helper thread.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>
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

namespace sb {

// SIGINT and SIGTERM for the length of a run: blocked in the calling thread (and so in every
// thread it starts meanwhile), and waited for by one thread of its own that calls
// on_signal(n) for each, n counting from 0. The destructor ends that thread and restores the
// mask, also when the run leaves early.
class RunSignals {
 public:
  explicit RunSignals(std::function<void(int n)> on_signal);
  ~RunSignals();
  RunSignals(const RunSignals&) = delete;
  RunSignals& operator=(const RunSignals&) = delete;

 private:
  sigset_t sigs_{};
  sigset_t old_mask_{};
  std::atomic<bool> over_{false};
  std::thread thread_;
};

}  // namespace sb
