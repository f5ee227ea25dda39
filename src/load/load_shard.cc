#include "load/load_shard.h"

#include <algorithm>
#include <charconv>

namespace sb {

// One transaction handed to a session, with the storage its views point into. Slots are
// reused, so after the first window nothing is allocated per message.
struct LoadShard::TxnSlot {
  Txn txn;
  uint64_t index = 0;  // in LoadShard::slots_, the cookie of its recipients
  std::vector<std::string> addrs;
  uint64_t intended_us = 0;
  bool measured = false;
  bool ok = true;
  const char* error_kind = nullptr;
  int error_code = 0;
  std::string error_text;
};

LoadShard::LoadShard(const LoadConfig& cfg, const ScheduleConfig& sched, uint32_t connections,
                     uint64_t first_rcpt, uint64_t rcpt_stride, std::function<void()> finished)
    : cfg_(cfg),
      pool_cfg_(cfg.pool),
      sched_(clock_, sched),
      finished_cb_(std::move(finished)),
      next_rcpt_(first_rcpt),
      rcpt_stride_(rcpt_stride) {
  pool_cfg_.connections = connections;
  piece_data_[0] = cfg_.body_data;
  piece_bdat_[0] = cfg_.body_bdat;
  const SessionConfig& sc = pool_cfg_.session;
  per_round_ = sc.use_pipelining ? std::max<uint64_t>(sc.window, 1) : 1;
  uint64_t body = std::max(cfg_.body_data.size(), cfg_.body_bdat.size());
  if (body > 0)
    per_round_ = std::min(per_round_, std::max<uint64_t>(sc.max_bytes_in_flight / body, 1));
}

LoadShard::~LoadShard() = default;

void LoadShard::begin(uv_loop_s* loop, uint64_t start_us) {
  pool_ = std::make_unique<ConnectionPool>(loop, pool_cfg_, *this);
  tick_ = std::make_unique<Timer>(loop, [this] { on_tick(); });
  end_ = std::make_unique<Timer>(loop, [this] { on_end(); });
  drain_ = std::make_unique<Timer>(loop, [this] { on_drain(); });
  sched_.start_at(start_us);
  if (sched_.exhausted()) {  // a share with nothing in it (fewer messages than workers)
    finish();
    return;
  }
  if (cfg_.schedule.duration_us != 0 && cfg_.schedule.messages == 0) {
    uint64_t now = clock_.mono_us(), end = sched_.nominal_end_us();
    end_->again(end > now ? (end - now + 999) / 1000 : 1);
  }
  pool_->poke();
}

void LoadShard::teardown() {
  tick_.reset();
  end_.reset();
  drain_.reset();
  pool_.reset();
}

LoadShard::Next LoadShard::next_txn(bool bdat, Txn*& out) {
  if (stopping_) return Next::kDone;
  LoadSchedule::Slot s;
  if (!sched_.take(s)) {
    if (sched_.exhausted()) return Next::kDone;
    arm_tick();
    return Next::kWait;
  }
  TxnSlot* t = acquire();
  t->intended_us = s.intended_us;
  t->measured = s.measured;
  fill(*t, bdat);
  ++in_flight_;
  ++txns_taken_;
  if (s.measured) ++r_.started;
  // The last one is out: sessions waiting for more must hear that none will come.
  if (sched_.exhausted()) tick_->again(1);
  out = &t->txn;
  return Next::kTxn;
}

void LoadShard::rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) {
  (void)i;
  ++r_.replies[static_cast<size_t>(std::clamp(code, 0, 999))];
  TxnSlot* s = slot_of(t);
  if (v == Verdict::kSent) {
    if (s->measured) ++r_.recipients_sent;
    return;
  }
  if (s->ok) {  // the transaction's first refusal names its error
    s->ok = false;
    s->error_kind = code >= 500 ? "reply 5xx" : code >= 400 ? "reply 4xx" : "no reply";
    s->error_code = code;
    s->error_text.assign(text.substr(0, 200));
  }
}

void LoadShard::txn_done(Txn& t) {
  TxnSlot* s = slot_of(t);
  uint64_t now = clock_.mono_us();
  --in_flight_;
  uint64_t lat = now > s->intended_us ? now - s->intended_us : 0;
  second_.latency.record(lat);  // the per-second view shows the warm-up too
  ++second_.completed;
  if (s->measured) {
    r_.latency.record(lat);
    ++r_.completed;
    r_.last_completion_us = now;
    if (s->ok) {
      ++r_.sent;
      r_.bytes += t.body_size;
    } else {
      ++r_.failed;
    }
  } else {
    ++r_.warmup;
  }
  if (!s->ok) {
    note_error(s->error_kind, s->error_text);
    ++second_.errors;
  }
  release(s);
}

bool LoadShard::has_work() {
  if (stopping_) return false;
  uint64_t left = sched_.remaining();
  if (left == 0 || sched_.exhausted()) return false;
  if (left == UINT64_MAX) return true;  // only the time bounds the run
  // A new connection is worth opening only when the schedule holds a message for it once
  // the connections already open or opening have taken theirs; otherwise, at the end of a
  // run (most of all with --per-connection 1), it would say EHLO and QUIT with nothing sent.
  // A ready connection takes what is left of its --per-connection allowance, but at most a
  // window at once: counting its whole allowance kept a run with --per-connection as large as
  // --messages on one connection per worker, a window per round trip (bench/RESULTS.md,
  // "load's window").
  uint64_t open_taken = txns_taken_ - std::min(txns_taken_, txns_of_ended_);
  uint64_t allowance = ready_.size() * uint64_t{pool_cfg_.session.max_messages};
  uint64_t unused = allowance > open_taken ? allowance - open_taken : 0;
  uint64_t committed = opening_ + std::min(unused, ready_.size() * per_round_);
  return left > committed;
}

void LoadShard::pool_failed(const std::string& why, bool fatal) {
  (void)fatal;
  r_.failure = why;
  finish();
}

bool LoadShard::reserve_connection() {
  ++opening_;
  return true;
}

void LoadShard::session_ready(const Session& s) {
  const ConnInfo* ci = s.conn_info();
  ++r_.connections_ready;
  if (ready_.insert(&s).second && opening_ > 0) --opening_;
  if (ci == nullptr) return;
  r_.connect.record(ci->connect_us);
  if (ci->tls_us != 0) r_.tls.record(ci->tls_us);
}

void LoadShard::session_ended(const Session& s, const std::string& tls) {
  (void)tls;
  if (ready_.erase(&s) == 0 && opening_ > 0) --opening_;
  txns_of_ended_ += s.transactions();
  const SessionEnd& e = s.end();
  if (e.cause == EndCause::kNone) return;
  // Connections the run's own stop closes before they carried anything are no error.
  if (stopping_ && e.cause == EndCause::kClosedByDriver && !s.ready_reached()) return;
  // A connection that never got to send mail (refused, timed out, TLS, login) vs one that
  // ended under way (421, timeout, lost).
  std::string kind = s.ready_reached() ? std::string("session ") + end_cause_name(e.cause)
                     : e.cause == EndCause::kClosedByDriver
                         ? std::string("connect failed")
                         : std::string("session setup ") + end_cause_name(e.cause);
  note_error(kind, s.end_reason());
  ++second_.errors;
}

void LoadShard::arm_tick() {
  if (tick_->active()) return;
  uint64_t due = sched_.next_due_us();
  if (due == 0) return;
  uint64_t now = clock_.mono_us();
  // libuv's timers count whole milliseconds: at least one, so a due time in this
  // millisecond does not spin the loop.
  uint64_t ms = due > now ? (due - now + 999) / 1000 : 1;
  tick_->again(std::max<uint64_t>(ms, 1));
}

void LoadShard::on_tick() {
  if (stopping_) return;
  pool_->poke();  // idle sessions take what is due; a session still waiting re-arms
  if (sched_.backlog() > 0 && !tick_->active()) tick_->again(1);
}

void LoadShard::on_end() {
  if (stopping_) return;
  // libuv counts from its cached loop time, so the timer may fire a little early.
  uint64_t now = clock_.mono_us(), end = sched_.nominal_end_us();
  if (now < end) {
    end_->again((end - now + 999) / 1000);
    return;
  }
  pool_->poke();  // what fell due since the last tick starts now, if a session has room
  r_.not_started = sched_.close();
  begin_stop("the run's time is up");
}

void LoadShard::on_signal(bool first) {
  if (finished_) return;
  if (!first || stopping_) {
    pool_->abort("interrupted again");
    return;
  }
  r_.interrupted = true;
  r_.not_started = sched_.close();
  begin_stop("interrupted");
}

void LoadShard::stop_from_peer(const std::string& why) {
  if (finished_ || stopping_) return;
  r_.not_started += sched_.close();
  begin_stop(why);
}

void LoadShard::begin_stop(const std::string& why) {
  stopping_ = true;
  tick_->stop();
  drain_->again(cfg_.drain_ms);
  pool_->stop(why);
}

void LoadShard::on_drain() {
  note_error("drain timeout", "transactions still in flight " +
                                  std::to_string(cfg_.drain_ms / 1000) +
                                  " s after the end: connections dropped");
  pool_->abort("the drain time is up");
}

void LoadShard::take_second(SecondPart& out) {
  out.completed = second_.completed;
  out.errors = second_.errors;
  out.open_connections = pool_ ? pool_->open_connections() : 0;
  out.backlog = sched_.backlog();
  out.in_flight = in_flight_;
  out.latency = second_.latency;
  second_.latency.reset();
  second_.completed = 0;
  second_.errors = 0;
}

void LoadShard::note_error(const std::string& kind, std::string_view example, uint64_t n) {
  r_.errors_total += n;
  auto [it, fresh] = r_.errors.try_emplace(kind);
  it->second.count += n;
  if (fresh) it->second.example.assign(example.substr(0, 300));
}

// Every recipient's cookie is its slot's index (a transaction has at least one).
LoadShard::TxnSlot* LoadShard::slot_of(const Txn& t) {
  return slots_[t.rcpts.front().cookie].get();
}

LoadShard::TxnSlot* LoadShard::acquire() {
  if (free_.empty()) {
    slots_.push_back(std::make_unique<TxnSlot>());
    slots_.back()->index = slots_.size() - 1;
    return slots_.back().get();
  }
  TxnSlot* s = free_.back();
  free_.pop_back();
  return s;
}

void LoadShard::release(TxnSlot* s) { free_.push_back(s); }

// A fresh transaction in a reused slot: the vectors and strings keep their capacity.
void LoadShard::fill(TxnSlot& s, bool bdat) {
  std::vector<TxnRcpt> rcpts = std::move(s.txn.rcpts);
  std::string final_text = std::move(s.txn.final_text);
  s.txn = Txn{};
  rcpts.clear();
  final_text.clear();
  s.txn.rcpts = std::move(rcpts);
  s.txn.final_text = std::move(final_text);
  s.ok = true;
  s.error_kind = nullptr;
  s.error_code = 0;
  s.txn.mail_from = cfg_.mail_from;
  s.addrs.resize(cfg_.rcpts_per_msg);
  for (uint32_t i = 0; i < cfg_.rcpts_per_msg; ++i) {
    std::string& a = s.addrs[i];
    if (!cfg_.recipients.empty()) {
      a.assign(cfg_.recipients[next_rcpt_ % cfg_.recipients.size()]);
    } else {
      std::array<char, 24> num{};
      auto r = std::to_chars(num.data(), num.data() + num.size(), next_rcpt_);
      a.assign("user");
      a.append(num.data(), r.ptr);
      a.push_back('@');
      a.append(cfg_.rcpt_domain);
    }
    next_rcpt_ += rcpt_stride_;  // the shards number the recipients in turn, none twice
    s.txn.rcpts.push_back(TxnRcpt{a, s.index, RcptState::kWaiting});
  }
  s.txn.body = bdat ? std::span<const std::string_view>(piece_bdat_)
                    : std::span<const std::string_view>(piece_data_);
  s.txn.body_size = bdat ? cfg_.body_bdat.size() : cfg_.body_data.size();
  s.txn.eight_bit = cfg_.eight_bit;
  s.txn.smtputf8 = cfg_.smtputf8;
}

void LoadShard::finish() {
  if (finished_) return;
  finished_ = true;
  if (!stopping_) r_.not_started += sched_.close();
  stopping_ = true;
  if (tick_) tick_->stop();
  if (end_) end_->stop();
  if (drain_) drain_->stop();
  r_.measured_taken = sched_.measured_taken();
  if (pool_) {
    r_.connections_opened = pool_->stats().connections_opened;
    r_.connections_failed = pool_->stats().connections_failed;
  }
  finished_cb_();
}

}  // namespace sb
