// The `smtpblast sink` server: SinkEngine connections accepted on a uv loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "smtp/sink_engine.h"

namespace sb {

struct SinkServerConfig {
  std::string listen = "127.0.0.1:2525";
  SinkConfig engine;
  std::string record_path;         // with engine.record: accepted messages are appended here
  uint32_t stats_interval_ms = 0;  // print counters to stderr this often; 0 = only at exit
};

// Runs until SIGINT/SIGTERM (or `stop` becomes true); prints the counters as one JSON line
// on stdout at exit. Returns a kConfig/kSys error when it cannot listen.
Status run_sink(const SinkServerConfig& cfg, std::atomic<bool>* stop = nullptr);

// One JSON line; uptime_ms: since the sink began listening.
std::string sink_counters_json(const SinkCounters& c, uint64_t uptime_ms);

}  // namespace sb
