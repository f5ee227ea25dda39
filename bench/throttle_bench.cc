// Micro-benchmark of Throttle::acquire(): unlimited vs limited, plain and shared by 2 threads.
#include <benchmark/benchmark.h>

#include "throttle/throttle.h"

namespace {

constexpr uint64_t kEpoch = 1'709'510'400'000;

sb::ThrottleConfig limited_config() {
  // Limits far above what the loop reaches in ns steps, so every call takes the full
  // check-and-charge path and is granted.
  sb::ThrottleConfig c;
  c.rate = sb::RateSpec{1'000'000'000, 1'000};
  c.burst = 1;
  c.daily_limit = 1'000'000'000'000;
  return c;
}

void BM_AcquireUnlimited(benchmark::State& state) {
  sb::Throttle t(sb::ThrottleConfig{});
  uint64_t now = kEpoch;
  for (auto _ : state) benchmark::DoNotOptimize(t.acquire(++now));
}
BENCHMARK(BM_AcquireUnlimited);

void BM_AcquireLimited(benchmark::State& state) {
  sb::Throttle t(limited_config());
  uint64_t now = kEpoch;
  for (auto _ : state) benchmark::DoNotOptimize(t.acquire(++now));
}
BENCHMARK(BM_AcquireLimited);

void BM_AcquireLimitedBurstLog(benchmark::State& state) {
  // The exact sliding-window log path (N <= 100k, burst > 1).
  sb::ThrottleConfig c;
  c.rate = sb::RateSpec{100'000, 1};
  c.burst = 100;
  sb::Throttle t(c);
  uint64_t now = kEpoch;
  for (auto _ : state) benchmark::DoNotOptimize(t.acquire(now += 1));
}
BENCHMARK(BM_AcquireLimitedBurstLog);

void BM_AcquireRefused(benchmark::State& state) {
  sb::ThrottleConfig c;
  c.rate = sb::RateSpec{30, 60'000};
  sb::Throttle t(c);
  (void)t.acquire(kEpoch);
  for (auto _ : state) benchmark::DoNotOptimize(t.acquire(kEpoch + 1));
}
BENCHMARK(BM_AcquireRefused);

void BM_SharedUnlimited(benchmark::State& state) {
  static sb::SharedThrottle* t = nullptr;
  if (state.thread_index() == 0) t = new sb::SharedThrottle(sb::ThrottleConfig{});
  uint64_t now = kEpoch;
  for (auto _ : state) benchmark::DoNotOptimize(t->acquire(++now));
  if (state.thread_index() == 0) {
    delete t;
    t = nullptr;
  }
}
BENCHMARK(BM_SharedUnlimited)->Threads(1)->Threads(2)->UseRealTime();

void BM_SharedLimited(benchmark::State& state) {
  static sb::SharedThrottle* t = nullptr;
  if (state.thread_index() == 0) t = new sb::SharedThrottle(limited_config());
  uint64_t now = kEpoch;
  for (auto _ : state) benchmark::DoNotOptimize(t->acquire(++now));
  if (state.thread_index() == 0) {
    delete t;
    t = nullptr;
  }
}
BENCHMARK(BM_SharedLimited)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
