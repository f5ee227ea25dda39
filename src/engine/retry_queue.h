// RetryQueue: recipients waiting out a retry delay, by due time; and the pure backoff function.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <vector>

namespace sb {

struct Job;

// Exponential backoff with jitter, so recipients deferred together do not come back together:
// base, 2x, 4x ... capped at max_ms, plus up to a quarter more. `random` is any 64-bit draw.
// Pure: the caller owns the random source.
uint64_t backoff_ms(uint32_t level, uint32_t base_ms, uint32_t max_ms, uint64_t random);

// Due times are in the worker's monotonic milliseconds. Not thread-safe (one loop owns it).
class RetryQueue {
 public:
  void push(Job* j, uint64_t due_ms) { q_.emplace(due_ms, j); }
  // Appends the jobs due at `now_ms` to `out`, earliest first, and removes them.
  void pop_due(uint64_t now_ms, std::vector<Job*>& out);
  // The earliest due time; 0 when empty.
  uint64_t next_due() const { return q_.empty() ? 0 : q_.begin()->first; }
  bool empty() const { return q_.empty(); }
  size_t size() const { return q_.size(); }
  // Every job, for a stop; the queue is empty afterwards.
  void take_all(std::vector<Job*>& out);

 private:
  std::multimap<uint64_t, Job*> q_;
};

}  // namespace sb
