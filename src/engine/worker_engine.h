// WorkerEngine: one worker loop's part of a run: routing, destinations, the sending policy
// (next transaction), outcomes, retries, the connection budget, stop and abort.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/channel.h"
#include "engine/destination.h"
#include "engine/job.h"
#include "engine/loop_env.h"
#include "engine/retry_queue.h"
#include "engine/router.h"
#include "engine/run_config.h"
#include "engine/run_shared.h"
#include "engine/run_worker.h"
#include "engine/worker_shared.h"
#include "message/template.h"
#include "store/journal.h"
#include "throttle/throttle.h"

namespace sb {

class WorkerEngine final : public DestinationOwner, public RunWorker {
 public:
  struct Deps {
    size_t index = 0;  // this worker, 0 .. workers-1
    size_t workers = 1;
    LoopEnv* env = nullptr;
    const CompiledTemplate* tpl = nullptr;
    const RunConfig* cfg = nullptr;
    PoolConfig pcfg;  // this worker's share of --connections
    SharedThrottle* throttle = nullptr;
    RunShared* shared = nullptr;
    CoordinatorInbox* inbox = nullptr;
    uint32_t seed = 0;  // the backoff jitter
  };
  explicit WorkerEngine(Deps d);
  ~WorkerEngine() override;

  // All of these run on the worker's loop.
  void start() override;
  void on_command(WorkerCommand cmd) override;
  // The run is over: flushes, adds statistics, closes pools and the resolver.
  void shutdown() override;

  size_t index() const { return index_; }

 private:
  // Commands.
  void add_batch(RowsCmd& c);
  void adopt(std::vector<Handover>& hs);
  void stop_new();
  void abort(const std::string& why);

  // Settlement: a recipient leaves this worker for good (its latest outcome settles it, or
  // without one it is released); the ledger hears of it with the next flush.
  void retire(Job* j);
  void record(Job* j, RcptStatus s, int code, std::string_view text, const Txn* t = nullptr);
  void release_row(const RecipientRow& row, Obligation& ob);
  void flush_outcomes(bool wake_now);
  // Attempts left in this run: "too many recipients" deferrals do not use one up.
  bool may_retry(const Job* j) const { return j->run_attempts - j->not_tried < cfg_.max_attempts; }
  void transit(int64_t n) {
    if (cfg_.direct && n != 0) shared_.add_in_transit(n);
  }

  void maybe_request();
  // Relay: rows held beyond what the queue keeps become jobs as the queue empties.
  void refill();
  void maybe_finish();
  void drop_queued();
  // A provider reply a user must act on (Office 365's Basic authentication refusal, Outlook.com's
  // 5.7.515): a warning once per kind and worker; the Basic authentication refusal also stops
  // the run, as a refused login does. True when the recipient is not to blame (deferred).
  bool provider_reply(Job* j, int code, std::string_view text);
  void arm_retry();
  void retry_due();
  // Pokes the destinations with queued work at `at_wall_ms` (wall clock): after a throttle
  // refusal, a render slice used up, or another worker holding a destination's connections.
  // One timer; an earlier time wins.
  void poke_later(uint64_t at_wall_ms);
  void on_poke();
  uint64_t now() const { return env_.clock().mono_ms(); }
  uint64_t wall() const { return static_cast<uint64_t>(env_.clock().wall_ms()); }
  // A deferred recipient's retry is due soon enough to keep an idle session open for it.
  bool retry_soon() const;
  uint64_t backoff(uint32_t level) {
    return backoff_ms(level, cfg_.retry_delay_ms, cfg_.retry_max_ms, rng_());
  }

  // Routing: the relay's single queue, or (direct) the queue of the domain's MX set.
  void route(Job* j);
  void enqueue(Destination& d, Job* j);
  void poke_touched();
  void on_mx(const std::string& domain, const dns::MxResult& r);
  // Queues `jobs` of `domain` here, or hands them to the worker owning the destination.
  void route_resolved(const std::string& domain, const std::shared_ptr<const dns::MxResult>& mx,
                      std::vector<Job*>& jobs);
  void hand_over(size_t owner, const std::string& domain,
                 const std::shared_ptr<const dns::MxResult>& mx, Job* j);
  void send_handovers();
  Destination& destination_for(const std::string& key, const dns::MxResult& r);
  void defer_for_retry(Job* j, int code, std::string_view why);

  // The sending policy: next_txn, one small function per concern.
  // How many recipients of `d`'s queue share the next transaction.
  size_t group_size(Destination& d) const;
  // Rate, burst, blocks, daily quota, account quota, push-back: charged once per message,
  // just before it is handed to a session. False: not now (a poke is scheduled, or the run
  // is told the daily limit stops it). `account` says an allowance was taken.
  bool pace(Destination& d, size_t n, uint64_t now_wall, bool* account);
  // Takes up to `n` recipients off `d`'s queue into group_, as --limit allows.
  void take_group(Destination& d, size_t n, uint64_t now_wall);
  // Renders the group's message; ends the render slice when it is used up.
  Status render_group(bool bdat);
  Txn& build_txn();
  // Nothing to send on `d` now: wait, or end the session.
  SessionHost::Next idle_answer();

  // DestinationOwner.
  SessionHost::Next next_txn(Destination& d, bool bdat, Txn*& out) override;
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override;
  void txn_done(Txn& t) override;
  void dest_failed(Destination& d, const std::string& why, bool fatal) override;
  void dest_idle(Destination& d) override;
  uint64_t connect_delay_ms() override;
  bool reserve_connection(Destination& d) override;
  void connection_ended(Destination& d, const Session& s) override;
  void backoff_over(Destination& d) override;
  void tls_established(bool resumed) override;
  // A lookup that was started at `t0_ns` (hrtime) answered: its count and latency.
  void count_lookup(const dns::MxResult& r, uint64_t t0_ns);

  const size_t index_;
  const size_t workers_;
  LoopEnv& env_;
  CompiledTemplate tpl_;
  const RunConfig& cfg_;
  PoolConfig pcfg_;
  SharedThrottle& throttle_;
  RunShared& shared_;
  CoordinatorInbox& inbox_;
  metrics::WorkerCells& m_;             // this loop's metrics: written here only
  std::unique_ptr<MxLookup> resolver_;  // direct delivery
  std::unordered_map<std::string, std::unique_ptr<Destination>> dests_;
  Destination* relay_ = nullptr;
  Router router_;
  std::vector<Destination*> touched_;  // got recipients; poked once the batch is routed
  // Direct: recipients on their way to other workers, by owner, then by domain; sent at the
  // end of each batch, lookup or retry round.
  std::vector<std::unordered_map<std::string, Handover>> outbox_;
  std::deque<Destination*> starved_;  // want a connection; the worker's budget is used up
  RetryQueue retries_;
  std::vector<Job*> due_;  // scratch for retry_due
  JobPool jobs_;
  OutcomeBuffer out_;           // outcomes and settlements not yet handed to the coordinator
  RenderedMessage backup_msg_;  // scratch for the undotted backup copy
  std::vector<Job*> group_;     // scratch: the recipients of one transaction
  std::unique_ptr<EngineTimer> flush_timer_;
  std::unique_ptr<EngineTimer> retry_timer_;
  std::unique_ptr<EngineTimer> poke_timer_;
  uint64_t poke_at_ = 0;  // when poke_timer_ fires (wall ms); 0: not armed
  std::mt19937 rng_;
  size_t queued_ = 0;    // jobs in destination queues or waiting for DNS
  DnsStats dns_;         // lookups (resolve calls, one per domain per batch) and hand-overs
  size_t inflight_ = 0;  // transactions under way
  uint32_t open_conns_ = 0;
  uint64_t render_iter_ = 0;  // the loop time of the iteration render_ns_ counts
  uint64_t render_ns_ = 0;    // rendering time in that iteration
  bool yield_ = false;        // the slice is used up: sessions wait for the poke timer
  uint32_t budget_ = 1;       // connections this worker may have open at once
  bool group_rcpts_ = false;  // same content for everyone: several RCPTs per transaction
  bool requested_ = false;
  // Relay: rows this worker asks for at once (it asks again when half are left); doubled,
  // up to kWorkerRowsMax, each time its sessions found the queue empty while rows were on
  // their way (ran_dry_).
  size_t ahead_ = 0;
  bool ran_dry_ = false;
  // The rows of a large batch beyond kWorkerRows queued, as rows (not jobs, whose render
  // buffers the pool keeps: ~7 KB each), so claiming ahead costs little memory.
  std::deque<Handover::Rcpt> held_;
  bool exhausted_ = false;       // no more rows will come
  bool finish_ordered_ = false;  // the coordinator said Finish: the ledger is empty
  bool finished_ = false;        // FinishedMsg sent
  bool failed_ = false;          // FailedMsg sent
  uint32_t provider_noted_ = 0;  // ProviderReply kinds already warned about (bits)
  bool aborted_ = false;
  bool stopping_ = false;
};

}  // namespace sb
