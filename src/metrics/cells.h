// Metric cells for hot paths: counters, gauges and fixed-bucket histograms that one thread
// writes and a scrape on another thread reads, with no lock and no read-modify-write.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace sb::metrics {

// Written by exactly one thread (its owner), read by any. An increment is a relaxed load and
// store, which compiles to a plain add (no lock prefix, unlike fetch_add): it costs what a
// uint64_t += costs. A reader sees a value that was current a moment ago, never a torn one.
class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A level (connections open, messages in flight), set by its one owner.
class Gauge {
 public:
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Upper bounds of a histogram's buckets in microseconds, ascending; +Inf is implied.
using Bounds = std::span<const uint64_t>;

// Latencies in seconds as Prometheus wants them, from 1 ms (a cached DNS answer, a sink on
// loopback) to 60 s (a slow MX's end-of-data reply).
inline constexpr uint64_t kLatencyBoundsUs[] = {
    1'000,   2'500,     5'000,     10'000,    25'000,     50'000,     100'000,   250'000,
    500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000, 60'000'000};

// One writer's histogram; scrapes add writers' histograms into HistogramCounts.
class Histogram {
 public:
  explicit Histogram(Bounds bounds)
      : bounds_(bounds), buckets_(std::make_unique<Counter[]>(bounds.size() + 1)) {}
  void observe_us(uint64_t us) {
    size_t i = 0;
    while (i < bounds_.size() && us > bounds_[i]) ++i;
    buckets_[i].add();
    sum_us_.add(us);
  }
  Bounds bounds() const { return bounds_; }
  uint64_t bucket(size_t i) const { return buckets_[i].value(); }  // i <= bounds().size()
  uint64_t sum_us() const { return sum_us_.value(); }

 private:
  Bounds bounds_;
  std::unique_ptr<Counter[]> buckets_;  // per bucket, not cumulative; the last is +Inf
  Counter sum_us_;
};

// Histograms with the same bounds, added up at scrape time.
struct HistogramCounts {
  explicit HistogramCounts(Bounds b) : bounds(b), buckets(b.size() + 1, 0) {}
  void add(const Histogram& h) {
    for (size_t i = 0; i < buckets.size(); ++i) {
      uint64_t n = h.bucket(i);
      buckets[i] += n;
      count += n;
    }
    sum_us += h.sum_us();
  }
  Bounds bounds;
  std::vector<uint64_t> buckets;  // not cumulative; the last is +Inf
  uint64_t sum_us = 0;
  uint64_t count = 0;
};

}  // namespace sb::metrics
