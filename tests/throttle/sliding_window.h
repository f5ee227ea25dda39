// Test helper: the most events in any half-open window [t, t+len) of a sorted time list.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace sb::testing {

// `times` sorted ascending; `weights` (optional, same size) count each event that many times.
inline uint64_t max_in_window(const std::vector<uint64_t>& times, uint64_t len,
                              const std::vector<uint64_t>* weights = nullptr) {
  uint64_t best = 0, cur = 0;
  size_t lo = 0;
  for (size_t hi = 0; hi < times.size(); ++hi) {
    cur += weights ? (*weights)[hi] : 1;
    while (times[hi] - times[lo] >= len) cur -= weights ? (*weights)[lo++] : (lo++, 1);
    if (cur > best) best = cur;
  }
  return best;
}

}  // namespace sb::testing
