#include "load/load_run.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "base/clock.h"
#include "base/signal_mask.h"
#include "load/load_report.h"
#include "loop/timer.h"
#include "loop/worker.h"

namespace sb {

LatencyFigures latency_figures(const LatencyHistogram& h) {
  LatencyFigures f;
  f.count = h.count();
  if (f.count == 0) return f;
  f.p50 = h.percentile(50);
  f.p90 = h.percentile(90);
  f.p99 = h.percentile(99);
  f.p999 = h.percentile(99.9);
  f.max = h.max();
  f.min = h.min();
  f.mean = h.mean();
  return f;
}

namespace {

// One transaction handed to a session, with the storage its views point into. Slots are
// reused, so after the first window nothing is allocated per message.
struct TxnSlot {
  Txn txn;
  uint64_t index = 0;  // in LoadRun::slots_, the cookie of its recipients
  std::vector<std::string> addrs;
  uint64_t intended_us = 0;
  bool measured = false;
  bool ok = true;
  const char* error_kind = nullptr;
  int error_code = 0;
  std::string error_text;
};

class LoadRun final : public PoolHost {
 public:
  LoadRun(const LoadConfig& cfg, std::FILE* out)
      : cfg_(cfg), out_(out), sched_(clock_, cfg.schedule), worker_(0) {
    piece_data_[0] = cfg_.body_data;
    piece_bdat_[0] = cfg_.body_bdat;
  }

  LoadSummary run() {
    // SIGINT/SIGTERM end the run early with its summary (what is in flight finishes); a
    // second one drops the connections. One thread waits for them; the loop has them blocked.
    std::optional<RunSignals> signals(
        [this](int n) { worker_.post([this, first = n == 0] { on_signal(first); }); });
    worker_.post([this] { begin(); });
    worker_.start();
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return done_; });
    }
    signals.reset();
    worker_.post([this] {
      tick_.reset();
      second_.reset();
      end_.reset();
      drain_.reset();
      pool_.reset();
    });
    worker_.stop_and_join();
    return summary_;
  }

  // PoolHost.
  Next next_txn(bool bdat, Txn*& out) override {
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
    if (s.measured) ++started_;
    // The last one is out: sessions waiting for more must hear that none will come.
    if (sched_.exhausted()) tick_->again(1);
    out = &t->txn;
    return Next::kTxn;
  }

  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override {
    (void)i;
    ++replies_[static_cast<size_t>(std::clamp(code, 0, 999))];
    TxnSlot* s = slot_of(t);
    if (v == Verdict::kSent) {
      if (s->measured) ++recipients_sent_;
      return;
    }
    if (s->ok) {  // the transaction's first refusal names its error
      s->ok = false;
      s->error_kind = code >= 500 ? "reply 5xx" : code >= 400 ? "reply 4xx" : "no reply";
      s->error_code = code;
      s->error_text.assign(text.substr(0, 200));
    }
  }

  void txn_done(Txn& t) override {
    TxnSlot* s = slot_of(t);
    uint64_t now = clock_.mono_us();
    --in_flight_;
    uint64_t lat = now > s->intended_us ? now - s->intended_us : 0;
    second_latency_.record(lat);  // the per-second view shows the warm-up too
    ++second_completed_;
    if (s->measured) {
      latency_.record(lat);
      ++completed_;
      last_completion_us_ = now;
      if (s->ok) {
        ++sent_;
        bytes_ += t.body_size;
      } else {
        ++failed_;
      }
    } else {
      ++warmup_done_;
    }
    if (!s->ok) {
      note_error(s->error_kind, s->error_text);
      ++second_errors_;
    }
    release(s);
  }

  bool has_work() override { return !stopping_ && !sched_.exhausted(); }

  void pool_failed(const std::string& why, bool fatal) override {
    (void)fatal;
    failure_ = why;
    finish();
  }

  void pool_idle() override { finish(); }

  void session_ready(const Session& s) override {
    const ConnInfo* ci = s.conn_info();
    ++connections_ready_;
    if (ci == nullptr) return;
    connect_.record(ci->connect_us);
    if (ci->tls_us != 0) tls_.record(ci->tls_us);
  }

  void session_ended(const Session& s, const std::string& tls) override {
    (void)tls;
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
    ++second_errors_;
  }

 private:
  void begin() {
    pool_ = std::make_unique<ConnectionPool>(worker_.loop(), cfg_.pool, *this);
    tick_ = std::make_unique<Timer>(worker_.loop(), [this] { on_tick(); });
    second_ = std::make_unique<Timer>(worker_.loop(), [this] { on_second(); });
    end_ = std::make_unique<Timer>(worker_.loop(), [this] { on_end(); });
    drain_ = std::make_unique<Timer>(worker_.loop(), [this] { on_drain(); });
    sched_.start();
    second_start_us_ = sched_.start_us();
    second_->again(1000, 1000);
    if (cfg_.schedule.duration_us != 0 && cfg_.schedule.messages == 0) {
      end_->again((cfg_.schedule.warmup_us + cfg_.schedule.duration_us + 999) / 1000);
    }
    pool_->poke();
  }

  void arm_tick() {
    if (tick_->active()) return;
    uint64_t due = sched_.next_due_us();
    if (due == 0) return;
    uint64_t now = clock_.mono_us();
    // libuv's timers count whole milliseconds: at least one, so a due time in this
    // millisecond does not spin the loop.
    uint64_t ms = due > now ? (due - now + 999) / 1000 : 1;
    tick_->again(std::max<uint64_t>(ms, 1));
  }

  void on_tick() {
    if (stopping_) return;
    pool_->poke();  // idle sessions take what is due; a session still waiting re-arms
    if (sched_.backlog() > 0 && !tick_->active()) tick_->again(1);
  }

  void on_end() {
    if (stopping_) return;
    // libuv counts from its cached loop time, so the timer may fire a little early.
    uint64_t now = clock_.mono_us(), end = sched_.nominal_end_us();
    if (now < end) {
      end_->again((end - now + 999) / 1000);
      return;
    }
    pool_->poke();  // what fell due since the last tick starts now, if a session has room
    not_started_ = sched_.close();
    begin_stop("the run's time is up");
  }

  void on_signal(bool first) {
    if (finished_) return;
    if (!first || stopping_) {
      pool_->abort("interrupted again");
      return;
    }
    interrupted_ = true;
    not_started_ = sched_.close();
    begin_stop("interrupted");
  }

  void begin_stop(const std::string& why) {
    stopping_ = true;
    tick_->stop();
    drain_->again(cfg_.drain_ms);
    pool_->stop(why);
  }

  void on_drain() {
    note_error("drain timeout", "transactions still in flight " +
                                    std::to_string(cfg_.drain_ms / 1000) +
                                    " s after the end: connections dropped");
    pool_->abort("the drain time is up");
  }

  void on_second() {
    uint64_t now = clock_.mono_us();
    SecondReport r;
    r.second = ++seconds_;
    r.warmup = second_start_us_ < sched_.measure_start_us();  // the second began in it
    double span = static_cast<double>(now - second_start_us_) / 1e6;
    r.completed = second_completed_;
    r.rate = span > 0 ? static_cast<double>(second_completed_) / span : 0;
    r.asked_rate = sched_.rate();
    r.errors = second_errors_;
    r.open_connections = pool_->open_connections();
    r.backlog = sched_.backlog();
    r.in_flight = in_flight_;
    r.latency = latency_figures(second_latency_);
    max_open_ = std::max<uint64_t>(max_open_, r.open_connections);
    second_latency_.reset();
    second_completed_ = 0;
    second_errors_ = 0;
    second_start_us_ = now;
    if (cfg_.json) {
      std::fprintf(out_, "%s\n", second_json(r).c_str());
      std::fflush(out_);
    }
    if (cfg_.progress) std::fprintf(stderr, "%s\n", second_text(r).c_str());
  }

  void note_error(const std::string& kind, std::string_view example, uint64_t n = 1) {
    errors_total_ += n;
    auto [it, fresh] = errors_.try_emplace(kind);
    it->second.count += n;
    if (fresh) it->second.example.assign(example.substr(0, 300));
  }

  // Every recipient's cookie is its slot's index (a transaction has at least one).
  TxnSlot* slot_of(const Txn& t) { return slots_[t.rcpts.front().cookie].get(); }

  TxnSlot* acquire() {
    if (free_.empty()) {
      slots_.push_back(std::make_unique<TxnSlot>());
      slots_.back()->index = slots_.size() - 1;
      return slots_.back().get();
    }
    TxnSlot* s = free_.back();
    free_.pop_back();
    return s;
  }
  void release(TxnSlot* s) { free_.push_back(s); }

  // A fresh transaction in a reused slot: the vectors and strings keep their capacity.
  void fill(TxnSlot& s, bool bdat) {
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
      ++next_rcpt_;
      s.txn.rcpts.push_back(TxnRcpt{a, s.index, RcptState::kWaiting});
    }
    s.txn.body = bdat ? std::span<const std::string_view>(piece_bdat_)
                      : std::span<const std::string_view>(piece_data_);
    s.txn.body_size = bdat ? cfg_.body_bdat.size() : cfg_.body_data.size();
    s.txn.eight_bit = cfg_.eight_bit;
    s.txn.smtputf8 = cfg_.smtputf8;
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    if (!stopping_) not_started_ += sched_.close();
    stopping_ = true;
    tick_->stop();
    second_->stop();
    end_->stop();
    drain_->stop();
    summarize();
    std::lock_guard<std::mutex> g(mu_);
    done_ = true;
    cv_.notify_all();
  }

  void summarize() {
    LoadSummary& s = summary_;
    s.open_loop = sched_.open_loop();
    s.asked_rate = sched_.rate();
    uint64_t from = sched_.measure_start_us();
    uint64_t until =
        interrupted_ ? last_completion_us_ : std::max(sched_.nominal_end_us(), last_completion_us_);
    s.elapsed_s = until > from ? static_cast<double>(until - from) / 1e6 : 0;
    s.achieved_rate = s.elapsed_s > 0 ? static_cast<double>(sent_) / s.elapsed_s : 0;
    s.planned = sched_.open_loop() ? sched_.measured_taken() + not_started_ : 0;
    s.started = started_;
    s.completed = completed_;
    s.sent = sent_;
    s.failed = failed_;
    s.not_started = not_started_;
    s.warmup = warmup_done_;
    s.recipients_sent = recipients_sent_;
    s.bytes = bytes_;
    s.latency = latency_figures(latency_);
    s.connect = latency_figures(connect_);
    s.tls = latency_figures(tls_);
    s.connections_opened = pool_->stats().connections_opened;
    s.connections_failed = pool_->stats().connections_failed;
    s.max_open = std::max<uint64_t>(max_open_,
                                    std::min<uint64_t>(connections_ready_, cfg_.pool.connections));
    for (size_t c = 1; c < replies_.size(); ++c)  // 0: no reply came
      if (replies_[c] != 0) s.replies.emplace_back(static_cast<int>(c), replies_[c]);
    s.interrupted = interrupted_;
    if (interrupted_) {
      // The rest of the schedule was cut short by the user, not missed by the server.
      s.planned -= not_started_;
      s.not_started = not_started_ = 0;
    }
    if (not_started_ != 0) {
      note_error(
          "not started",
          std::to_string(not_started_) + " transactions were due before the end and never started",
          not_started_);
    }
    if (!failure_.empty()) note_error("pool failed", failure_);
    for (auto& [kind, e] : errors_) s.errors.push_back(ErrorCount{kind, e.count, e.example});
    s.errors_total = errors_total_;
    s.failure = failure_;
    s.rate_met = !s.open_loop || (s.asked_rate > 0 &&
                                  std::abs(s.achieved_rate - s.asked_rate) <= 0.01 * s.asked_rate);
    s.exit_code = s.rate_met && s.errors_total == 0 && s.failure.empty() ? 0 : 1;
  }

  struct ErrorEntry {
    uint64_t count = 0;
    std::string example;
  };

  const LoadConfig& cfg_;
  std::FILE* out_;
  SystemClock clock_;
  LoadSchedule sched_;
  Worker worker_;
  std::unique_ptr<ConnectionPool> pool_;
  std::unique_ptr<Timer> tick_, second_, end_, drain_;
  std::string_view piece_data_[1];
  std::string_view piece_bdat_[1];
  std::vector<std::unique_ptr<TxnSlot>> slots_;
  std::vector<TxnSlot*> free_;
  uint64_t next_rcpt_ = 0;

  LatencyHistogram latency_, second_latency_, connect_, tls_;
  std::array<uint64_t, 1000> replies_{};
  std::map<std::string, ErrorEntry> errors_;
  uint64_t errors_total_ = 0;
  uint64_t started_ = 0, completed_ = 0, sent_ = 0, failed_ = 0, warmup_done_ = 0;
  uint64_t recipients_sent_ = 0, bytes_ = 0, not_started_ = 0, in_flight_ = 0;
  uint64_t connections_ready_ = 0, max_open_ = 0;
  uint64_t last_completion_us_ = 0;
  uint64_t seconds_ = 0, second_start_us_ = 0, second_completed_ = 0, second_errors_ = 0;
  std::string failure_;
  bool stopping_ = false;
  bool finished_ = false;
  bool interrupted_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  LoadSummary summary_;
};

}  // namespace

LoadSummary run_load(const LoadConfig& cfg, std::FILE* out) {
  // The histograms are large for a stack: the run lives on the heap.
  auto run = std::make_unique<LoadRun>(cfg, out);
  return run->run();
}

}  // namespace sb
