// The production LoopEnv: a libuv loop's clock, sb::Timer, ConnectionPool and dns::MxResolver.
#include <uv.h>

#include "dns/resolver.h"
#include "engine/loop_env.h"
#include "loop/timer.h"
#include "loop/worker.h"

namespace sb {

namespace {

// The loop's cached time (uv_now), as MxResolver stamps its answers' expiry.
class LoopClock final : public Clock {
 public:
  explicit LoopClock(uv_loop_s* loop) : loop_(loop) {}
  uint64_t mono_ms() const override { return loop_now_ms(loop_); }
  int64_t wall_ms() const override { return SystemClock::wall_now_ms(); }

 private:
  uv_loop_s* loop_;
};

class UvTimer final : public EngineTimer {
 public:
  UvTimer(uv_loop_s* loop, std::function<void()> cb) : t_(loop), cb_(std::move(cb)) {}
  void start(uint64_t delay_ms) override {
    if (!started_) {
      started_ = true;
      t_.start(delay_ms, cb_);
    } else {
      t_.again(delay_ms);
    }
  }
  void stop() override { t_.stop(); }

 private:
  Timer t_;
  std::function<void()> cb_;
  bool started_ = false;
};

class UvPool final : public EnginePool {
 public:
  UvPool(uv_loop_s* loop, const PoolConfig& cfg, PoolHost& host) : p_(loop, cfg, host) {}
  void poke() override { p_.poke(); }
  void abort(const std::string& why) override { p_.abort(why); }
  void stop(const std::string& why) override { p_.stop(why); }
  size_t open_connections() const override { return p_.open_connections(); }

 private:
  ConnectionPool p_;
};

class UvMxLookup final : public MxLookup {
 public:
  explicit UvMxLookup(std::unique_ptr<dns::MxResolver> r) : r_(std::move(r)) {}
  void resolve(const std::string& domain, dns::MxCallback cb) override {
    uint64_t t0 = dns::dns_thread_cpu_ns();
    r_->resolve_mx(domain, std::move(cb));
    cpu_ns_ += dns::dns_thread_cpu_ns() - t0;
  }
  void shutdown() override { r_->shutdown(); }
  uint64_t queries_started() const override { return r_->resolver().queries_started(); }
  uint64_t cpu_ns() const override { return cpu_ns_ + r_->resolver().cpu_ns(); }
  uint64_t cached_domains() const override { return r_->cached_domains(); }

 private:
  std::unique_ptr<dns::MxResolver> r_;
  uint64_t cpu_ns_ = 0;  // thread CPU in resolve_mx calls (the rest: Resolver::cpu_ns)
};

class UvLoopEnv final : public LoopEnv {
 public:
  explicit UvLoopEnv(uv_loop_s* loop) : loop_(loop), clock_(loop) {}
  const Clock& clock() const override { return clock_; }
  uint64_t hrtime_ns() const override { return uv_hrtime(); }
  std::unique_ptr<EngineTimer> timer(std::function<void()> cb) override {
    return std::make_unique<UvTimer>(loop_, std::move(cb));
  }
  std::unique_ptr<EnginePool> pool(const PoolConfig& cfg, PoolHost& host) override {
    return std::make_unique<UvPool>(loop_, cfg, host);
  }
  Result<std::unique_ptr<MxLookup>> mx_lookup(const DirectLookup& d) override {
    auto r = make_mx_resolver(loop_, d);
    if (!r.ok()) return r.error();
    return std::unique_ptr<MxLookup>(std::make_unique<UvMxLookup>(std::move(r).value()));
  }

 private:
  uv_loop_s* loop_;
  LoopClock clock_;
};

}  // namespace

std::unique_ptr<LoopEnv> make_uv_loop_env(uv_loop_s* loop) {
  return std::make_unique<UvLoopEnv>(loop);
}

}  // namespace sb
