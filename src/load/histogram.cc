#include "load/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace sb {

namespace {
constexpr uint64_t kLinear = 2u << LatencyHistogram::kSubBits;  // 256: counted exactly
constexpr uint64_t kSub = 1u << LatencyHistogram::kSubBits;     // 128 per power of two
}  // namespace

size_t LatencyHistogram::index_of(uint64_t us) {
  if (us < kLinear) return static_cast<size_t>(us);
  int magnitude = 63 - std::countl_zero(us);  // >= kSubBits + 1
  if (magnitude >= kMaxMagnitude) return kBuckets - 1;
  int shift = magnitude - kSubBits;  // (us >> shift) is in [128, 256)
  return static_cast<size_t>(kLinear + static_cast<uint64_t>(magnitude - kSubBits - 1) * kSub +
                             ((us >> shift) - kSub));
}

uint64_t LatencyHistogram::lowest_in(size_t index) {
  if (index < kLinear) return index;
  uint64_t rel = index - kLinear;
  uint64_t octave = rel / kSub;  // magnitude - kSubBits - 1
  uint64_t sub = rel % kSub;
  return (kSub + sub) << (octave + 1);
}

uint64_t LatencyHistogram::highest_in(size_t index) {
  if (index + 1 >= kBuckets) return UINT64_MAX;
  return lowest_in(index + 1) - 1;
}

void LatencyHistogram::record(uint64_t us, uint64_t count) {
  if (count == 0) return;
  counts_[index_of(us)] += count;
  count_ += count;
  sum_ += us * count;
  min_ = std::min(min_, us);
  max_ = std::max(max_, us);
}

void LatencyHistogram::add(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::reset() {
  if (count_ == 0) return;
  counts_.fill(0);
  count_ = 0;
  sum_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
}

uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  // The rank of the value at p: at least 1, so p=0 reads the minimum.
  uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(p / 100.0 * count_)));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      uint64_t lo = lowest_in(i);
      uint64_t hi = i + 1 >= kBuckets ? max_ : highest_in(i);
      uint64_t mid = lo + (hi - lo) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

}  // namespace sb
