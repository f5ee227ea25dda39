// The whole engine on one thread and a FakeClock: a task store, the planner, the journal, the
// ledger, the coordinator and N worker engines on fake loops, stepped by the test.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/coordinator.h"
#include "engine/fake_env.h"
#include "engine/planner.h"
#include "engine/worker_engine.h"
#include "store/journal.h"
#include "store/task_store.h"

namespace sb::test {

struct HarnessOptions {
  size_t workers = 1;
  bool direct = false;
  uint32_t connections = 2;
  uint32_t max_attempts = 3;
  uint32_t retry_delay_ms = 1000;
  uint32_t retry_max_ms = 60000;
  uint64_t limit = 0;
  uint64_t daily_limit = 0;
  uint32_t max_rcpt_per_txn = 1;
  bool same_content = false;  // a template without placeholders (grouping)
  FakeNetPlan plan;
  std::map<std::string, dns::MxStatus> mx;
  std::vector<std::string> suppress;
  uint64_t seed = 1;
  bool memory_store = false;  // SQLite in memory (fast), not a file in a temp directory
};

class QueuePort final : public WorkerPort {
 public:
  explicit QueuePort(size_t n) : q(n) {}
  void send(size_t worker, WorkerCommand cmd) override { q[worker].push_back(std::move(cmd)); }
  std::vector<std::deque<WorkerCommand>> q;
};

class Harness {
 public:
  // `emails`: the recipient list (an "email" column and a "name" column).
  Harness(const std::vector<std::string>& emails, HarnessOptions o);
  ~Harness();

  // Steps until every worker has finished (true) or `max_turns` passed (false: a hang).
  bool run(uint64_t max_turns = 200000);
  // One turn; false when nothing happened (the caller advances the clock).
  bool turn();
  // SIGTERM as the signal thread reports it (1: stop new, 2: abort).
  void signal() { signals_.fetch_add(1); }

  StatusCounts counts();
  Ledger& ledger() { return *ledger_; }
  Coordinator& coordinator() { return *coord_; }
  FakeClock& clock() { return clock_; }
  FakeLoop& loop(size_t i) { return *loops_[i]; }
  RunShared& shared() { return *shared_; }
  uint64_t turns() const { return turns_; }
  bool over() const { return !running_; }

 private:
  HarnessOptions o_;
  FakeClock clock_;
  std::string dir_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<CompiledTemplate> tpl_;
  RunConfig cfg_;
  std::unique_ptr<SharedThrottle> throttle_;
  CoordinatorInbox inbox_;
  std::unique_ptr<RunShared> shared_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Planner> planner_;
  std::unique_ptr<Journal> journal_;
  std::vector<std::unique_ptr<FakeLoop>> loops_;
  std::vector<std::unique_ptr<WorkerEngine>> engines_;
  std::unique_ptr<QueuePort> port_;
  SilentEvents events_;
  std::atomic<int> signals_{0};
  std::unique_ptr<Coordinator> coord_;
  std::vector<std::pair<size_t, WorkerMsg>> msgs_;
  bool running_ = true;
  bool started_ = false;
  bool wound_up_ = false;
  uint64_t turns_ = 0;
};

}  // namespace sb::test
