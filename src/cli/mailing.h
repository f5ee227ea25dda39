// Runs one mailing: task store thread, worker loops with connection pools, progress, summary.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "smtp/session.h"
#include "throttle/throttle.h"

namespace sb {

struct MailingConfig {
  std::string task_path;
  std::string template_path;
  std::string recipients_path;
  const struct RelaySetup* relay = nullptr;  // address, TLS, credentials (prepare_relay)
  std::string from;
  uint32_t connections = 1;
  uint32_t per_connection = 100;
  uint32_t workers = 1;
  uint32_t max_attempts = 3;
  uint32_t retry_delay_ms = 5000;
  uint32_t window = 32;
  bool pipelining = true;
  bool chunking = true;
  bool force = false;
  bool progress = false;  // a progress line on stderr (only when it is a terminal)
  ThrottleFlags throttle;  // --rate, --burst, --daily-limit, --block-*, --connect-rate
  bool wait_daily = false;  // --wait: sleep through a reached daily limit instead of stopping
  Timeouts timeouts;
};

// Exit codes: 0 every recipient sent (or suppressed), 1 some failed or still deferred or
// unsent, 2 configuration/environment error before or instead of sending.
int run_mailing(const MailingConfig& cfg);

class TaskStore;
// Imports a recipient CSV into a task, printing the report; 0, or 2 on error.
int import_recipients(TaskStore& store, const std::string& path);

}  // namespace sb
