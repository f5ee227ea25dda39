// The retry queue and the backoff function.
#include "engine/retry_queue.h"

#include <algorithm>

namespace sb {

uint64_t backoff_ms(uint32_t level, uint32_t base_ms, uint32_t max_ms, uint64_t random) {
  uint64_t base = static_cast<uint64_t>(base_ms) << std::min<uint32_t>(level, 20);
  base = std::min<uint64_t>(base, max_ms);
  uint64_t jitter = base / 4 == 0 ? 0 : random % (base / 4);
  return base + jitter;
}

void RetryQueue::pop_due(uint64_t now_ms, std::vector<Job*>& out) {
  while (!q_.empty() && q_.begin()->first <= now_ms) {
    out.push_back(q_.begin()->second);
    q_.erase(q_.begin());
  }
}

void RetryQueue::take_all(std::vector<Job*>& out) {
  for (auto& [due, j] : q_) out.push_back(j);
  q_.clear();
}

}  // namespace sb
