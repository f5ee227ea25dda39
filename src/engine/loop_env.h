// LoopEnv: what a worker engine needs from its loop (clock, timers, pools, MX lookups), as
// interfaces, so the engine runs on real libuv loops in production and on a FakeClock in tests.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/clock.h"
#include "dns/mx_resolver.h"
#include "engine/direct_lookup.h"
#include "loop/result.h"
#include "smtp/pool.h"

struct uv_loop_s;

namespace sb {

// A one-shot timer whose callback is fixed at creation (nothing allocated per start).
// Destroying it stops it; the callback never runs afterwards.
class EngineTimer {
 public:
  virtual ~EngineTimer() = default;
  virtual void start(uint64_t delay_ms) = 0;  // restarting replaces the schedule
  virtual void stop() = 0;
};

// The connection pool of one destination (production: smtp ConnectionPool). It drives the
// PoolHost / SessionHost contract of its host: next_txn, rcpt_outcome exactly once per
// recipient handed out, txn_done, session_ended, pool_failed, pool_idle.
class EnginePool {
 public:
  virtual ~EnginePool() = default;
  virtual void poke() = 0;
  virtual void abort(const std::string& why) = 0;
  virtual void stop(const std::string& why) = 0;
  virtual size_t open_connections() const = 0;
};

// MX lookups (production: dns::MxResolver). The callback runs exactly once, on the loop, never
// inside resolve().
class MxLookup {
 public:
  virtual ~MxLookup() = default;
  virtual void resolve(const std::string& domain, dns::MxCallback cb) = 0;
  // Completes every pending lookup now (kTemporary) and frees the resolver's handles.
  virtual void shutdown() = 0;
  virtual uint64_t queries_started() const { return 0; }
  virtual uint64_t cpu_ns() const { return 0; }  // resolve() calls and the resolver's own work
  virtual uint64_t cached_domains() const { return 0; }
};

class LoopEnv {
 public:
  virtual ~LoopEnv() = default;
  // mono_ms: the loop's time (what MxResult::expires_ms is in); wall_ms: the system clock.
  virtual const Clock& clock() const = 0;
  // A fine-grained reading for the render slice (CPU spent rendering per loop iteration).
  virtual uint64_t hrtime_ns() const = 0;
  virtual std::unique_ptr<EngineTimer> timer(std::function<void()> cb) = 0;
  virtual std::unique_ptr<EnginePool> pool(const PoolConfig& cfg, PoolHost& host) = 0;
  virtual Result<std::unique_ptr<MxLookup>> mx_lookup(const DirectLookup& d) = 0;
};

// The production environment of one worker loop: sb::Timer, ConnectionPool, dns::MxResolver.
std::unique_ptr<LoopEnv> make_uv_loop_env(uv_loop_s* loop);

}  // namespace sb
