// Destination: one route's queue (the relay, or one set of mail exchangers), its connection
// pool, its backoff after the pool failed, and its place in the worker's starved list.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "engine/loop_env.h"
#include "metrics/run_metrics.h"
#include "smtp/pool.h"
#include "throttle/throttle.h"

namespace sb {

class Destination;
struct Job;

// The worker engine as its destinations see it: the pool's calls, with the destination named.
class DestinationOwner {
 public:
  virtual ~DestinationOwner() = default;
  virtual SessionHost::Next next_txn(Destination& d, bool bdat, Txn*& out) = 0;
  virtual void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) = 0;
  virtual void txn_done(Txn& t) = 0;
  virtual void dest_failed(Destination& d, const std::string& why, bool fatal) = 0;
  virtual void dest_idle(Destination& d) = 0;
  virtual uint64_t connect_delay_ms() = 0;
  virtual bool reserve_connection(Destination& d) = 0;
  virtual void connection_ended(Destination& d, const Session& s) = 0;
  virtual void backoff_over(Destination& d) = 0;
  virtual void tls_established(bool resumed) { (void)resumed; }
};

// Owned by one worker loop, so its limits need no locks.
class Destination final : public PoolHost {
 public:
  Destination(DestinationOwner& owner, LoopEnv& env, std::string key, const PoolConfig& pcfg,
              std::unique_ptr<Throttle> push = nullptr);
  ~Destination() override;
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;

  const std::string& key() const { return key_; }
  // Opens the pool (connections open when poked with work queued).
  void start();

  // The queue.
  void push(Job* j) { ready_.push_back(j); }
  bool empty() const { return ready_.empty(); }
  size_t size() const { return ready_.size(); }
  Job* at(size_t i) const { return ready_[i]; }
  Job* front() const { return ready_.front(); }
  void pop_front() { ready_.pop_front(); }
  std::deque<Job*>& queue() { return ready_; }

  // Direct: this destination's own push-back (AIMD on "slow down", a pause on a quota
  // reply): one receiver asking us to slow down must not slow the others. Null for the relay.
  Throttle* push_back() { return push_.get(); }

  // --direct: this destination's counts for the metrics (its own label, or "other").
  void set_cells(metrics::DestinationCells* c) { cells_ = c; }
  metrics::DestinationCells* cells() const { return cells_; }
  // A wait for the throttle begins (true the first time a message is refused since the last
  // one was let go: a refusal asked again on every poke is one wait), or ends.
  bool begin_wait() {
    const bool fresh = !waiting_;
    waiting_ = true;
    return fresh;
  }
  void end_wait() { waiting_ = false; }

  // The pool.
  void poke() {
    if (pool_ != nullptr) pool_->poke();
  }
  void stop_pool(const std::string& why) {
    if (pool_) pool_->stop(why);
  }
  void abort_pool(const std::string& why) {
    if (pool_) pool_->abort(why);
  }
  size_t open_connections() const { return pool_ ? pool_->open_connections() : 0; }
  void close_pool() { pool_.reset(); }

  // Backoff: the pool failed; the queue waits `delay_ms` together, then a fresh pool.
  bool backing_off() const { return backing_off_; }
  // The delay level of the next backoff (failures in a row), then one more.
  uint32_t next_backoff_level() { return backoff_level_++; }
  void reset_backoff_level() { backoff_level_ = 0; }
  void begin_backoff(uint64_t delay_ms);
  // The backoff is over: a fresh pool (the failed one refuses to open connections); never
  // called inside the old pool's callbacks.
  void end_backoff();

  // In the worker's starved list (wants a connection; the worker's budget is used up).
  bool starved() const { return starved_; }
  void set_starved(bool s) { starved_ = s; }

  // PoolHost / SessionHost: the owner does the work.
  Next next_txn(bool bdat, Txn*& out) override { return owner_.next_txn(*this, bdat, out); }
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override {
    owner_.rcpt_outcome(t, i, v, code, text);
  }
  void txn_done(Txn& t) override { owner_.txn_done(t); }
  bool has_work() override { return !ready_.empty() && !backing_off_; }
  void pool_failed(const std::string& why, bool fatal) override {
    owner_.dest_failed(*this, why, fatal);
  }
  void pool_idle() override { owner_.dest_idle(*this); }
  uint64_t connect_delay_ms() override { return owner_.connect_delay_ms(); }
  bool reserve_connection() override { return owner_.reserve_connection(*this); }
  void session_ended(const Session& s, const std::string& tls) override {
    (void)tls;
    owner_.connection_ended(*this, s);
  }
  void tls_established(bool resumed) override { owner_.tls_established(resumed); }

 private:
  DestinationOwner& owner_;
  LoopEnv& env_;
  std::string key_;  // the route key ("relay" for the relay)
  PoolConfig pcfg_;
  std::unique_ptr<EnginePool> pool_;
  std::unique_ptr<Throttle> push_;
  std::deque<Job*> ready_;
  std::unique_ptr<EngineTimer> timer_;  // the backoff
  bool backing_off_ = false;            // waiting out a backoff; its pool has failed
  uint32_t backoff_level_ = 0;          // failures in a row without a session reaching MAIL
  bool starved_ = false;
  metrics::DestinationCells* cells_ = nullptr;
  bool waiting_ = false;
};

}  // namespace sb
