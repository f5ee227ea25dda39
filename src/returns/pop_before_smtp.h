// POP-before-SMTP: a POP3 login before the relay is used, repeated while a mailing runs.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "returns/remote_mailbox.h"

namespace sb {

// One POP3 login and QUIT (no message is read). A refused login is a kConfig error quoting
// the server; cfg.url must be pop3s:// or pop3://.
Status pop3_login(const RemoteMailboxConfig& cfg);

// Logs in again every `interval_ms` on a thread of its own (its curl and loop are private to
// it) until destroyed, because relays forget a POP login after some minutes. A failed
// refresh is printed as a warning: the relay's own refusal then decides the recipients' fate.
class PopRefresher {
 public:
  PopRefresher(RemoteMailboxConfig cfg, uint64_t interval_ms);
  ~PopRefresher();
  PopRefresher(const PopRefresher&) = delete;
  PopRefresher& operator=(const PopRefresher&) = delete;

 private:
  void run();
  RemoteMailboxConfig cfg_;
  uint64_t interval_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sb
