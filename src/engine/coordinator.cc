// The coordinator's loop: messages in, commits, claims, limits, signals, and the finish.
#include "engine/coordinator.h"

#include <algorithm>
#include <ctime>

#include "engine/run_result.h"

namespace sb {

namespace {

constexpr size_t kCommitNow = 4096;   // outcomes that are committed without waiting
constexpr uint64_t kMetricsMs = 250;  // how often the coordinator's gauges are refreshed

}  // namespace

Coordinator::Coordinator(Deps d)
    : cfg_(*d.cfg),
      store_(*d.store),
      journal_(*d.journal),
      ledger_(*d.ledger),
      planner_(*d.planner),
      throttle_(*d.throttle),
      shared_(*d.shared),
      inbox_(*d.inbox),
      port_(*d.port),
      account_(d.account),
      events_(*d.events),
      clock_(*d.clock),
      signals_(d.signals),
      workers_(d.workers),
      todo_(d.todo),
      sms_inbound_(std::move(d.sms_inbound)) {
  t0_ = last_commit_ = last_progress_ = clock_.mono_ms();
}

void Coordinator::fail(const std::string& why) {
  if (failure_.empty()) failure_ = why;
}

void Coordinator::run() {
  std::vector<std::pair<size_t, WorkerMsg>> msgs;
  for (;;) {
    inbox_.wait_take(
        cfg_.commit_interval_ms,
        [&] {
          return (signals_ != nullptr && signals_->load() > signals_seen_) ||
                 shared_.topup_wanted();
        },
        msgs);
    if (!step(msgs)) break;
  }
  // Nothing is held by now, unless a worker failed at start.
  planner_.release_all(outcomes_);
  commit(outcomes_);
  apply_inbound();
  save_throttle_state();
}

void Coordinator::apply_inbound() {
  if (inbound_.empty() || !outcomes_.empty()) return;
  for (SmsInboundMsg& m : inbound_) {
    if (sms_inbound_) sms_inbound_(m);
  }
  inbound_.clear();
}

void Coordinator::wind_up() {
  std::vector<std::pair<size_t, WorkerMsg>> msgs;
  inbox_.take(msgs);
  for (auto& [w, m] : msgs) take(w, m);
  commit(outcomes_);
  apply_inbound();
  ledger_.close_run();
  publish_metrics();
}

void Coordinator::take(size_t worker, WorkerMsg& m) {
  if (auto* o = std::get_if<OutcomesMsg>(&m)) {
    if (outcomes_.empty()) {
      outcomes_.swap(o->entries);
    } else {
      for (auto& e : o->entries) outcomes_.push_back(std::move(e));
    }
    for (const Settlement& s : o->settled) ledger_.settle(s.id, s.how);
  } else if (auto* w = std::get_if<WantRowsMsg>(&m)) {
    if (w->rows != 0) planner_.want(worker, w->rows);
    requests_.push_back(worker);
  } else if (auto* h = std::get_if<HandOverMsg>(&m)) {
    // Later rows of these domains go to their owner at once.
    for (const Handover& ho : h->handovers) planner_.learn_owner(ho.domain, h->owner);
    port_.send(h->owner, AdoptCmd{std::move(h->handovers)});
  } else if (auto* f = std::get_if<FailedMsg>(&m)) {
    fail(f->why);
    fatal_ = fatal_ || f->fatal;
  } else if (std::holds_alternative<FinishedMsg>(m)) {
    ++finished_;
  } else if (auto* d = std::get_if<DailyLimitMsg>(&m)) {
    if (daily_resume_at_ == 0) {
      daily_resume_at_ = d->resume_at;
      daily_by_account_ = d->by_account;
      daily_provider_reply_ = d->provider_reply;
    }
  } else if (std::holds_alternative<LimitMsg>(m)) {
    limit_hit_ = true;
  } else if (auto* n = std::get_if<NoteMsg>(&m)) {
    events_.note(n->kind, n->text);
  } else if (auto* in = std::get_if<SmsInboundMsg>(&m)) {
    inbound_.push_back(std::move(*in));
  }
}

bool Coordinator::step(std::vector<std::pair<size_t, WorkerMsg>>& msgs) {
  for (auto& [w, m] : msgs) take(w, m);
  msgs.clear();
  if (!store_error_.empty()) fail(store_error_);
  if (std::string lost = store_.claims_lost(); !lost.empty() && failure_.empty()) {
    events_.note(NoteKind::kError, lost);
    fail(lost);
    // Like refused credentials, running on cannot help (run again to rejoin): exit 5 whether
    // or not a message was attempted yet (not 2 as "nothing ever answered" before the first).
    fatal_ = true;
  }
  const uint64_t now = clock_.mono_ms();
  if (account_ != nullptr) {
    bool had_error = !account_->error().empty();
    account_->top_up(stop_requested_);
    if (!had_error && !account_->error().empty()) {
      events_.note(NoteKind::kError, account_->error());
      fail(account_->error());
    }
  } else {
    (void)shared_.clear_topup_wanted();
  }
  apply_limits_and_signals();
  cmds_.clear();
  planner_.serve(requests_, stop_requested_, outcomes_, cmds_);
  requests_.clear();
  for (auto& [w, c] : cmds_) port_.send(w, std::move(c));
  if (!planner_.error().empty() && failure_.empty()) {
    // The next turn stops the run (as any failure does).
    events_.note(NoteKind::kError, planner_.error_text());
    fail(planner_.error());
  }
  // Commit in batches: one SQLite transaction for many outcomes. After the claims: a worker
  // waiting for rows must not also wait for a commit (10s of ms, more on a loaded CPU).
  if (!outcomes_.empty() && (now - last_commit_ >= cfg_.commit_interval_ms ||
                             outcomes_.size() >= kCommitNow || finished_ == workers_)) {
    commit(outcomes_);
    save_throttle_state();
    last_commit_ = now;
  }
  apply_inbound();
  if (now - last_progress_ >= 1000) {
    events_.progress(progress_view(), false);
    last_progress_ = now;
  }
  if (cfg_.metrics != nullptr && now - last_metrics_ >= kMetricsMs) {
    publish_metrics();
    last_metrics_ = now;
  }
  maybe_finish_run();
  return finished_ < workers_;
}

void Coordinator::maybe_finish_run() {
  // The one place that decides the run is over: nothing more will be claimed, nothing is
  // held, and every recipient claimed has settled. Workers never decide it themselves.
  if (finish_sent_) return;
  if (!(planner_.exhausted() || stop_requested_) || planner_.held() > 0 || !ledger_.empty()) {
    return;
  }
  finish_sent_ = true;
  send_all(FinishCmd{});
}

void Coordinator::stop_all_new() {
  stop_requested_ = true;
  send_all(StopNewCmd{});
}

void Coordinator::apply_limits_and_signals() {
  if (daily_resume_at_ != 0 && !daily_reported_) {
    daily_reported_ = true;
    stop_requested_ = true;
    time_t t = static_cast<time_t>(daily_resume_at_ / 1000);
    char when[64];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
    daily_message_ = !daily_provider_reply_.empty()
                         ? "the relay's daily sending limit for this account is spent (" +
                               daily_provider_reply_ + "): its recipients stay deferred"
                         : std::string("daily limit of ") +
                               std::to_string(cfg_.throttle.daily_limit) + " recipients reached" +
                               (daily_by_account_ && account_ != nullptr
                                    ? " for account " + account_->key() +
                                          " (counted across every task of this account)"
                                    : std::string());
    daily_message_ += std::string("; sending may resume at ") + when + " (" +
                      iso_utc(daily_resume_at_) + "; run again then, or give --wait)";
    events_.note(NoteKind::kNotice, "\n" + daily_message_);
    stop_all_new();
  }
  if (limit_hit_ && !limit_reported_) {
    limit_reported_ = true;
    events_.note(NoteKind::kNotice,
                 "\n--limit " + std::to_string(cfg_.limit) +
                     " reached: no new messages are started; a later run (at any time) sends "
                     "the rest");
    stop_all_new();
  }
  if (!failure_.empty() && !stop_requested_) {
    stop_requested_ = true;
    send_all(AbortCmd{failure_});
  }
  const int sigs = signals_ != nullptr ? signals_->load() : 0;
  const uint64_t now = clock_.mono_ms();
  if (signals_seen_ == 1 && sigs == 1 && !stop_timed_out_ &&
      now - first_signal_at_ > cfg_.stop_timeout_ms) {
    // A server that stopped reading (or answering) would hold the stop until its end-of-
    // data timeout, up to 10 minutes: after --stop-timeout, stop as a second signal does.
    stop_timed_out_ = true;
    events_.note(NoteKind::kNotice,
                 "stopping now: messages under way did not finish within --stop-timeout");
    send_all(AbortCmd{"run stopped: --stop-timeout after a signal"});
  }
  if (sigs > signals_seen_) {
    if (signals_seen_ == 0) {
      // The workers are told first: once the line is out, no new message is started.
      stop_all_new();
      first_signal_at_ = now;
      events_.note(NoteKind::kNotice,
                   "\nstopping: no new messages are started, those under way finish (within "
                   "--stop-timeout); a second signal stops at once; a later run resumes");
    } else if (signals_seen_ == 1 && !stop_timed_out_) {
      // Connections are dropped; their open recipients come back deferred and are still
      // committed, so nothing is lost.
      events_.note(NoteKind::kNotice, "stopping now");
      send_all(AbortCmd{"run stopped by a second signal"});
    }
    signals_seen_ = sigs;
  }
}

void Coordinator::commit(std::vector<JournalEntry>& v) {
  if (v.empty()) return;
  if (auto s = journal_.commit(v); !s.ok()) {
    // Nothing new may start when outcomes cannot be recorded: stop the run.
    if (store_error_.empty()) {
      events_.note(NoteKind::kError, "cannot record outcomes: " + s.error().describe());
      store_error_ = "task store write failed: " + s.error().message;
    }
    return;  // kept in v: retried with the next commit
  }
  tally(v);
  v.clear();
}

void Coordinator::tally(const std::vector<JournalEntry>& v) {
  // Counted as committed, so the metrics agree with `status` (one thread writes these).
  metrics::RunCells& m = shared_.metrics().run();
  for (const JournalEntry& e : v) {
    const Outcome& o = e.out;
    if (o.status_only) continue;  // a release: no attempt was made
    if (o.status == RcptStatus::kSuppressed) {
      ++done_suppressed_;
      m.outcomes[static_cast<size_t>(metrics::Outcome::kSuppressed)].add();
      continue;
    }
    ++attempts_;
    if (o.code >= 200 && o.code < 300) {
      m.reply_2xx.add();
    } else if (o.code >= 400 && o.code < 500) {
      m.reply_4xx.add();
    } else if (o.code >= 500 && o.code < 600) {
      m.reply_5xx.add();
    }
    if (o.status == RcptStatus::kSent) {
      m.outcomes[static_cast<size_t>(metrics::Outcome::kSent)].add();
    } else if (o.status == RcptStatus::kFailed) {
      m.outcomes[static_cast<size_t>(metrics::Outcome::kFailed)].add();
    } else if (o.status == RcptStatus::kDeferred) {
      m.outcomes[static_cast<size_t>(metrics::Outcome::kDeferred)].add();
    }
    // Per recipient: a deferred recipient's later outcome in this run replaces it.
    uint32_t before = 0;
    if (auto d = deferred_now_.find(o.id); d != deferred_now_.end()) {
      before = d->second;
      deferred_attempts_ -= before;
      deferred_now_.erase(d);
    }
    if (o.status == RcptStatus::kSent) {
      ++done_sent_;
    } else if (o.status == RcptStatus::kFailed) {
      ++done_failed_;
    } else if (o.status == RcptStatus::kDeferred) {
      deferred_now_[o.id] = before + 1;
      deferred_attempts_ += before + 1;
    }
  }
  if (cfg_.metrics != nullptr) {
    const uint64_t done = done_sent_ + done_failed_ + done_suppressed_;
    m.remaining.set(static_cast<int64_t>(todo_ > done ? todo_ - done : 0));
  }
}

void Coordinator::save_throttle_state() {
  uint64_t now = static_cast<uint64_t>(clock_.wall_ms());
  if (!cfg_.throttle.rate.empty() || cfg_.throttle.daily_limit > 0 ||
      cfg_.throttle.block_size > 0) {
    (void)store_.set_meta("daily_state", throttle_.daily_state(now));
  }
  ThrottleSnapshot snap = throttle_.snapshot(now);
  (void)store_.set_meta("throttle", describe(snap));
  (void)store_.set_meta("throttle_json", throttle_json(snap).dump());  // status --json
}

void Coordinator::publish_metrics() {
  if (cfg_.metrics == nullptr) return;
  metrics::RunCells& m = shared_.metrics().run();
  const uint64_t done = done_sent_ + done_failed_ + done_suppressed_;
  m.remaining.set(static_cast<int64_t>(todo_ > done ? todo_ - done : 0));  // before any commit
  if (cfg_.throttle.daily_limit > 0) {
    ThrottleSnapshot snap = throttle_.snapshot(static_cast<uint64_t>(clock_.wall_ms()));
    // Counted per sending account too: the account's count (every task of it) binds first.
    uint64_t used = snap.daily_count;
    if (account_ != nullptr) used = std::max(used, account_->used());
    m.daily_limit.set(static_cast<int64_t>(cfg_.throttle.daily_limit));
    m.daily_used.set(static_cast<int64_t>(used));
  }
}

ProgressView Coordinator::progress_view() const {
  ProgressView p;
  p.seconds = static_cast<double>(clock_.mono_ms() - t0_) / 1000.0;
  p.sent = done_sent_;
  p.failed = done_failed_;
  p.deferred = deferred_now_.size();
  p.attempts = attempts_;
  p.todo = todo_;
  return p;
}

}  // namespace sb
