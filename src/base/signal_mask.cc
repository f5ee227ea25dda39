// One thread per run waits for SIGINT and SIGTERM (sigwait); every other thread blocks them.
#include "base/signal_mask.h"

namespace sb {

RunSignals::RunSignals(std::function<void(int n)> on_signal) {
  sigemptyset(&sigs_);
  sigaddset(&sigs_, SIGINT);
  sigaddset(&sigs_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs_, &old_mask_);
  thread_ = std::thread([this, on_signal = std::move(on_signal)] {
    for (int n = 0;;) {
      int sig = 0;
      if (sigwait(&sigs_, &sig) != 0) continue;
      if (over_.load()) return;
      on_signal(n++);
    }
  });
}

RunSignals::~RunSignals() {
  // The waiting thread leaves on the next signal once over_ is set; this one wakes it.
  over_.store(true);
  pthread_kill(thread_.native_handle(), SIGTERM);
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

}  // namespace sb
