// LoadShard: one worker loop's part of a load run — its connections, its slice of the
// schedule, and its own counters and histograms, merged only when reported.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "base/clock.h"
#include "load/histogram.h"
#include "load/load_run.h"
#include "load/schedule.h"
#include "loop/timer.h"
#include "smtp/pool.h"

struct uv_loop_s;

namespace sb {

// What a shard counted over the whole run. Read by the coordinator once the shard finished.
struct ShardResult {
  struct Error {
    uint64_t count = 0;
    std::string example;
  };
  LatencyHistogram latency, connect, tls;
  std::array<uint64_t, 1000> replies{};  // reply code -> recipients
  std::map<std::string, Error> errors;
  uint64_t errors_total = 0;
  uint64_t started = 0, completed = 0, sent = 0, failed = 0, warmup = 0;
  uint64_t recipients_sent = 0, bytes = 0, not_started = 0, measured_taken = 0;
  uint64_t connections_ready = 0, connections_opened = 0, connections_failed = 0;
  uint64_t last_completion_us = 0;
  std::string failure;  // its pool gave up: why
  bool interrupted = false;
};

// One reporting second of a shard; the coordinator adds the shards' parts up.
struct SecondPart {
  uint64_t completed = 0, errors = 0, open_connections = 0, backlog = 0, in_flight = 0;
  LatencyHistogram latency;
};

// Everything but construction runs on the shard's loop thread. No state is shared with other
// shards, so the per-message path takes no lock and touches no atomic.
class LoadShard final : public PoolHost {
 public:
  // `finished` runs on the loop thread once, when the shard's part of the run is over.
  LoadShard(const LoadConfig& cfg, const ScheduleConfig& sched, uint32_t connections,
            uint64_t first_rcpt, uint64_t rcpt_stride, std::function<void()> finished);
  ~LoadShard() override;

  void begin(uv_loop_s* loop, uint64_t start_us);
  void take_second(SecondPart& out);            // this second's figures, then reset
  void on_signal(bool first);                   // SIGINT/SIGTERM: the first stops, a second drops
  void stop_from_peer(const std::string& why);  // another shard's pool gave up
  void teardown();                              // timers and pool go (the run is over)
  const ShardResult& result() const { return r_; }
  const LoadSchedule& schedule() const { return sched_; }

  // PoolHost.
  Next next_txn(bool bdat, Txn*& out) override;
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override;
  void txn_done(Txn& t) override;
  bool has_work() override;
  void pool_failed(const std::string& why, bool fatal) override;
  void pool_idle() override { finish(); }
  bool reserve_connection() override;
  void session_ready(const Session& s) override;
  void session_ended(const Session& s, const std::string& tls) override;

 private:
  struct TxnSlot;
  void arm_tick();
  void on_tick();
  void on_end();
  void begin_stop(const std::string& why);
  void on_drain();
  void note_error(const std::string& kind, std::string_view example, uint64_t n = 1);
  TxnSlot* slot_of(const Txn& t);
  TxnSlot* acquire();
  void release(TxnSlot* s);
  void fill(TxnSlot& s, bool bdat);
  void finish();

  const LoadConfig& cfg_;
  PoolConfig pool_cfg_;
  SystemClock clock_;
  LoadSchedule sched_;
  std::function<void()> finished_cb_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<Timer> tick_, end_, drain_;
  std::string_view piece_data_[1];
  std::string_view piece_bdat_[1];
  std::vector<std::unique_ptr<TxnSlot>> slots_;
  std::vector<TxnSlot*> free_;
  uint64_t next_rcpt_ = 0;
  uint64_t rcpt_stride_ = 1;

  ShardResult r_;
  SecondPart second_;
  uint64_t in_flight_ = 0;
  // What the open connections will still take, so that none opens with nothing left for it:
  // connections opening (each takes at least one), and the per-connection allowance of the
  // ready ones (transactions taken by all sessions minus those of the sessions that ended).
  uint64_t opening_ = 0, txns_taken_ = 0, txns_of_ended_ = 0;
  // What one ready connection takes at once at most: its pipeline window, or fewer when the
  // cap on octets in flight binds first (see has_work).
  uint64_t per_round_ = 1;
  std::unordered_set<const Session*> ready_;  // counted as ready (session_ready), still open
  bool stopping_ = false;
  bool finished_ = false;
};

}  // namespace sb
