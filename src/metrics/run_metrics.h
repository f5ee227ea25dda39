// RunMetrics: the metrics of one mailing run (send; later load and sms send): cells that the
// worker loops and the coordinator write without locks, and their Prometheus exposition.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/cells.h"

namespace sb::metrics {

// Why a message had to wait before it could start (one count per refusal).
enum class Wait : uint8_t {
  kRate,         // --rate
  kAdaptive,     // the rate cut after push-back
  kBlockPause,   // --block-size / --block-pause
  kDaily,        // --daily-limit
  kQuotaPause,   // a provider's quota reply paused sending
  kAccount,      // the sending account's share of its daily limit
  kDestination,  // --direct: one destination's own push-back pace
  kCount
};
const char* wait_name(Wait w);

enum class Outcome : uint8_t { kSent, kFailed, kDeferred, kSuppressed, kCount };
const char* outcome_name(Outcome o);

// One destination's recipients by outcome, as counted on the worker that owns it.
struct DestinationCells {
  std::string label;
  std::array<Counter, 3> outcomes;  // sent, failed, deferred
};

// What one worker loop counts; only that loop writes it.
struct alignas(64) WorkerCells {
  Gauge in_flight;         // transactions under way
  Gauge connections_open;  // connections open (or opening) on this loop
  Counter connections_opened;
  Counter tls_full, tls_resumed;
  std::array<Counter, static_cast<size_t>(Wait::kCount)> waits;
  Counter granted;  // messages the throttle let start
  Counter pushback_slowdown, pushback_quota;
  Counter dns_ok, dns_temporary, dns_permanent;
  Histogram dns_latency{kLatencyBoundsUs};
  Histogram delivery_latency{kLatencyBoundsUs};
  DestinationCells other;  // destinations past the label cap
};

// What the coordinator counts (outcomes as committed to the task, so they match `status`).
struct RunCells {
  std::array<Counter, static_cast<size_t>(Outcome::kCount)> outcomes;
  Counter reply_2xx, reply_4xx, reply_5xx;
  Gauge remaining;                // -1: not known
  Gauge daily_limit, daily_used;  // daily_limit 0: no daily limit
};

class RunMetrics {
 public:
  // `max_destinations`: destinations with a label of their own; the rest are "other".
  explicit RunMetrics(size_t max_destinations = 20);

  // Worker `i`'s cells (made on first use, under a lock: once per worker, not per message).
  WorkerCells& worker(size_t i);
  RunCells& run() { return run_; }
  // The cells of destination `label` on worker `i`: its own while fewer than
  // max_destinations labels exist (the first destinations of the run keep theirs for the
  // whole run, so every series only grows), else the worker's "other". Once per destination.
  DestinationCells& destination(size_t i, std::string_view label);
  // The run is over (metrics stay served during --metrics-linger).
  void set_finished() { finished_.store(true); }
  // Whether direct delivery's per-destination family is shown.
  void set_direct(bool on) { direct_.store(on); }

  // The whole exposition; any thread.
  std::string expose() const;

 private:
  const size_t max_destinations_;
  mutable std::mutex mu_;  // guards the vectors below, not the cells in them
  std::vector<std::unique_ptr<WorkerCells>> workers_;
  struct Slot {
    size_t worker;
    std::unique_ptr<DestinationCells> cells;
  };
  std::vector<Slot> dests_;
  size_t labels_ = 0;
  RunCells run_;
  std::atomic<bool> finished_{false};
  std::atomic<bool> direct_{false};
};

}  // namespace sb::metrics
