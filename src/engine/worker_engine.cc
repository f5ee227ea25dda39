// The worker engine: commands in, routing, outcomes and settlement, retries, stop and abort.
// The sending policy (next_txn) and the pool callbacks are in send_policy.cc.
#include "engine/worker_engine.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

#include "engine/worker_shared.h"

namespace sb {

namespace {

constexpr size_t kDirectQueue = 32768;  // --direct: recipients a worker holds queued

// What one recipient contributes to a render; `now` stamps Date: and DKIM t=.
RenderInput render_input(const RecipientRow& row, int64_t now) {
  RenderInput in;
  in.email = row.email;
  in.values = &row.values;
  in.recipient_id = row.id;
  in.now = now;
  return in;
}

}  // namespace

WorkerEngine::WorkerEngine(Deps d)
    : index_(d.index),
      workers_(d.workers),
      env_(*d.env),
      tpl_(*d.tpl),
      cfg_(*d.cfg),
      pcfg_(d.pcfg),
      throttle_(*d.throttle),
      shared_(*d.shared),
      inbox_(*d.inbox),
      m_(shared_.metrics().worker(d.index)),
      rng_(d.seed) {
  ahead_ = kWorkerRows;
  budget_ = std::max<uint32_t>(1, pcfg_.connections);
  // One message for several recipients only when every recipient gets the same bytes.
  // (A per-recipient unsubscribe URL makes every message different too.)
  // A VERP return path differs per recipient: one recipient per transaction.
  group_rcpts_ = cfg_.direct && cfg_.max_rcpt_per_txn > 1 && tpl_.placeholders().empty() &&
                 cfg_.return_path.empty() && cfg_.unsubscribe.url.find("{{") == std::string::npos;
}

WorkerEngine::~WorkerEngine() = default;

void WorkerEngine::start() {
  const uint64_t flush_ms = std::min<uint64_t>(kOutcomeFlushMs, cfg_.commit_interval_ms);
  flush_timer_ = env_.timer([this, flush_ms] {
    flush_outcomes(false);
    flush_timer_->start(flush_ms);
  });
  retry_timer_ = env_.timer([this] { retry_due(); });
  poke_timer_ = env_.timer([this] { on_poke(); });
  flush_timer_->start(flush_ms);
  if (cfg_.direct) {
    auto r = env_.mx_lookup(cfg_.lookup);
    if (!r.ok()) {
      aborted_ = exhausted_ = failed_ = true;
      inbox_.post(index_, FailedMsg{"DNS resolver: " + r.error().message, true});
      return;
    }
    resolver_ = std::move(r).value();
    outbox_.resize(workers_);
  } else {
    auto d = std::make_unique<Destination>(*this, env_, "relay", pcfg_);
    relay_ = d.get();
    relay_->start();
    dests_.emplace("relay", std::move(d));
  }
  maybe_request();
}

void WorkerEngine::on_command(WorkerCommand cmd) {
  if (auto* rows = std::get_if<RowsCmd>(&cmd)) {
    add_batch(*rows);
  } else if (auto* a = std::get_if<AdoptCmd>(&cmd)) {
    adopt(a->handovers);
  } else if (std::holds_alternative<StopNewCmd>(cmd)) {
    stop_new();
  } else if (auto* ab = std::get_if<AbortCmd>(&cmd)) {
    abort(ab->why);
  } else if (std::holds_alternative<FinishCmd>(cmd)) {
    finish_ordered_ = true;
    exhausted_ = true;
    maybe_finish();
  }
}

void WorkerEngine::shutdown() {
  flush_outcomes(false);
  flush_timer_.reset();
  retry_timer_.reset();
  poke_timer_.reset();
  // Nothing waits for DNS here any more (the run finishes only when the ledger is empty), so
  // the callbacks shutdown() runs find nothing to do.
  std::vector<Job*> left;
  router_.take_all_waiting(left);
  if (resolver_) {
    dns_.queries = resolver_->queries_started();
    dns_.cpu_ns = resolver_->cpu_ns();
    dns_.domains = resolver_->cached_domains();
    shared_.add_dns_stats(dns_);
    resolver_->shutdown();
  }
  for (auto& [key, d] : dests_) {
    if (d->push_back() != nullptr) {
      ThrottleSnapshot snap = d->push_back()->snapshot(wall());
      if (snap.pushbacks > 0) shared_.add_pushback_stats(snap);
    }
    d->close_pool();
  }
  dests_.clear();
  resolver_.reset();
}

void WorkerEngine::add_batch(RowsCmd& c) {
  requested_ = false;
  if (ran_dry_) {
    // Sessions waited for this batch: the next request covers a longer wait.
    ran_dry_ = false;
    ahead_ = std::min(ahead_ * 2, kWorkerRowsMax);
  }
  exhausted_ = exhausted_ || c.exhausted;
  if (aborted_ || stopping_) {
    // Claimed (in flight in the store) but never started: back to their earlier status.
    for (size_t i = 0; i < c.rows.size(); ++i) release_row(c.rows[i], c.obs[i]);
    transit(-static_cast<int64_t>(c.rows.size()));
    flush_outcomes(false);
    maybe_finish();
    return;
  }
  for (size_t i = 0; i < c.rows.size(); ++i) {
    if (!cfg_.direct) {
      held_.push_back(Handover::Rcpt{std::move(c.rows[i]), std::move(c.obs[i])});
      continue;
    }
    Job* j = jobs_.take();
    j->row = std::move(c.rows[i]);
    j->ob = std::move(c.obs[i]);
    route(j);
  }
  refill();
  poke_touched();
  send_handovers();
  maybe_request();
  maybe_finish();
}

void WorkerEngine::adopt(std::vector<Handover>& hs) {
  std::vector<Job*> jobs;
  for (Handover& h : hs) {
    if (finished_ || aborted_ || stopping_) {
      // Never started here: back to their earlier status (a retry has its outcome already).
      for (auto& rc : h.rcpts) {
        out_.leave(rc.row, rc.ob, rc.run_attempts, rc.last);
        if (out_.full()) flush_outcomes(false);
      }
      transit(-static_cast<int64_t>(h.rcpts.size()));
      continue;
    }
    jobs.clear();
    for (auto& rc : h.rcpts) {
      Job* j = jobs_.take();
      j->row = std::move(rc.row);
      j->ob = std::move(rc.ob);
      j->run_attempts = rc.run_attempts;
      j->last = rc.last;
      jobs.push_back(j);
    }
    route_resolved(h.domain, h.mx, jobs);
  }
  flush_outcomes(false);
  poke_touched();
  send_handovers();  // none, unless the answer names another owner than the sender thought
  maybe_finish();
}

void WorkerEngine::enqueue(Destination& d, Job* j) {
  j->dest = &d;
  if (d.empty()) touched_.push_back(&d);
  d.push(j);
  ++queued_;
}

void WorkerEngine::poke_touched() {
  std::vector<Destination*> t;
  t.swap(touched_);
  for (Destination* d : t) d->poke();
}

void WorkerEngine::route(Job* j) {
  if (!cfg_.direct) {
    enqueue(*relay_, j);
    return;
  }
  std::string domain = domain_of(j->row.email);
  RouteDecision r = router_.route(domain, now());
  if (r.kind == RouteDecision::Kind::kHandOver) {
    hand_over(r.owner, domain, r.mx, j);
    return;
  }
  if (r.kind == RouteDecision::Kind::kQueueHere) {
    if (r.alabel != nullptr) j->rcpt = with_domain(j->row.email, *r.alabel);
    enqueue(*r.dest, j);
    transit(-1);
    return;
  }
  ++queued_;
  if (!router_.wait_for_lookup(domain, j)) return;
  // Cached answers come back on the next loop turn too (never inside resolve).
  ++dns_.lookups;
  const uint64_t t0 = env_.hrtime_ns();
  resolver_->resolve(domain, [this, domain, t0](const dns::MxResult& res) {
    count_lookup(res, t0);
    on_mx(domain, res);
  });
}

void WorkerEngine::count_lookup(const dns::MxResult& r, uint64_t t0_ns) {
  const uint64_t t1 = env_.hrtime_ns();
  m_.dns_latency.observe_us(t1 > t0_ns ? (t1 - t0_ns) / 1000 : 0);
  if (r.ok()) {
    m_.dns_ok.add();
  } else if (r.status == dns::MxStatus::kPermanent) {
    m_.dns_permanent.add();
  } else {
    m_.dns_temporary.add();
  }
}

void WorkerEngine::on_mx(const std::string& domain, const dns::MxResult& r) {
  std::vector<Job*> jobs;
  if (!router_.take_waiting(domain, jobs)) return;  // dropped by a stop
  queued_ -= jobs.size();
  for (const std::string& n : r.notes)
    inbox_.post(index_, NoteMsg{NoteKind::kError, domain + ": " + n});
  if (!r.ok()) {
    for (Job* j : jobs) {
      ++j->run_attempts;
      if (r.status == dns::MxStatus::kPermanent) {
        // RFC 5321 §5.1, RFC 7505: no such domain, or one that accepts no mail.
        record(j, RcptStatus::kFailed, 0, r.message);
        retire(j);
        transit(-1);
      } else {
        defer_for_retry(j, 0, r.message);  // SERVFAIL, timeout: never a bounce
      }
    }
    maybe_request();
    maybe_finish();
    return;
  }
  size_t addresses = 0;
  for (const auto& h : r.hosts) addresses += h.addresses.size();
  if (addresses == 0) {  // the resolver skips such hosts; be safe
    for (Job* j : jobs) {
      ++j->run_attempts;
      defer_for_retry(j, 0, "no address for any mail exchanger of " + r.domain);
    }
    maybe_finish();
    return;
  }
  route_resolved(domain, std::make_shared<const dns::MxResult>(r), jobs);
  poke_touched();
  send_handovers();
}

void WorkerEngine::route_resolved(const std::string& domain,
                                  const std::shared_ptr<const dns::MxResult>& mx,
                                  std::vector<Job*>& jobs) {
  const dns::MxResult& r = *mx;
  ResolvedRoute rr = resolve_route(domain, r, index_, workers_);
  if (!rr.here) {
    // The destination lives on another loop: its limits and its queue stay in one place.
    router_.learn_elsewhere(domain, rr.owner, mx, r.expires_ms);
    for (Job* j : jobs) hand_over(rr.owner, domain, mx, j);
    return;
  }
  Destination& d = destination_for(rr.key, r);
  router_.learn_here(domain, &d, rr.alabel, r.expires_ms);
  for (Job* j : jobs) {
    if (!rr.alabel.empty()) j->rcpt = with_domain(j->row.email, rr.alabel);
    enqueue(d, j);
  }
  transit(-static_cast<int64_t>(jobs.size()));
}

void WorkerEngine::hand_over(size_t owner, const std::string& domain,
                             const std::shared_ptr<const dns::MxResult>& mx, Job* j) {
  Handover& h = outbox_[owner][domain];
  if (h.rcpts.empty()) {
    h.domain = domain;
    h.mx = mx;
  }
  h.rcpts.push_back(Handover::Rcpt{std::move(j->row), std::move(j->ob), j->run_attempts, j->last});
  jobs_.give_back(j);
  ++dns_.handed_over;
}

void WorkerEngine::send_handovers() {
  bool any = false;
  for (const auto& o : outbox_) any = any || !o.empty();
  if (!any) return;
  // Outcomes of these recipients recorded here reach the journal before the new owner's.
  flush_outcomes(false);
  for (size_t o = 0; o < outbox_.size(); ++o) {
    if (outbox_[o].empty()) continue;
    HandOverMsg m;
    m.owner = o;
    m.handovers.reserve(outbox_[o].size());
    for (auto& [domain, h] : outbox_[o]) m.handovers.push_back(std::move(h));
    outbox_[o].clear();
    inbox_.post(index_, std::move(m));
  }
}

Destination& WorkerEngine::destination_for(const std::string& key, const dns::MxResult& r) {
  auto it = dests_.find(key);
  if (it != dests_.end()) return *it->second;
  PoolConfig p = pcfg_;
  p.addrs.clear();
  p.addr_names.clear();
  for (const auto& h : r.hosts) {
    for (const auto& ip : h.addresses) {
      sockaddr_storage ss{};
      ip.to_sockaddr(cfg_.lookup.mx_port, ss);
      p.addrs.push_back(ss);
      p.addr_names.push_back(h.host);
    }
  }
  p.name = (r.implicit_mx ? "host " : "MX ") + r.hosts.front().host + " (" + r.domain + ")";
  p.tls_host = r.hosts.front().host;
  p.connections = cfg_.max_conn_per_domain;
  p.failover = true;
  // Each address once (at least two tries), then the destination backs off.
  p.max_connect_failures = static_cast<uint32_t>(std::clamp<size_t>(p.addrs.size(), 2, 10));
  auto d = std::make_unique<Destination>(
      *this, env_, key, p, std::make_unique<Throttle>(shared_.dest_throttle_config()));
  Destination& ref = *d;
  ref.set_cells(&shared_.metrics().destination(index_, r.hosts.front().host));
  dests_.emplace(key, std::move(d));
  ref.start();
  return ref;
}

void WorkerEngine::defer_for_retry(Job* j, int code, std::string_view why) {
  record(j, RcptStatus::kDeferred, code, why);
  transit(-1);  // waiting out a DNS retry, or settled
  if (may_retry(j) && !aborted_ && !stopping_) {
    j->dest = nullptr;  // looked up again
    retries_.push(j, now() + backoff(j->run_attempts - 1));
    arm_retry();
  } else {
    retire(j);
  }
}

void WorkerEngine::refill() {
  while (!held_.empty() && queued_ < kWorkerRows) {
    Job* j = jobs_.take();
    j->row = std::move(held_.front().row);
    j->ob = std::move(held_.front().ob);
    held_.pop_front();
    route(j);
  }
}

void WorkerEngine::maybe_request() {
  if (requested_ || exhausted_ || aborted_) return;
  // Direct delivery holds a deeper queue: recipients of one domain are spread over the whole
  // list, and only a deep queue gives each connection several messages to carry.
  if (queued_ + held_.size() >= (cfg_.direct ? kDirectQueue : ahead_) / 2) return;
  requested_ = true;
  inbox_.post(index_, WantRowsMsg{cfg_.direct ? 0 : ahead_});
}

bool WorkerEngine::retry_soon() const {
  // A session with nothing to send stays open (instead of QUIT and reconnect) when a retry
  // is due within this long: deferred recipients would otherwise churn connections.
  constexpr uint64_t kHoldForRetryMs = 30000;
  return !retries_.empty() && retries_.next_due() <= now() + kHoldForRetryMs;
}

void WorkerEngine::release_row(const RecipientRow& row, Obligation& ob) {
  out_.release(row, ob);
  if (out_.full()) flush_outcomes(false);
}

void WorkerEngine::retire(Job* j) {
  out_.leave(j->row, j->ob, j->run_attempts, j->last);
  if (out_.full()) flush_outcomes(false);
  jobs_.give_back(j);
}

void WorkerEngine::record(Job* j, RcptStatus s, int code, std::string_view text, const Txn* t) {
  j->last = s;
  JournalEntry& r = out_.record();
  r.time_ms = env_.clock().wall_ms();
  if (!cfg_.accounting_path.empty()) {
    r.email = j->row.email;
    if (t != nullptr) {
      if (t->conn != nullptr) {
        r.peer_ip = t->conn->ip;
        r.peer_port = t->conn->port;
        r.tls_version = t->conn->tls_version;
        r.conn_id = t->conn->id;
      }
      uint64_t n = now();
      r.elapsed_ms = static_cast<uint32_t>(n > t->started_ms ? n - t->started_ms : 0);
    }
  }
  if (!cfg_.backup_dir.empty() && s == RcptStatus::kSent && t != nullptr) {
    // The copy is the message this recipient was sent: its transaction's (the leader's).
    const Job* lead = j->leader != nullptr ? j->leader : j;
    if (r.email.empty()) r.email = j->row.email;
    r.values = j->row.values;
    if (t->bdat) {
      r.eml = lead->msg.flatten();
    } else {
      // The DATA copy is dot-stuffed: render again, undotted, with the same "now".
      RenderInput in = render_input(lead->row, lead->rendered_at);
      backup_msg_.clear();
      if (tpl_.render(in, false, backup_msg_).ok()) r.eml = backup_msg_.flatten();
    }
  }
  if (j->dest != nullptr && j->dest->cells() != nullptr && s != RcptStatus::kSuppressed) {
    // sent, failed, deferred: the first three of metrics::Outcome.
    j->dest->cells()->outcomes[s == RcptStatus::kSent ? 0 : s == RcptStatus::kFailed ? 1 : 2].add();
  }
  Outcome& o = r.out;
  o.id = j->row.id;
  o.status = s;
  o.code = code;
  o.reply.assign(text.substr(0, 512));
  for (char& c : o.reply) {
    if (c == '\n') c = ' ';
  }
  o.attempts = j->row.attempts + j->run_attempts;
  o.time = env_.clock().wall_s();
  if (out_.full()) flush_outcomes(false);
}

void WorkerEngine::flush_outcomes(bool wake_now) { out_.post(inbox_, index_, wake_now); }

void WorkerEngine::poke_later(uint64_t at_wall_ms) {
  if (poke_at_ != 0 && poke_at_ <= at_wall_ms) return;
  poke_at_ = std::max<uint64_t>(at_wall_ms, 1);
  uint64_t n = wall();
  poke_timer_->start(at_wall_ms > n ? at_wall_ms - n : 0);
}

void WorkerEngine::on_poke() {
  poke_at_ = 0;
  yield_ = false;
  for (auto& [key, d] : dests_) {
    if (!d->empty()) d->poke();
  }
  // Sessions told to wait while the queue emptied learn now that the run is over.
  maybe_finish();
}

void WorkerEngine::arm_retry() {
  if (retries_.empty()) return;
  uint64_t due = retries_.next_due();
  uint64_t n = now();
  retry_timer_->start(due > n ? due - n : 0);
}

void WorkerEngine::retry_due() {
  due_.clear();
  retries_.pop_due(now(), due_);
  for (Job* j : due_) {
    if (j->dest != nullptr) {
      enqueue(*j->dest, j);
    } else {
      transit(1);
      route(j);  // direct: after a DNS failure, looked up again
    }
  }
  arm_retry();
  poke_touched();
  if (cfg_.direct) send_handovers();
}

void WorkerEngine::drop_queued() {
  // Recipients queued here but not started go back to the status they had before this run
  // claimed them (a retry already has its deferred outcome): nothing is lost, a later run
  // sends them.
  for (auto& h : held_) release_row(h.row, h.ob);
  held_.clear();
  for (auto& [key, d] : dests_) {
    for (Job* j : d->queue()) retire(j);
    d->queue().clear();
  }
  std::vector<Job*> jobs;
  router_.take_all_waiting(jobs);
  transit(-static_cast<int64_t>(jobs.size()));
  for (Job* j : jobs) retire(j);
  queued_ = 0;
  jobs.clear();
  retries_.take_all(jobs);
  for (Job* j : jobs) retire(j);
  retry_timer_->stop();
  flush_outcomes(false);
}

void WorkerEngine::stop_new() {
  if (finished_) return;
  stopping_ = true;
  exhausted_ = true;
  drop_queued();
  // Idle sessions learn there is nothing more and QUIT; connections still waiting for a
  // greeting or a login carry nothing and close at once (a server that never greets must not
  // hold a stop for minutes).
  for (auto& [key, d] : dests_) d->stop_pool("run stopped");
  maybe_finish();
}

void WorkerEngine::abort(const std::string& why) {
  if (finished_) return;
  aborted_ = true;
  exhausted_ = true;
  drop_queued();
  for (auto& [key, d] : dests_) d->abort_pool(why);
  maybe_finish();
}

void WorkerEngine::maybe_finish() {
  if (finished_) return;
  bool work_left = queued_ > 0 || !held_.empty() || !retries_.empty() || inflight_ > 0;
  if (work_left) return;
  // Idle: what settled here reaches the coordinator now (it may be the run's last).
  flush_outcomes(true);
  if (!(exhausted_ || aborted_)) return;
  if (open_conns_ > 0) {
    if (!aborted_) {
      for (auto& [key, d] : dests_) {
        if (d->open_connections() > 0) d->poke();  // idle sessions QUIT
      }
    }
    return;
  }
  // Only the coordinator knows that nothing more can come (the ledger is empty).
  if (!finish_ordered_) return;
  finished_ = true;
  inbox_.post(index_, FinishedMsg{});
}

}  // namespace sb
