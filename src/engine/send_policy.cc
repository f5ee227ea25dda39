// The worker engine's sending policy (next_txn: grouping, pace and quotas, --limit, render
// slicing) and the rest of its pool callbacks (outcomes, failures, the connection budget).
#include <algorithm>

#include "base/display_text.h"
#include "engine/worker_engine.h"
#include "returns/verp.h"

namespace sb {

namespace {

constexpr uint64_t kRenderSliceNs = 5000000;  // rendering one loop iteration may do (5 ms)

// What held a message back, as the metrics name it.
metrics::Wait wait_of(Limit l) {
  switch (l) {
    case Limit::kAdaptive: return metrics::Wait::kAdaptive;
    case Limit::kBlockPause: return metrics::Wait::kBlockPause;
    case Limit::kDaily: return metrics::Wait::kDaily;
    case Limit::kQuotaPause: return metrics::Wait::kQuotaPause;
    default: return metrics::Wait::kRate;
  }
}

}  // namespace

size_t WorkerEngine::group_size(Destination& d) const {
  // The recipients of this transaction: one, or (same content for all) up to
  // --max-rcpt-per-txn of this destination's queue.
  size_t n = 1;
  if (group_rcpts_) {
    // SMTPUTF8 recipients travel apart: a server without it would refuse the lot.
    bool utf8 = !is_ascii(d.at(0)->rcpt_address());
    size_t limit = std::min<size_t>(d.size(), cfg_.max_rcpt_per_txn);
    while (n < limit && !is_ascii(d.at(n)->rcpt_address()) == utf8) ++n;
  }
  return n;
}

bool WorkerEngine::pace(Destination& d, size_t n, uint64_t now_wall, bool* account) {
  Limit why = Limit::kNone;
  Throttle* push = d.push_back();
  if (push != nullptr) {
    // This receiver's own pace first (without charging it): a refusal here must not use
    // up the run's tokens.
    if (uint64_t at = push->peek(now_wall, n); at != 0) {
      if (d.begin_wait()) m_.waits[static_cast<size_t>(metrics::Wait::kDestination)].add();
      poke_later(at);
      return false;
    }
  }
  // The sending account's quota (shared with other tasks): taken from what this run has
  // reserved; when the account has no room left today the run stops as for --daily-limit.
  *account = shared_.account_limited();
  if (*account) {
    uint64_t resume_at = 0;
    if (!shared_.take_allowance(n, &resume_at)) {
      if (d.begin_wait()) m_.waits[static_cast<size_t>(metrics::Wait::kAccount)].add();
      if (resume_at != 0 && !cfg_.wait_daily) {
        inbox_.post(index_, DailyLimitMsg{resume_at, true});
        return false;
      }
      // A top-up is on its way, or other nodes hold the account's rest: ask again then.
      poke_later(resume_at != 0 ? resume_at : std::max(now_wall + 5, shared_.account_retry_at()));
      return false;
    }
  }
  if (uint64_t at = throttle_.acquire(now_wall, n, &why); at != 0) {
    if (*account) shared_.return_allowance(n);
    if (d.begin_wait()) m_.waits[static_cast<size_t>(wait_of(why))].add();
    if (why == Limit::kDaily && !cfg_.wait_daily) {
      inbox_.post(index_, DailyLimitMsg{at, false});
      return false;  // the coordinator stops every worker
    }
    poke_later(at);
    return false;
  }
  if (push != nullptr) (void)push->acquire(now_wall, n);  // granted: peek said so
  m_.granted.add();
  d.end_wait();
  return true;
}

void WorkerEngine::take_group(Destination& d, size_t n, uint64_t now_wall) {
  group_.clear();
  while (group_.size() < n && !d.empty()) {
    Job* j = d.front();
    if (!shared_.take_message()) {
      inbox_.post(index_, LimitMsg{});  // the coordinator stops every worker; the rest stays queued
      break;
    }
    d.pop_front();
    --queued_;
    j->sent_at = now_wall;
    group_.push_back(j);
  }
}

Status WorkerEngine::render_group(bool bdat) {
  // Rendering (RSA signing above all: ~0.7 ms a message) must not hold the loop for long:
  // after kRenderSliceNs in one loop iteration the sessions wait for the next one.
  uint64_t iter = now();
  if (iter != render_iter_) {
    render_iter_ = iter;
    render_ns_ = 0;
  }
  uint64_t t_render = env_.hrtime_ns();
  Job* lead = group_[0];
  RenderInput in;
  in.email = lead->row.email;
  in.values = &lead->row.values;
  in.recipient_id = lead->row.id;
  in.now = env_.clock().wall_s();
  lead->rendered_at = in.now;
  Status st = tpl_.render(in, !bdat, lead->msg);
  render_ns_ += env_.hrtime_ns() - t_render;
  if (render_ns_ > kRenderSliceNs) {
    render_ns_ = 0;
    yield_ = true;
    poke_later(wall());  // a timer at 0 ms: after the loop has polled I/O
  }
  return st;
}

Txn& WorkerEngine::build_txn() {
  Job* lead = group_[0];
  Txn& t = lead->txn;
  if (!cfg_.return_path.empty()) {  // VERP: one recipient per transaction
    lead->verp_from =
        expand_return_path(cfg_.return_path, cfg_.verp_key, cfg_.task_key, lead->row.id);
  }
  // Txn holds a view: the address lives in the job (or the config) until the outcome.
  t.mail_from = cfg_.return_path.empty() ? std::string_view(cfg_.from) : lead->verp_from;
  if (!cfg_.return_path.empty()) {
    lead->envid.assign(cfg_.task_key).append(".").append(std::to_string(lead->row.id));
    t.envid = lead->envid;
  }
  t.rcpts.resize(group_.size());
  bool ascii = is_ascii(cfg_.from);
  for (size_t i = 0; i < group_.size(); ++i) {
    Job* j = group_[i];
    j->leader = lead;
    t.rcpts[i].address = j->rcpt_address();
    t.rcpts[i].cookie = reinterpret_cast<uint64_t>(j);
    ascii = ascii && is_ascii(t.rcpts[i].address);
  }
  t.body = lead->msg.pieces;
  t.body_size = lead->msg.size;
  t.eight_bit = lead->msg.eight_bit;
  t.smtputf8 = !ascii || lead->msg.smtputf8;  // a UTF-8 address in a header (RFC 6532)
  t.mail_code = 0;
  t.next_cmd = 0;  // still 0 in txn_done: MAIL FROM was never written (see txn_done)
  return t;
}

SessionHost::Next WorkerEngine::next_txn(Destination& d, bool bdat, Txn*& out) {
  if (yield_) return SessionHost::Next::kWait;  // the poke timer ends it
  while (!d.empty() && !aborted_ && !stopping_ && !d.backing_off()) {
    size_t n = group_size(d);
    uint64_t now_wall = wall();
    bool account = false;
    if (!pace(d, n, now_wall, &account)) return SessionHost::Next::kWait;
    take_group(d, n, now_wall);
    if (account) shared_.return_allowance(n - group_.size());
    if (group_.empty()) return SessionHost::Next::kWait;
    // Held rows top the queue up as it empties; it never empties while rows are held, so
    // no session of it waits for a poke.
    refill();
    maybe_request();
    if (Status st = render_group(bdat); !st.ok()) {
      // This recipient's data cannot make a valid message; the run goes on.
      if (account) shared_.return_allowance(group_.size());
      for (Job* j : group_) {
        ++j->run_attempts;
        record(j, RcptStatus::kFailed, 0, st.error().message);
        retire(j);
      }
      continue;
    }
    ++inflight_;
    m_.in_flight.set(static_cast<int64_t>(inflight_));
    out = &build_txn();
    return SessionHost::Next::kTxn;
  }
  // A session ready for more while the batch asked for is still on its way: the queue was
  // too short for the journal thread's answer time (see add_batch).
  if (d.empty() && requested_ && !exhausted_ && !cfg_.direct) ran_dry_ = true;
  return idle_answer();
}

SessionHost::Next WorkerEngine::idle_answer() {
  if (aborted_ || stopping_) {
    maybe_finish();
    return SessionHost::Next::kDone;
  }
  if (cfg_.direct) {
    // A session with nothing for its destination gives its connection up at once when another
    // destination waits for one; otherwise it waits while more recipients may come.
    // (Recipients in transit anywhere may yet be handed to this worker's destinations, soon
    // unless they wait to retry a lookup.)
    bool more_may_come = !finish_ordered_ && (!exhausted_ || router_.lookups_pending() ||
                                              shared_.in_transit() > 0 || retry_soon());
    if (!starved_.empty() || !more_may_come) {
      maybe_finish();
      return SessionHost::Next::kDone;
    }
    return SessionHost::Next::kWait;
  }
  if (!exhausted_) return SessionHost::Next::kWait;  // a batch is on its way
  if (retry_soon()) return SessionHost::Next::kWait;
  maybe_finish();
  return SessionHost::Next::kDone;
}

void WorkerEngine::rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) {
  Job* j = reinterpret_cast<Job*>(t.rcpts[i].cookie);
  // 552 to RCPT after the server took others of this transaction is "too many recipients"
  // (RFC 5321 §4.5.3.1.10): this recipient was not tried. It goes into the next transaction
  // at once and keeps its attempts, so a relay that takes 100 recipients a message does not
  // leave the 301st deferred after --max-attempts 3. (A 552 to the first RCPT is counted: a
  // server that refuses every recipient that way must not be retried for ever.)
  const bool too_many = v == Verdict::kDeferred && code == 552 && t.accepted > 0;
  ++j->run_attempts;  // an outcome is recorded either way (retire() relies on the count)
  if (too_many) ++j->not_tried;
  // "Slow down" and quota replies (421, 451 4.7.x, Office 365's 554 5.2.0 ...
  // SubmissionQuotaExceeded) cut the rate; they say nothing about the recipient, so a
  // permanent-looking quota reply defers rather than fails.
  // Direct: the reply counts against its destination only.
  Throttle* own = j->dest != nullptr ? j->dest->push_back() : nullptr;
  PushBack pb = PushBack::kNone;
  if (code != 0) {
    pb = own != nullptr ? own->on_reply(code, text, wall(), j->sent_at)
                        : throttle_.on_reply(code, text, wall(), j->sent_at);
  }
  if (pb == PushBack::kSlowDown) m_.pushback_slowdown.add();
  if (pb == PushBack::kQuota) m_.pushback_quota.add();
  if (code != 0 && t.started_ms != 0) {
    const uint64_t n = now();
    m_.delivery_latency.observe_us(n > t.started_ms ? (n - t.started_ms) * 1000 : 0);
  }
  if (pb == PushBack::kQuota && v == Verdict::kFailed) v = Verdict::kDeferred;
  if (code >= 500 && provider_reply(j, code, text)) v = Verdict::kDeferred;
  RcptStatus s = v == Verdict::kSent     ? RcptStatus::kSent
                 : v == Verdict::kFailed ? RcptStatus::kFailed
                                         : RcptStatus::kDeferred;
  record(j, s, code, text, &t);
  j->retry = s == RcptStatus::kDeferred && may_retry(j) && !aborted_ && !stopping_;
  j->retry_now = j->retry && too_many;
}

bool WorkerEngine::provider_reply(Job* j, int code, std::string_view text) {
  const ProviderReply pr = recognise_provider_reply(code, text);
  // A spent quota is push-back (the throttle defers and pauses); it is only explained here.
  if (pr == ProviderReply::kNone) return false;
  const bool stop =
      pr == ProviderReply::kBasicAuthDisabled || pr == ProviderReply::kSmtpAuthDisabled;
  const uint32_t bit = 1u << static_cast<unsigned>(pr);
  if ((provider_noted_ & bit) == 0) {
    provider_noted_ |= bit;
    std::string what = std::to_string(code) + " " + display_escape(text.substr(0, 200));
    std::string why = what + " (" + provider_reply_advice(pr) + ")";
    if (pr == ProviderReply::kDailyQuota && !cfg_.direct && !cfg_.wait_daily) {
      // The relay's own daily limit (Gmail's 550 5.4.5, Office 365's SubmissionQuotaExceeded)
      // meets every further message until the provider's rolling 24 hours allow: the run stops
      // as for --daily-limit (exit 3), the recipient deferred, instead of pausing and retrying
      // for the rest of the day. With --wait it keeps pausing (push-back) as before.
      constexpr uint64_t kDayMs = 24ull * 3600 * 1000;
      inbox_.post(index_, DailyLimitMsg{wall() + kDayMs, false, what});
    }
    if (stop && !cfg_.direct && !failed_) {
      // The relay refuses this account's way of logging in: every message would meet the same
      // reply, so the run stops as for a refused AUTH, and the recipients stay unsent.
      failed_ = true;
      inbox_.post(index_, FailedMsg{"the relay refused the login: " + why, true});
      aborted_ = true;
      exhausted_ = true;
      drop_queued();
    } else {
      inbox_.post(index_, NoteMsg{NoteKind::kWarning, std::string(j->rcpt_address()) + ": " + why});
    }
  }
  return stop;
}

void WorkerEngine::txn_done(Txn& t) {
  --inflight_;
  m_.in_flight.set(static_cast<int64_t>(inflight_));
  if (t.next_cmd == 0 && !t.rcpts.empty()) {
    // MAIL FROM was never written (the connection went first): nothing reached the server,
    // so the quotas charged for it are given back.
    const Job* lead = reinterpret_cast<const Job*>(t.rcpts[0].cookie);
    throttle_.refund(lead->sent_at, t.rcpts.size());
    if (shared_.account_limited()) shared_.return_allowance(t.rcpts.size());
  }
  // The leader (rcpts[0]) owns the transaction: it is recycled last.
  for (size_t i = t.rcpts.size(); i-- > 0;) {
    Job* j = reinterpret_cast<Job*>(t.rcpts[i].cookie);
    j->leader = nullptr;
    if (j->retry && !aborted_ && !stopping_) {
      j->retry = false;
      const uint64_t due = j->retry_now ? now() : now() + backoff(j->run_attempts - 1);
      j->retry_now = false;
      retries_.push(j, due);
    } else {
      retire(j);
    }
  }
  arm_retry();
  maybe_request();
  maybe_finish();
}

void WorkerEngine::dest_failed(Destination& d, const std::string& why, bool fatal) {
  if (finished_) return;
  if (!cfg_.direct) {
    // The relay cannot be reached: this worker stops, and the coordinator stops the run.
    if (!failed_) {
      failed_ = true;
      inbox_.post(index_, FailedMsg{why, fatal});
    }
    aborted_ = true;
    exhausted_ = true;
    drop_queued();
    maybe_finish();
    return;
  }
  // Direct: the destination's queue waits out a backoff together (no hammering a dead host
  // per recipient); each queued recipient is charged one deferred attempt.
  std::deque<Job*> keep;
  for (Job* j : d.queue()) {
    ++j->run_attempts;
    record(j, RcptStatus::kDeferred, 0, why);
    if (may_retry(j) && !stopping_ && !aborted_) {
      keep.push_back(j);
    } else {
      --queued_;
      retire(j);
    }
  }
  d.queue().swap(keep);
  d.begin_backoff(backoff(d.next_backoff_level()));
  maybe_request();
  maybe_finish();
}

void WorkerEngine::tls_established(bool resumed) { (resumed ? m_.tls_resumed : m_.tls_full).add(); }

void WorkerEngine::backoff_over(Destination& d) {
  d.end_backoff();
  if (!d.empty()) d.poke();
  maybe_finish();
}

void WorkerEngine::dest_idle(Destination& d) {
  (void)d;
  maybe_finish();
}

uint64_t WorkerEngine::connect_delay_ms() {
  uint64_t n = wall();
  uint64_t at = throttle_.acquire_connect(n);
  return at > n ? at - n : 0;
}

bool WorkerEngine::reserve_connection(Destination& d) {
  // The destination's own limit (--max-connections-per-domain) is its pool's size: it lives
  // on this loop only. This is the worker's share of --connections.
  if (open_conns_ < budget_) {
    ++open_conns_;
    m_.connections_open.set(open_conns_);
    m_.connections_opened.add();
    return true;
  }
  if (!d.starved()) {
    d.set_starved(true);
    starved_.push_back(&d);
    // Sessions idle on other destinations give their connections up (see idle_answer).
    for (auto& [key, o] : dests_) {
      if (o.get() != &d && o->empty() && o->open_connections() > 0) o->poke();
    }
  }
  return false;
}

void WorkerEngine::connection_ended(Destination& d, const Session& s) {
  if (open_conns_ > 0) --open_conns_;
  m_.connections_open.set(open_conns_);
  if (!s.greeting().empty()) shared_.relay_answered();
  if (s.ready_reached()) d.reset_backoff_level();
  // The budget freed up: the longest-waiting destination that still has work gets it.
  while (!starved_.empty() && open_conns_ < budget_) {
    Destination* w = starved_.front();
    starved_.pop_front();
    w->set_starved(false);
    if (w->has_work()) {
      w->poke();
      break;
    }
  }
}

}  // namespace sb
