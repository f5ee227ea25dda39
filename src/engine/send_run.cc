// A send run: set-up, the worker loops and the coordinator, and what the run did.
#include "engine/send_run.h"

#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <optional>
#include <thread>

#include "base/signal_mask.h"
#include "engine/coordinator.h"
#include "engine/loop_env.h"
#include "engine/planner.h"
#include "engine/sms_run_config.h"
#include "engine/sms_worker.h"
#include "engine/worker_engine.h"
#include "loop/fd_limit.h"
#include "loop/worker.h"
#include "pg/pg_store.h"
#include "pg/task_open.h"

namespace sb {

namespace {

// Commands reach a worker engine on its own loop, as one closure per command.
class LoopPort final : public WorkerPort {
 public:
  LoopPort(std::vector<std::unique_ptr<Worker>>& workers,
           std::vector<std::unique_ptr<RunWorker>>& engines)
      : workers_(workers), engines_(engines) {}
  void send(size_t worker, WorkerCommand cmd) override {
    // The command owns obligations (move-only); a closure must be copyable.
    auto c = std::make_shared<WorkerCommand>(std::move(cmd));
    RunWorker* e = engines_[worker].get();
    workers_[worker]->post([e, c] { e->on_command(std::move(*c)); });
  }

 private:
  std::vector<std::unique_ptr<Worker>>& workers_;
  std::vector<std::unique_ptr<RunWorker>>& engines_;
};

}  // namespace

RunResult run_send(const RunConfig& cfg, EngineEvents& events) {
  SendRun r(cfg, events);
  return r.run();
}

SendRun::SendRun(const RunConfig& cfg, EngineEvents& events)
    : cfg_(cfg), events_(events), clock_(SystemClock::instance()) {}

SendRun::~SendRun() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

// Before anything is opened: a run whose connections cannot fit in the descriptor limit
// would fail socket() calls in the middle (EMFILE) instead.
bool SendRun::check_fd_limit() {
  const FdLimit l =
      ensure_fd_limit(fds_needed(cfg_.connections, std::min(cfg_.workers, cfg_.connections)));
  if (l.raised) {
    events_.note(NoteKind::kError, "open-file limit raised from " + std::to_string(l.soft_before) +
                                       " to " + std::to_string(l.soft) +
                                       " (ulimit -n) for --connections " +
                                       std::to_string(cfg_.connections));
  }
  if (l.fits()) return true;
  events_.note(NoteKind::kError,
               "--connections " + std::to_string(cfg_.connections) + " needs about " +
                   std::to_string(l.needed) + " file descriptors, but this process may open only " +
                   std::to_string(l.soft) + " (ulimit -n; hard limit " + std::to_string(l.hard) +
                   "): raise `ulimit -n` or lower --connections");
  return false;
}

RunResult SendRun::run() {
  res_.pickup = !cfg_.pickup_dir.empty();
  res_.direct = cfg_.direct;
  if (cfg_.sms != nullptr) {
    // An SMS run: a handful of binds or requests, one worker, no relay; --daily-limit counts
    // the provider account across tasks as it counts an e-mail account.
    if (int rc = prepare(); rc != 0) {
      res_.setup_exit = rc;
      return res_;
    }
    if (int rc = open_account_quota(); rc != 0) {
      res_.setup_exit = rc;
      return res_;
    }
    run_workers();
    if (res_.setup_exit != 0) return res_;
    return finish();
  }
  if (cfg_.pickup_dir.empty() && !check_fd_limit()) {
    res_.setup_exit = 2;
    return res_;
  }
  if (int rc = prepare(); rc != 0) {
    res_.setup_exit = rc;
    return res_;
  }
  if (cfg_.from.empty()) cfg_.from = tpl_->from_address();
  if (!cfg_.pickup_dir.empty()) {
    run_pickup();
    return finish();
  }
  for (const std::string& w : cfg_.relay->warnings) events_.note(NoteKind::kWarning, w);
  if (int rc = open_account_quota(); rc != 0) {
    res_.setup_exit = rc;
    return res_;
  }
  run_workers();
  if (res_.setup_exit != 0) return res_;
  return finish();
}

void SendRun::run_workers() {
  CoordinatorInbox inbox;
  RunShared shared(cfg_.limit, inbox);
  shared.set_dest_throttle_config(dest_tcfg_);
  shared.set_metrics(cfg_.metrics.get());
  shared.metrics().set_direct(cfg_.direct);
  if (quota_ != nullptr) {
    account_ = std::make_unique<AccountAllowance>(std::move(quota_), account_key_,
                                                  cfg_.throttle.daily_limit, cfg_.wait_daily,
                                                  shared, clock_);
    shared.set_account_limited(true);
    // A shared quota's hold is renewed with the node's lease; idle holds go back.
    if (is_pg_task_url(cfg_.task_path)) account_->set_shared(pg_lease_ms() / 3);
    account_->top_up(false);  // the first reservation, before any worker asks
    if (!account_->error().empty()) {
      events_.note(NoteKind::kError, account_->error());
      res_.setup_exit = 2;
      return;
    }
  }
  // The ETA (and the metrics' recipients remaining) need the number left to send: a full
  // scan, so only when a progress line shows or metrics are served.
  auto before = cfg_.progress != ProgressStyle::kNone || cfg_.metrics != nullptr
                    ? store_->counts(false)
                    : Result<StatusCounts>(StatusCounts{});
  if (before.ok()) {
    todo_ = before->get(RcptStatus::kUnsent) + before->get(RcptStatus::kDeferred) +
            before->get(RcptStatus::kInFlight);
  }

  const bool sms = cfg_.sms != nullptr;
  uint32_t nworkers = sms ? 1 : std::max<uint32_t>(1, std::min(cfg_.workers, cfg_.connections));
  PoolConfig pcfg;
  if (!sms) {
    pcfg = pool_config_for(*cfg_.relay, cfg_.timeouts);
    pcfg.session.max_messages = cfg_.per_connection;
    pcfg.session.window = cfg_.window;
    pcfg.session.max_bytes_in_flight = cfg_.pipeline_bytes;
    pcfg.session.use_pipelining = cfg_.pipelining;
    pcfg.session.use_chunking = cfg_.chunking;
  }

  // Signals go to one thread that waits for them (sigwait) and wakes the coordinator at
  // once; every other thread, the workers included, has them blocked.
  std::optional<RunSignals> signals([this, &inbox](int) {
    signals_.fetch_add(1);
    inbox.wake();
  });

  ledger_ = std::make_unique<Ledger>();
  Planner::Options po;
  po.workers = nworkers;
  po.direct = cfg_.direct;
  po.suppress = cfg_.suppress;
  if (sms && !cfg_.sms->http) po.annotate = [this](RowsCmd& c) { find_partial_sms(c); };
  Planner planner(*store_, *ledger_, clock_, &shared, po);

  t0_ = clock_.mono_ms();
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::unique_ptr<LoopEnv>> envs;
  std::vector<std::unique_ptr<RunWorker>> engines;
  for (uint32_t i = 0; i < nworkers; ++i) {
    workers.push_back(std::make_unique<Worker>(static_cast<int>(i)));
    envs.push_back(make_uv_loop_env(workers.back()->loop()));
    if (sms) {
      engines.push_back(make_sms_worker(i, *workers.back(), *envs.back(), shared, inbox));
      continue;
    }
    WorkerEngine::Deps d;
    d.index = i;
    d.workers = nworkers;
    d.env = envs.back().get();
    d.tpl = tpl_.get();
    d.cfg = &cfg_;
    d.pcfg = pcfg;
    d.pcfg.connections = cfg_.connections / nworkers + (i < cfg_.connections % nworkers ? 1 : 0);
    d.throttle = throttle_.get();
    d.shared = &shared;
    d.inbox = &inbox;
    d.seed = static_cast<uint32_t>(i * 7919 + static_cast<uint32_t>(::getpid()));
    engines.push_back(std::make_unique<WorkerEngine>(d));
  }
  LoopPort port(workers, engines);
  Coordinator::Deps cd;
  cd.cfg = &cfg_;
  cd.store = store_.get();
  cd.journal = journal_.get();
  cd.ledger = ledger_.get();
  cd.planner = &planner;
  cd.throttle = throttle_.get();
  cd.shared = &shared;
  cd.inbox = &inbox;
  cd.port = &port;
  cd.account = account_.get();
  cd.events = &events_;
  cd.clock = &clock_;
  cd.signals = &signals_;
  cd.workers = nworkers;
  cd.todo = todo_;
  if (sms) cd.sms_inbound = [this](SmsInboundMsg& m) { apply_sms_inbound(m); };
  Coordinator coord(cd);
  for (uint32_t i = 0; i < nworkers; ++i) {
    RunWorker* e = engines[i].get();
    workers[i]->post([e] { e->start(); });
    workers[i]->start();
  }
  coord.run();
  signals.reset();
  for (uint32_t i = 0; i < nworkers; ++i) {
    RunWorker* e = engines[i].get();
    workers[i]->post([e] { e->shutdown(); });
    workers[i]->stop_and_join();
  }
  engines.clear();
  envs.clear();
  workers.clear();
  // Outcomes a worker handed over after the loop ended (a batch released late); then the
  // ledger must be empty.
  coord.wind_up();
  if (account_ != nullptr) {
    if (std::string w = account_->return_unused(); !w.empty()) events_.note(NoteKind::kWarning, w);
  }
  failure_ = coord.failure();
  store_error_ = coord.store_error();
  fatal_ = coord.fatal();
  sent_ = coord.sent();
  failed_ = coord.failed();
  deferred_ = coord.deferred();
  deferred_attempts_ = coord.deferred_attempts();
  suppressed_ = coord.suppressed();
  attempts_ = coord.attempts();
  res_.signals = signals_.load();
  res_.daily_reported = coord.daily_reported();
  res_.daily_by_account = coord.daily_by_account();
  res_.daily_message = coord.daily_message();
  res_.limit_reported = coord.limit_reported();
  res_.rep.resume_at_ms = coord.daily_resume_at();
  res_.relay_answered = shared.did_relay_answer();
  res_.dns = shared.dns();
  res_.pushback = shared.pushback();
  res_.pushed_dests = shared.pushed_dests();
  res_.account_error = account_ != nullptr ? account_->error() : std::string();
}

std::unique_ptr<RunWorker> SendRun::make_sms_worker(uint32_t index, Worker& w, LoopEnv& env,
                                                    RunShared& shared, CoordinatorInbox& inbox) {
  SmsWorker::Deps d;
  d.index = index;
  d.env = &env;
  d.cfg = &cfg_;
  d.tpl = sms_tpl_.get();
  d.throttle = throttle_.get();
  d.shared = &shared;
  d.inbox = &inbox;
  d.seed = static_cast<uint32_t>(index * 7919 + static_cast<uint32_t>(::getpid()));
  uv_loop_s* loop = w.loop();
  const SmsRunConfig& sc = *cfg_.sms;
  if (sc.http) {
    d.make_link = [loop, &sc](SmsLinkHost& h) { return make_http_link(loop, sc, h); };
  } else {
    d.make_link = [loop, &env, &sc](SmsLinkHost& h) { return make_smpp_link(loop, env, sc, h); };
  }
  return std::make_unique<SmsWorker>(std::move(d));
}

RunResult SendRun::finish() {
  const double secs = static_cast<double>(clock_.mono_ms() - t0_) / 1000.0;
  ProgressView pv;
  pv.seconds = secs;
  pv.sent = sent_;
  pv.failed = failed_;
  pv.deferred = deferred_;
  pv.attempts = attempts_;
  pv.todo = todo_;
  events_.progress(pv, true);
  if (ledger_ != nullptr) {
    res_.claimed = ledger_->claimed();
    res_.settled = ledger_->settled_total();
    res_.ledger_violations = ledger_->violations();
  }
  if (auto* pg = dynamic_cast<PgTaskStore*>(store_.get()); pg != nullptr && pg->fenced() > 0) {
    // This node lost its lease (stopped, cut off) and another took its recipients over.
    events_.note(NoteKind::kWarning,
                 std::to_string(pg->fenced()) +
                     " outcomes of this node were refused: their recipients had passed to "
                     "another node after this node's lease ran out (the other node's record "
                     "stands)");
  }
  // A shared rate that PostgreSQL did not answer gives no slots, and the node sends nothing
  // meanwhile: say so, or a node that waited on it looks idle for no reason.
  for (const auto& [what, rate] : {std::pair{"rate", pg_limits_.rate.get()},
                                   std::pair{"connect rate", pg_limits_.connect.get()}}) {
    if (rate == nullptr) continue;
    if (PgRate::Stats st = rate->stats(); st.errors > 0) {
      events_.note(NoteKind::kWarning,
                   "shared " + std::string(what) + ": " + std::to_string(st.errors) + " of " +
                       std::to_string(st.round_trips) +
                       " requests to PostgreSQL failed (last: " + st.last_error + ")");
    }
  }
  auto c = store_->counts(false);
  if (!c.ok()) {
    events_.note(NoteKind::kError, c.error().describe());
    res_.counts_failed = true;
    return res_;
  }
  RunReport& rep = res_.rep;
  rep.sent = sent_;
  rep.failed = failed_;
  rep.deferred = deferred_;
  rep.deferred_attempts = deferred_attempts_;
  rep.suppressed = suppressed_;
  rep.attempts = attempts_;
  rep.seconds = secs;
  rep.task = *c;
  if (account_ != nullptr) {
    rep.account = account_->key();
    rep.quota_store = account_->path();
    rep.account_limit = cfg_.throttle.daily_limit;
    rep.account_used = account_->used();
  }
  res_.store_error = store_error_;
  res_.failure = failure_;
  res_.fatal = fatal_;
  if (journal_ != nullptr) {
    res_.backup_failures = journal_->backup_failures();
    res_.backup_error = journal_->backup_error();
  }
  rep.throttle =
      throttle_ ? throttle_->snapshot(static_cast<uint64_t>(clock_.wall_ms())) : ThrottleSnapshot{};
  // Rows with a status this version does not know are not done either (issue 18).
  res_.all_done = c->get(RcptStatus::kUnsent) + c->get(RcptStatus::kDeferred) +
                      c->get(RcptStatus::kFailed) + c->get(RcptStatus::kInFlight) + c->unknown ==
                  0;
  if (cfg_.reset_errors_after) {
    res_.reset_asked = true;
    uint64_t n = c->get(RcptStatus::kFailed) + c->get(RcptStatus::kDeferred);
    if (auto r = store_->reset(true); !r.ok()) {
      res_.reset_error = r.error().describe();
    } else {
      res_.reset_count = n;
    }
  }
  return res_;
}

}  // namespace sb
