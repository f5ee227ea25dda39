// LatencyHistogram: log-linear buckets of microseconds (HdrHistogram's layout), fixed memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace sb {

// Values below 256 µs are counted exactly; above, each power of two is split into 128
// buckets, so a bucket is at most 1/128 of its lower bound wide and a percentile read back
// (the bucket's midpoint) is within 0.4% of a recorded value. Values past ~19 hours count in
// the last bucket. Memory is fixed (about 32 KB) however many values are recorded, so a run
// can keep one for its whole length and one per reporting second.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;  // 128 buckets per power of two
  static constexpr int kMaxMagnitude = 36;
  // The exact range, 128 buckets for each power of two up to 2^36 µs, and one for the rest.
  static constexpr size_t kBuckets =
      (2u << kSubBits) + (kMaxMagnitude - kSubBits - 1) * (1u << kSubBits) + 1;

  void record(uint64_t us, uint64_t count = 1);
  void add(const LatencyHistogram& other);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }  // exact
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The value at percentile p (0..100): the smallest bucket holding at least p% of the
  // values, reported as its midpoint and clamped to [min, max]; 0 when empty.
  uint64_t percentile(double p) const;

  // Bucket arithmetic, public for the tests.
  static size_t index_of(uint64_t us);
  static uint64_t lowest_in(size_t index);
  static uint64_t highest_in(size_t index);

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace sb
