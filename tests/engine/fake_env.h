// A LoopEnv on a FakeClock for engine tests: timers fire when the test advances the clock,
// pools play seeded SMTP outcomes through the PoolHost contract, MX lookups answer from a table.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "engine/loop_env.h"
#include "loop/outbox.h"
#include "smtp/pool.h"
#include "smtp/session.h"

namespace sb::test {

class FakeLoop;

class FakeTimer final : public EngineTimer {
 public:
  FakeTimer(FakeLoop& loop, std::function<void()> cb);
  ~FakeTimer() override;
  void start(uint64_t delay_ms) override;
  void stop() override { due_ = 0; }
  uint64_t due() const { return due_; }
  void fire() {
    due_ = 0;
    cb_();
  }

 private:
  FakeLoop& loop_;
  std::function<void()> cb_;
  uint64_t due_ = 0;  // mono ms; 0: not armed
};

// What a fake server does with one recipient (or the whole transaction).
enum class FakeReply { k250, k421, k451, k452, k550, k554, kDropBeforeDot, kDropAfterDot };

struct FakeNetPlan {
  // Weights of each FakeReply (index by enum); all zero: always 250.
  std::vector<uint32_t> weights = {1, 0, 0, 0, 0, 0, 0, 0};
  // Destinations (pool names containing this) whose every connection fails.
  std::string dead;
  double connect_failure = 0;  // chance that a new connection fails to connect
};

class FakePool;

// One worker's loop: the clock, the timers, the pools, the MX table.
class FakeLoop final : public LoopEnv {
 public:
  FakeLoop(FakeClock& clock, uint64_t seed) : clock_(clock), rng_(seed) {}
  const Clock& clock() const override { return clock_; }
  uint64_t hrtime_ns() const override { return 0; }
  std::unique_ptr<EngineTimer> timer(std::function<void()> cb) override {
    return std::make_unique<FakeTimer>(*this, std::move(cb));
  }
  std::unique_ptr<EnginePool> pool(const PoolConfig& cfg, PoolHost& host) override;
  Result<std::unique_ptr<MxLookup>> mx_lookup(const DirectLookup& d) override;

  // Fires the timers due now; true when one fired.
  bool fire_due();
  // The earliest armed timer (0: none).
  uint64_t next_due() const;
  // Lets every pool's sessions do one round of work; true when anything happened.
  bool pump();
  // Answers the MX lookups asked for; true when one was answered.
  bool answer_lookups();

  FakeNetPlan plan;
  // MX answers by domain: kOk with one host, or the status given here (default kOk).
  std::map<std::string, dns::MxStatus> mx_status;
  uint64_t mx_ttl_ms = 60000;
  uint64_t txns = 0;  // transactions run by this loop's pools

  std::set<FakeTimer*> timers;
  std::set<FakePool*> pools;
  std::vector<std::pair<std::string, dns::MxCallback>> lookups;
  FakeClock& clock_;
  std::mt19937_64 rng_;
};

class FakePool final : public EnginePool {
 public:
  FakePool(FakeLoop& loop, const PoolConfig& cfg, PoolHost& host);
  ~FakePool() override;
  void poke() override { poked_ = true; }
  void abort(const std::string& why) override;
  void stop(const std::string& why) override;
  size_t open_connections() const override { return sessions_; }
  bool pump();

  uint64_t connections_opened = 0;

 private:
  void end_session();
  bool run_txn(Txn& t);
  FakeReply draw();

  FakeLoop& loop_;
  PoolConfig cfg_;
  PoolHost& host_;
  SessionConfig scfg_;
  Outbox outbox_;
  Session dummy_;  // what session_ended is given
  size_t sessions_ = 0;
  size_t busy_ = 0;  // sessions in this pump round
  bool poked_ = true;
  bool failed_ = false;
  bool stopping_ = false;
  uint32_t failures_ = 0;
};

}  // namespace sb::test
