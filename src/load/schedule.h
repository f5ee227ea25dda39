// LoadSchedule: when each transaction of a load run is due (open loop) and which ones count.
#pragma once

#include <cstdint>

#include "base/clock.h"

namespace sb {

struct ScheduleConfig {
  double rate = 0;           // transactions per second; 0: closed loop (as fast as taken)
  uint64_t warmup_us = 0;    // run this long first; what starts then is not measured
  uint64_t duration_us = 0;  // the measured part lasts this long (0: until `messages`)
  uint64_t messages = 0;     // or this many measured transactions (0: until `duration_us`)
  // One worker's share of the run (--workers): open loop, the slots shard, shard + shards,
  // shard + 2·shards ... of the one timeline (so the workers together keep its spacing);
  // closed loop with `messages`, about 1/shards of them.
  uint32_t shard = 0;
  uint32_t shards = 1;
};

// Open loop (rate > 0): transaction k is due at start + k / rate whether or not the server
// keeps up, and its latency is measured from that intended time, not from when a connection
// was free to start it: a stalled server then shows as latency of everything that queued
// behind it (coordinated omission corrected, as wrk2 does). The backlog is a count, so a long
// stall costs no memory. Closed loop: a transaction is due whenever one is asked for, and its
// intended time is that moment.
// Pure: the clock is read, never slept on; the driver arms its timer from next_due_us().
class LoadSchedule {
 public:
  LoadSchedule(const Clock& clock, const ScheduleConfig& cfg);

  void start();                     // t = 0 of the run
  void start_at(uint64_t mono_us);  // the same, at a time every shard shares
  struct Slot {
    uint64_t intended_us = 0;  // on the clock's mono_us() scale
    bool measured = false;     // after the warm-up
  };
  // The next transaction, if one is due now and the run is not over.
  bool take(Slot& out);
  // When the next transaction falls due (mono µs); now when one already is; 0 when none
  // will (every one taken, or closed).
  uint64_t next_due_us() const;
  // Due but not taken yet (open loop).
  uint64_t backlog() const;
  // No more transactions will be taken: every one was, or close() was called.
  bool exhausted() const;
  // The run's time is up: nothing more is taken; returns how many that were due (or will be
  // due) never started.
  uint64_t close();
  // Transactions still to be taken; UINT64_MAX when only the time bounds them.
  uint64_t remaining() const;

  uint64_t start_us() const { return start_us_; }
  uint64_t measure_start_us() const { return start_us_ + cfg_.warmup_us; }
  // When the measured part ends by the timeline: the end of --duration, or (open loop with
  // --messages) when the last transaction is due plus one interval; 0 when unknown (closed
  // loop with --messages).
  uint64_t nominal_end_us() const;
  uint64_t taken() const { return taken_; }
  uint64_t measured_taken() const { return measured_taken_; }
  bool open_loop() const { return cfg_.rate > 0; }
  double rate() const { return cfg_.rate; }

 private:
  // Open loop. Slot k of the whole timeline (all shards) is due at start + k / rate; this
  // shard's j-th slot is the timeline's shard + j·shards.
  uint64_t due_at_global(uint64_t k) const;
  uint64_t global_index(uint64_t j) const { return cfg_.shard + j * cfg_.shards; }
  uint64_t local_count(uint64_t global_n) const;  // of the timeline's first n, this shard's
  uint64_t due_count(uint64_t now_us) const;      // this shard's slots due by now

  const Clock& clock_;
  ScheduleConfig cfg_;
  uint64_t start_us_ = 0;
  uint64_t warm_slots_ = 0;    // open loop: the timeline's slots before the measured part
  uint64_t global_total_ = 0;  // open loop: the timeline's slots
  uint64_t total_ = 0;         // open loop: this shard's slots
  uint64_t taken_ = 0;
  uint64_t measured_taken_ = 0;
  bool started_ = false;
  bool closed_ = false;
};

}  // namespace sb
