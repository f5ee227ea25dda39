// The SMS worker: rows in, rendered, paced, handed to the link; outcomes, retries, settlement,
// stop and abort, as the SMTP worker engine does them, over the same channel and ledger.
#include "engine/sms_worker.h"

#include <algorithm>

#include "engine/retry_queue.h"
#include "engine/sms_run_config.h"
#include "engine/worker_shared.h"
#include "sms/phone.h"

namespace sb {

namespace {

// An SMSC that says "slow down" (ESME_RTHROTTLED, ESME_RMSGQFUL, HTTP 429) is not refusing the
// recipient: such deferrals use no attempt, up to this many per recipient and run.
constexpr uint32_t kFreeThrottled = 20;
// The session's own pause after a throttle reply; also a bind's reconnect and then some.
constexpr uint64_t kRetrySoonMs = 1000;

}  // namespace

SmsWorker::SmsWorker(Deps d)
    : index_(d.index),
      env_(*d.env),
      cfg_(*d.cfg),
      tpl_(*d.tpl),
      throttle_(*d.throttle),
      shared_(*d.shared),
      inbox_(*d.inbox),
      make_link_(std::move(d.make_link)),
      rng_(d.seed) {}

SmsWorker::~SmsWorker() = default;

void SmsWorker::start() {
  const uint64_t flush_ms = std::min<uint64_t>(kOutcomeFlushMs, cfg_.commit_interval_ms);
  flush_timer_ = env_.timer([this, flush_ms] {
    flush_outcomes(false);
    flush_timer_->start(flush_ms);
  });
  retry_timer_ = env_.timer([this] { retry_due(); });
  poke_timer_ = env_.timer([this] {
    poke_at_ = 0;
    if (link_ != nullptr) link_->poke();
    maybe_finish();
  });
  flush_timer_->start(flush_ms);
  link_ = make_link_(*this);
  maybe_request();
}

void SmsWorker::on_command(WorkerCommand cmd) {
  if (auto* rows = std::get_if<RowsCmd>(&cmd)) {
    add_batch(*rows);
  } else if (auto* a = std::get_if<AdoptCmd>(&cmd)) {
    // Hand-overs are --direct's (one SMS worker has no peers); release whatever came.
    for (Handover& h : a->handovers) {
      for (auto& rc : h.rcpts) release_row(rc.row, rc.ob);
    }
    flush_outcomes(false);
  } else if (std::holds_alternative<StopNewCmd>(cmd)) {
    stop_new();
  } else if (auto* ab = std::get_if<AbortCmd>(&cmd)) {
    abort(ab->why);
  } else if (std::holds_alternative<FinishCmd>(cmd)) {
    finish_ordered_ = true;
    exhausted_ = true;
    if (link_ != nullptr) link_->poke();  // idle binds learn there is nothing more: unbind
    maybe_finish();
  }
}

void SmsWorker::shutdown() {
  flush_outcomes(false);
  flush_timer_.reset();
  retry_timer_.reset();
  poke_timer_.reset();
  if (link_ == nullptr) return;
  if (link_->open() == 0) {
    link_.reset();  // its handles close on this loop
    return;
  }
  // Only a run torn down mid-way gets here (a finished run has closed every connection):
  // the connections end in their close callbacks, which call the link, so it must outlive
  // them.
  link_->abort("run ended");
  (void)link_.release();
}

SmsJob* SmsWorker::take_job() {
  if (free_.empty()) {
    jobs_.push_back(std::make_unique<SmsJob>());
    return jobs_.back().get();
  }
  SmsJob* j = free_.back();
  free_.pop_back();
  return j;
}

void SmsWorker::give_back(SmsJob* j) {
  j->run_attempts = 0;
  j->throttled = 0;
  j->last = RcptStatus::kUnsent;
  j->sent_at = 0;
  j->part_ids.clear();
  j->concat_ref = 0;
  free_.push_back(j);
}

void SmsWorker::add_batch(RowsCmd& c) {
  requested_ = false;
  exhausted_ = exhausted_ || c.exhausted;
  if (aborted_ || stopping_) {
    for (size_t i = 0; i < c.rows.size(); ++i) release_row(c.rows[i], c.obs[i]);
    flush_outcomes(false);
    maybe_finish();
    return;
  }
  for (size_t i = 0; i < c.rows.size(); ++i) {
    SmsJob* j = take_job();
    j->row = std::move(c.rows[i]);
    j->ob = std::move(c.obs[i]);
    tpl_.render(j->row.email, j->row.values, j->text);
    queue_.push_back(j);
  }
  // Messages an earlier run left partly accepted: only their missing parts go, with the
  // reference the accepted ones carried (the session sends them whole if the text changed).
  const size_t first = queue_.size() - c.rows.size();
  for (SmsResume& r : c.sms_resume) {
    if (r.row >= c.rows.size()) continue;
    SmsJob* j = queue_[first + r.row];
    j->part_ids = std::move(r.ids);
    j->concat_ref = r.ref;
  }
  if (link_ != nullptr) link_->poke();
  maybe_request();
  maybe_finish();
}

bool SmsWorker::pace(uint64_t now_wall) {
  // The provider account's quota (shared with other tasks, as an e-mail account's is): taken
  // from what this run reserved; no room left today stops the run as --daily-limit does.
  const bool account = shared_.account_limited();
  if (account) {
    uint64_t resume_at = 0;
    if (!shared_.take_allowance(1, &resume_at)) {
      if (resume_at != 0 && !cfg_.wait_daily) {
        inbox_.post(index_, DailyLimitMsg{resume_at, true});
        return false;
      }
      poke_later(resume_at != 0 ? resume_at : now_wall + 5);  // a top-up is on its way
      return false;
    }
  }
  Limit why = Limit::kNone;
  if (uint64_t at = throttle_.acquire(now_wall, 1, &why); at != 0) {
    if (account) shared_.return_allowance(1);
    if (why == Limit::kDaily && !cfg_.wait_daily) {
      inbox_.post(index_, DailyLimitMsg{at, false});
      return false;  // the coordinator stops the run
    }
    poke_later(at);
    return false;
  }
  return true;
}

SmppHost::Next SmsWorker::next_sms(SmsJob*& out) {
  if (aborted_ || stopping_ || failed_) return SmppHost::Next::kDone;
  if (queue_.empty()) {
    return finish_ordered_ ? SmppHost::Next::kDone : SmppHost::Next::kWait;
  }
  const uint64_t now_wall = wall();
  if (!pace(now_wall)) return SmppHost::Next::kWait;
  if (!shared_.take_message()) {
    throttle_.refund(now_wall, 1);
    if (shared_.account_limited()) shared_.return_allowance(1);
    if (!limit_posted_) {
      limit_posted_ = true;
      inbox_.post(index_, LimitMsg{});  // the coordinator stops the run; the rest stays queued
    }
    return SmppHost::Next::kWait;
  }
  SmsJob* j = queue_.front();
  queue_.pop_front();
  j->sent_at = now_wall;
  // A fresh message each attempt: the session's progress fields start from zero.
  j->msg = SmsMessage{};
  j->msg.to = j->row.email;
  j->msg.text = j->text;
  j->msg.cookie = reinterpret_cast<uint64_t>(j);
  if (!j->part_ids.empty()) {
    j->msg.accepted_before = j->part_ids;
    j->msg.concat_ref = j->concat_ref;
  }
  ++inflight_;
  out = j;
  maybe_request();
  return SmppHost::Next::kMessage;
}

void SmsWorker::sms_outcome(SmsJob& jr, SmsVerdict v, int code, std::string_view text,
                            bool throttled, std::span<const std::string> ids) {
  SmsJob* j = &jr;
  --inflight_;
  ++j->run_attempts;
  const uint64_t w = wall();
  // Push-back: the run's rate (AIMD) slows down as for a 421 from an SMTP relay.
  if (throttled) {
    (void)throttle_.on_reply(421, "4.7.0 the SMS provider throttles", w, j->sent_at);
  } else if (v == SmsVerdict::kSent) {
    (void)throttle_.on_reply(250, "", w, j->sent_at);
  }
  if (v == SmsVerdict::kSent && !j->part_ids.empty()) {
    // The rest of a partly accepted message: its earlier parts' ids are in the task already.
    std::vector<std::string> fresh(ids.begin(), ids.end());
    for (size_t i = 0; i < fresh.size() && i < j->part_ids.size(); ++i) {
      if (!j->part_ids[i].empty() && j->part_ids[i] == fresh[i]) fresh[i].clear();
    }
    std::string reply = "accepted, message ids ";
    for (size_t i = 0; i < ids.size(); ++i) reply += (i ? "," : "") + ids[i];
    record(j, RcptStatus::kSent, code, reply, fresh);
    retire(j);
    maybe_finish();
    return;
  }
  if (v == SmsVerdict::kSent) {
    std::string reply = "accepted";
    if (!ids.empty()) {
      reply += ids.size() == 1 ? ", message id " : ", message ids ";
      for (size_t i = 0; i < ids.size(); ++i) reply += (i ? "," : "") + ids[i];
    }
    record(j, RcptStatus::kSent, code, reply, ids);
    retire(j);
    maybe_finish();
    return;
  }
  // A concatenated message the SMSC took in part: the parts it took have ids that receipts
  // will name, so they are recorded too (a retry sends the message again: new ids are added).
  // The session reports the union with the ids it was given: record only the new ones, and
  // keep them all (with the reference) for the retry.
  std::vector<std::string> fresh(ids.begin(), ids.end());
  for (size_t i = 0; i < fresh.size() && i < j->part_ids.size(); ++i) {
    if (!j->part_ids[i].empty() && j->part_ids[i] == fresh[i]) fresh[i].clear();
  }
  const bool some_ids =
      std::any_of(ids.begin(), ids.end(), [](const std::string& id) { return !id.empty(); });
  if (some_ids) {
    j->part_ids.assign(ids.begin(), ids.end());
    j->concat_ref = j->msg.concat_ref;
  }
  const bool some_fresh =
      std::any_of(fresh.begin(), fresh.end(), [](const std::string& id) { return !id.empty(); });
  const std::span<const std::string> part_ids =
      some_fresh ? std::span<const std::string>(fresh) : std::span<const std::string>();
  if (v == SmsVerdict::kFailed) {
    record(j, RcptStatus::kFailed, code, text, part_ids);
    retire(j);
  } else {
    record(j, RcptStatus::kDeferred, code, text, part_ids);
    if (throttled && j->throttled < kFreeThrottled) ++j->throttled;
    const bool may_retry = j->run_attempts - j->throttled < cfg_.max_attempts;
    if (may_retry && !aborted_ && !stopping_) {
      // No answer at all (the bind dropped, a response timed out) says nothing about the
      // recipient either: back soon, on a new bind.
      const uint64_t delay = throttled || code == 0
                                 ? kRetrySoonMs
                                 : backoff_ms(j->run_attempts - j->throttled - 1,
                                              cfg_.retry_delay_ms, cfg_.retry_max_ms, rng_());
      retries_.emplace(now() + delay, j);
      arm_retry();
    } else {
      retire(j);
    }
  }
  maybe_finish();
}

void SmsWorker::record(SmsJob* j, RcptStatus s, int code, std::string_view text,
                       std::span<const std::string> ids) {
  j->last = s;
  JournalEntry& r = out_.record();
  r.time_ms = env_.clock().wall_ms();
  if (!cfg_.accounting_path.empty()) r.email = j->row.email;
  Outcome& o = r.out;
  o.id = j->row.id;
  o.status = s;
  o.code = code;
  o.reply.assign(text.substr(0, 512));
  for (char& c : o.reply) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  o.attempts = j->row.attempts + j->run_attempts;
  o.time = env_.clock().wall_s();
  // The provider's message id of every part, committed with the outcome (delivery receipts
  // name them; store/sms_ids.h).
  o.sms_ids.assign(ids.begin(), ids.end());
  // ... and the reference of a concatenated message: a run resumed after a kill completes
  // a partly accepted one with it (SendRun::find_partial_sms).
  if (!o.sms_ids.empty() && j->msg.parts > 1) o.sms_ref = j->msg.concat_ref;
  if (out_.full()) flush_outcomes(false);
}

void SmsWorker::release_row(const RecipientRow& row, Obligation& ob) {
  out_.release(row, ob);
  if (out_.full()) flush_outcomes(false);
}

void SmsWorker::retire(SmsJob* j) {
  out_.leave(j->row, j->ob, j->run_attempts, j->last);
  if (out_.full()) flush_outcomes(false);
  give_back(j);
}

void SmsWorker::flush_outcomes(bool wake_now) {
  out_.post(inbox_, index_, wake_now);
  // After the outcomes: a receipt names ids that those outcomes record.
  if (!inbound_.receipts.empty() || !inbound_.stops.empty()) {
    inbox_.post(index_, std::move(inbound_), false);
    inbound_ = SmsInboundMsg{};
  }
}

void SmsWorker::sms_receipt(const DeliveryReceipt& r) {
  SmsReceiptUpdate& u = inbound_.receipts.emplace_back();
  u.message_id = r.id;
  u.state = receipt_state_name(r.state);
  u.stat = r.stat;
  u.err = r.err;
  u.time = env_.clock().wall_s();
}

void SmsWorker::sms_reply(const MobileOriginated& mo) {
  if (!mo.is_stop()) return;
  // SMSCs give the number as digits with TON international, or with '+', or national.
  std::string from = mo.from;
  if (!from.empty() && from[0] != '+' && from[0] != '0') from.insert(0, "+");
  auto e164 = normalize_e164(from, cfg_.sms != nullptr ? cfg_.sms->country : std::string());
  if (!e164.ok()) e164 = normalize_e164(mo.from, cfg_.sms != nullptr ? cfg_.sms->country : "");
  if (e164.ok()) inbound_.stops.push_back(*e164);
}

void SmsWorker::drop_queued() {
  // Queued but not started: back to the status they had before this run claimed them (a
  // retry keeps its deferred outcome). A later run sends them.
  for (SmsJob* j : queue_) retire(j);
  queue_.clear();
  for (auto& [due, j] : retries_) retire(j);
  retries_.clear();
  if (retry_timer_ != nullptr) retry_timer_->stop();
  flush_outcomes(false);
}

void SmsWorker::stop_new() {
  if (finished_) return;
  stopping_ = true;
  exhausted_ = true;
  drop_queued();
  if (link_ != nullptr) link_->poke();  // binds unbind once their open messages are answered
  maybe_finish();
}

void SmsWorker::abort(const std::string& why) {
  if (finished_) return;
  aborted_ = true;
  exhausted_ = true;
  drop_queued();
  if (link_ != nullptr) link_->abort(why);
  maybe_finish();
}

void SmsWorker::link_failed(const std::string& why, bool fatal) {
  if (failed_) return;
  failed_ = true;
  inbox_.post(index_, FailedMsg{why, fatal});  // the coordinator answers with Abort
}

bool SmsWorker::link_wanted() const {
  return !aborted_ && !stopping_ && !failed_ && !finish_ordered_;
}

void SmsWorker::maybe_request() {
  if (requested_ || exhausted_ || aborted_) return;
  if (queue_.size() >= kWorkerRows / 2) return;
  requested_ = true;
  inbox_.post(index_, WantRowsMsg{});
}

void SmsWorker::maybe_finish() {
  if (finished_) return;
  if (!queue_.empty() || !retries_.empty() || inflight_ > 0) return;
  flush_outcomes(true);  // idle: what settled here may be the run's last
  if (!(exhausted_ || aborted_)) return;
  if (link_ != nullptr && link_->open() > 0) return;  // binds still unbinding
  // Only the coordinator knows that nothing more can come (the ledger is empty).
  if (!finish_ordered_) return;
  finished_ = true;
  inbox_.post(index_, FinishedMsg{});
}

void SmsWorker::poke_later(uint64_t at_wall_ms) {
  if (poke_at_ != 0 && poke_at_ <= at_wall_ms) return;
  poke_at_ = std::max<uint64_t>(at_wall_ms, 1);
  const uint64_t n = wall();
  poke_timer_->start(at_wall_ms > n ? at_wall_ms - n : 0);
}

void SmsWorker::arm_retry() {
  if (retries_.empty()) return;
  const uint64_t due = retries_.begin()->first;
  const uint64_t n = now();
  retry_timer_->start(due > n ? due - n : 0);
}

void SmsWorker::retry_due() {
  const uint64_t n = now();
  while (!retries_.empty() && retries_.begin()->first <= n) {
    queue_.push_back(retries_.begin()->second);
    retries_.erase(retries_.begin());
  }
  arm_retry();
  if (link_ != nullptr && !queue_.empty()) link_->poke();
  maybe_finish();
}

}  // namespace sb
