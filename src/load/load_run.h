// The load generator: transactions on a schedule through the connection pool, measured.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "load/histogram.h"
#include "load/schedule.h"
#include "smtp/pool.h"

namespace sb {

struct LoadConfig {
  // Relay, TLS, credentials and timeouts as send builds them (pool_config_for), plus the
  // connections, messages per connection, window, pipelining and chunking.
  PoolConfig pool;
  ScheduleConfig schedule;
  std::string mail_from;
  std::string rcpt_domain = "example.com";  // generated recipients: user{n}@rcpt_domain
  std::vector<std::string> recipients;      // --recipients: used in turn instead
  uint32_t rcpts_per_msg = 1;
  // The message, rendered once: for DATA (dot-stuffed) and for BDAT (as it is).
  std::string body_data;
  std::string body_bdat;
  bool eight_bit = false;
  bool smtputf8 = false;
  // After the run's time is up, what is in flight may take this long before its
  // connections are dropped (and it counts as errors).
  uint32_t drain_ms = 10000;
  // Worker threads, one libuv loop each, with the connections and the schedule split
  // between them (at most one per connection).
  uint32_t workers = 1;
  bool json = false;      // per-second JSON lines on `out`
  bool progress = false;  // per-second text lines on stderr (a terminal)
};

struct LatencyFigures {  // microseconds
  uint64_t count = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0, min = 0;
  double mean = 0;
};
LatencyFigures latency_figures(const LatencyHistogram& h);

struct ErrorCount {
  std::string kind;  // "reply 4xx", "session timeout", ...
  uint64_t count = 0;
  std::string example;  // the first one's text (server text, escaped when printed)
};

struct LoadSummary {
  bool open_loop = false;
  double asked_rate = 0;     // per second; 0 in a closed loop
  double achieved_rate = 0;  // measured transactions accepted per second of the measured part
  double elapsed_s = 0;      // the measured part, until its last completion
  uint64_t planned = 0;      // measured transactions the schedule held (open loop)
  uint64_t started = 0;      // measured transactions started
  uint64_t completed = 0;    // measured transactions ended (accepted or not)
  uint64_t sent = 0;         // ... every recipient accepted
  uint64_t failed = 0;       // ... some recipient not accepted
  uint64_t not_started = 0;  // due before the end but never started (the server lagged)
  uint64_t warmup = 0;       // transactions of the warm-up (not measured)
  uint64_t recipients_sent = 0;
  uint64_t bytes = 0;  // message octets of the accepted transactions
  LatencyFigures latency, connect, tls;
  uint64_t connections_opened = 0, connections_failed = 0, max_open = 0;
  std::vector<std::pair<int, uint64_t>> replies;  // reply code -> recipients, ascending
  std::vector<ErrorCount> errors;
  uint64_t errors_total = 0;
  std::string failure;       // the pool gave up: why
  bool interrupted = false;  // SIGINT/SIGTERM ended it early: measured until the last reply
  bool rate_met = true;
  int exit_code = 0;  // 0: rate met (open loop, within 1%) and no error; else 1
  uint32_t workers = 1;
};

// One reporting second.
struct SecondReport {
  uint64_t second = 0;  // 1, 2, ... from the start (the warm-up included)
  bool warmup = false;
  double rate = 0;  // transactions completed per second in it
  double asked_rate = 0;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t open_connections = 0;
  uint64_t backlog = 0;  // due and not started (open loop)
  uint64_t in_flight = 0;
  LatencyFigures latency;
};

// Runs the load on worker loops of its own (cfg.workers) and returns when it is over. Per-second
// reports go to `out` (JSON lines) and/or stderr (text) as the config says; the summary is
// returned.
LoadSummary run_load(const LoadConfig& cfg, std::FILE* out);

}  // namespace sb
