// One mailing run: the journal thread (this one) claims recipients and commits outcomes in
// batches; each worker loop renders messages and drives its own connection pool.
#include "cli/mailing.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/file.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "cli/dkim_options.h"
#include "cli/pipeline.h"
#include "cli/relay_options.h"
#include "cli/rendered_header.h"
#include "cli/run_report.h"
#include "dns/mx_resolver.h"
#include "loop/display_text.h"
#include "loop/fd_limit.h"
#include "loop/worker.h"
#include "message/dkim.h"
#include "message/template.h"
#include "returns/classify.h"
#include "returns/task_keys.h"
#include "smtp/pool.h"
#include "store/account_quota.h"
#include "store/accounting.h"
#include "store/eml_files.h"
#include "store/read_file.h"
#include "store/task_store.h"

namespace sb {

namespace {

constexpr size_t kBatch = 512;          // recipients claimed per request
constexpr size_t kOutcomeFlush = 256;   // outcomes a worker hands over at once
constexpr uint64_t kFlushMs = 50;       // ... or after this long (at most the commit interval)
constexpr size_t kDirectQueue = 32768;  // --direct: recipients a worker holds queued
constexpr uint64_t kRenderSliceNs = 5000000;  // rendering one loop iteration may do (5 ms)


uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

// The part after the last '@', lower-cased (ASCII): what routing and worker ownership key on.
std::string domain_of(const std::string& email) {
  size_t at = email.rfind('@');
  std::string domain = at == std::string::npos ? std::string() : email.substr(at + 1);
  for (char& c : domain) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return domain;
}

// What one recipient contributes to a render; `now` stamps Date: and DKIM t=.
RenderInput render_input(const RecipientRow& row, int64_t now) {
  RenderInput in;
  in.email = row.email;
  in.values = &row.values;
  in.recipient_id = row.id;
  in.now = now;
  return in;
}

class Runner;

// One outcome on its way from a worker to the journal thread, with what the accounting log
// and the backup copy need (filled only when those are on).
struct Report {
  Outcome out;
  int64_t time_ms = 0;  // wall clock when the attempt ended
  std::string email;
  std::string peer;  // "IP:PORT"
  std::string tls_version;
  uint64_t conn_id = 0;
  uint32_t elapsed_ms = 0;
  std::string eml;                  // --backup-dir, sent only: the message as written to disk
  std::vector<std::string> values;  // --backup-dir: merge values, for the file name
};

// A claimed recipient never started: back to the status it had before the claim (so nothing
// stays in flight in the store).
void add_released(std::vector<Report>& out, const RecipientRow& row) {
  Report& r = out.emplace_back();
  r.out.id = row.id;
  r.out.status = row.status;
  r.out.status_only = true;
}

class Destination;

// A recipient on its way through a worker: the row, its rendered message, its transaction.
struct Job {
  RecipientRow row;
  std::string rcpt;                // RCPT TO when it differs from row.email (IDN domain)
  std::string verp_from;           // --return-path: this recipient's envelope sender
  std::string envid;               // --return-path: the DSN envelope id "<task key>.<id>"
  Destination* dest = nullptr;     // its queue, once routed
  Job* leader = nullptr;           // the job whose message and transaction carry this one
  uint64_t sent_at = 0;  // wall-clock ms when the throttle let it go
  RenderedMessage msg;
  int64_t rendered_at = 0;  // the render's "now" (Date:), to render the backup copy alike
  Txn txn;
  uint32_t run_attempts = 0;  // attempts in this run
  bool retry = false;
  bool retry_now = false;  // "too many recipients": the next transaction, without a backoff
  uint32_t not_tried = 0;  // of run_attempts, the "too many recipients" ones (no attempt used)
};

const std::string& rcpt_address(const Job* j) { return j->rcpt.empty() ? j->row.email : j->rcpt; }

// `email` with the part after its last '@' replaced (the A-label form of an IDN domain).
std::string with_domain(const std::string& email, const std::string& domain) {
  return email.substr(0, email.rfind('@') + 1) + domain;
}

// --direct: recipients of one domain handed from the worker that looked the domain up to the
// worker that owns its destination (its MX set), with the answer, so the owner needs no
// lookup of its own.
struct Handover {
  std::string domain;
  std::shared_ptr<const dns::MxResult> mx;
  struct Rcpt {
    RecipientRow row;
    uint32_t run_attempts = 0;
  };
  std::vector<Rcpt> rcpts;
};

// --direct: the worker that owns a destination: every domain of one MX set is queued, and its
// connections counted, on one loop.
size_t owner_of_route(const std::string& route_key, size_t workers) {
  return std::hash<std::string>{}(route_key) % workers;
}

class WorkerMailing;

// A queue of recipients for one destination (the relay, or one set of mail exchangers) with
// its connection pool. Owned by one worker loop, so its limits need no locks.
class Destination : public PoolHost {
 public:
  Destination(WorkerMailing& w, std::string key, const PoolConfig& pcfg)
      : w_(w), key_(std::move(key)), pcfg_(pcfg) {}
  ~Destination() override;

  // PoolHost / SessionHost: the worker does the work.
  Next next_txn(bool bdat, Txn*& out) override;
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) override;
  void txn_done(Txn& t) override;
  bool has_work() override { return !ready_.empty() && !backing_off_; }
  void pool_failed(const std::string& why, bool fatal) override;
  void pool_idle() override;
  uint64_t connect_delay_ms() override;
  bool reserve_connection() override;
  void session_ended(const Session& s, const std::string& tls) override;

  void start(uv_loop_s* loop);
  void poke() {
    if (pool_ != nullptr) pool_->poke();
  }

 private:
  friend class WorkerMailing;
  WorkerMailing& w_;
  std::string key_;  // the route key ("relay" for the relay)
  PoolConfig pcfg_;
  std::unique_ptr<ConnectionPool> pool_;
  // Direct: this destination's own push-back (AIMD on "slow down", a pause on a quota reply):
  // one receiver asking us to slow down must not slow the others.
  std::unique_ptr<Throttle> push_;
  std::deque<Job*> ready_;
  bool backing_off_ = false;     // waiting out a backoff (timer_); its pool has failed
  uint32_t backoff_level_ = 0;   // failures in a row without a session reaching MAIL
  uv_timer_t* timer_ = nullptr;  // the backoff
  bool starved_ = false;         // in the worker's starved list
};

class WorkerMailing {
 public:
  WorkerMailing(Runner& runner, Worker& worker, const CompiledTemplate& tpl,
                const MailingConfig& cfg, const PoolConfig& pcfg, SharedThrottle& throttle);
  void start();
  void add_batch(std::vector<RecipientRow> rows, bool exhausted);
  // --direct: recipients whose destination this worker owns, from the worker that looked
  // their domain up.
  void adopt(std::vector<Handover> hs);
  void abort(const std::string& why);
  // SIGINT/SIGTERM: start nothing new; transactions under way finish.
  void stop_new();
  void destroy();  // on the loop thread; frees this
  size_t index() const { return static_cast<size_t>(worker_.index()); }  // in Runner::mailings_

 private:
  friend class Runner;
  friend class Destination;
  Job* new_job();
  void recycle(Job* j);
  // Attempts left in this run: "too many recipients" deferrals do not use one up.
  bool may_retry(const Job* j) const {
    return j->run_attempts - j->not_tried < cfg_.max_attempts;
  }
  void record(Job* j, RcptStatus s, int code, std::string_view text, const Txn* t = nullptr);
  void release(Job* j);
  void release_row(const RecipientRow& row);
  void tell_settled();
  void flush_outcomes();
  void maybe_request();
  void maybe_finish();
  void drop_queued();
  void arm_retry();
  void retry_due();
  // Pokes the destinations with queued work at `at_wall_ms` (wall clock): after a throttle
  // refusal, a render slice used up, or another worker holding a destination's connections.
  // One timer; an earlier time wins.
  void poke_later(uint64_t at_wall_ms);
  uint64_t now() const { return uv_now(worker_.loop()); }
  // A deferred recipient's retry is due soon enough to keep an idle session open for it.
  bool retry_soon() const;
  uint64_t backoff_ms(uint32_t level);

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

  // Destination callbacks.
  SessionHost::Next next_txn(Destination& d, bool bdat, Txn*& out);
  void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text);
  void txn_done(Txn& t);
  void dest_failed(Destination& d, const std::string& why, bool fatal);
  void backoff_over(Destination& d);
  bool reserve_connection(Destination& d);
  void connection_ended(Destination& d, const Session& s);

  Runner& runner_;
  Worker& worker_;
  CompiledTemplate tpl_;
  const MailingConfig& cfg_;
  PoolConfig pcfg_;
  SharedThrottle& throttle_;
  std::unique_ptr<dns::MxResolver> resolver_;  // direct delivery
  std::unordered_map<std::string, std::unique_ptr<Destination>> dests_;
  Destination* relay_ = nullptr;
  // Direct: recipients waiting for their domain's MX lookup, by domain.
  std::unordered_map<std::string, std::vector<Job*>> lookups_;
  std::vector<Destination*> touched_;  // got recipients; poked once the batch is routed
  // Direct: domains already routed, until their DNS answer expires: to a destination here,
  // or (dest null) to the worker `owner`.
  struct Route {
    Destination* dest;
    std::string alabel;  // the A-label domain for RCPT TO when the domain is not ASCII
    uint64_t expires_ms;
    size_t owner = 0;
    std::shared_ptr<const dns::MxResult> mx;  // for the owner, when dest is null
  };
  // Direct: recipients on their way to other workers, by owner, then by domain; sent at the
  // end of each batch, lookup or retry round.
  std::vector<std::unordered_map<std::string, Handover>> outbox_;
  int64_t settled_ = 0;  // recipients that became settled (see Runner::unsettled_), not yet told
  std::unordered_map<std::string, Route> routes_;
  std::deque<Destination*> starved_;   // want a connection; the worker's budget is used up
  std::multimap<uint64_t, Job*> delayed_;
  std::vector<std::unique_ptr<Job>> jobs_;
  std::vector<Job*> free_;
  std::vector<Report> outcomes_;
  RenderedMessage backup_msg_;  // scratch for the undotted backup copy
  std::vector<Job*> group_;     // scratch: the recipients of one transaction
  uv_timer_t* flush_timer_ = nullptr;
  uv_timer_t* retry_timer_ = nullptr;
  uv_timer_t* poke_timer_ = nullptr;
  uint64_t poke_at_ = 0;  // when poke_timer_ fires (wall ms); 0: not armed
  std::mt19937 rng_;
  size_t queued_ = 0;    // jobs in destination queues or waiting for DNS
  uint64_t dns_lookups_ = 0;  // resolve_mx calls (one per domain per batch, cache hits too)
  uint64_t dns_cpu_ns_ = 0;   // thread CPU in resolve_mx calls (the rest: Resolver::cpu_ns)
  uint64_t handed_over_ = 0;  // recipients handed to the worker owning their destination
  size_t inflight_ = 0;  // transactions under way
  uint32_t open_conns_ = 0;
  uint64_t render_iter_ = 0;  // the loop time (uv_now) of the iteration render_ns_ counts
  uint64_t render_ns_ = 0;    // rendering time in that iteration
  bool yield_ = false;        // the slice is used up: sessions wait for the poke timer
  uint32_t budget_ = 1;  // connections this worker may have open at once
  bool group_rcpts_ = false;  // same content for everyone: several RCPTs per transaction
  bool requested_ = false;
  bool exhausted_ = false;
  bool finished_ = false;
  bool aborted_ = false;
  bool stopping_ = false;
};

// A session with nothing to send stays open (instead of QUIT and reconnect) when a retry is
// due within this long: deferred recipients would otherwise churn connections.
constexpr uint64_t kHoldForRetryMs = 30000;

class Runner {
 public:
  explicit Runner(const MailingConfig& cfg) : cfg_(cfg) {}
  ~Runner() {
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }
  int run();

  // Called from worker threads.
  void post_outcomes(std::vector<Report>& v) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (in_.empty()) in_.swap(v);
      else in_.insert(in_.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
    }
    v.clear();
    cv_.notify_one();
  }
  void request_batch(WorkerMailing* w) {
    {
      std::lock_guard<std::mutex> g(mu_);
      requests_.push_back(w);
    }
    cv_.notify_one();
  }
  void daily_limit_reached(uint64_t resume_at, bool account = false) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (daily_resume_at_ == 0) {
        daily_resume_at_ = resume_at;
        daily_by_account_ = account;
      }
    }
    cv_.notify_one();
  }
  // The sending account's share of the daily limit (see AccountQuota): recipients reserved
  // in the shared store and not yet handed to a session. Workers take from it per
  // transaction; the journal thread tops it up.
  bool account_limited() const { return account_ != nullptr; }
  // True and `n` taken; false: *resume_at is when the account has room again (0: a top-up
  // is on its way, ask again shortly).
  bool take_allowance(uint64_t n, uint64_t* resume_at) {
    int64_t have = allowance_.load(std::memory_order_acquire);
    while (have >= static_cast<int64_t>(n)) {
      if (allowance_.compare_exchange_weak(have, have - static_cast<int64_t>(n))) return true;
    }
    *resume_at = account_resume_at_.load(std::memory_order_acquire);
    if (*resume_at == 0 && !topup_wanted_.exchange(true)) {
      std::lock_guard<std::mutex> g(mu_);
      cv_.notify_one();
    }
    return false;
  }
  // Taken but not sent (a throttle refusal, a render failure, MAIL FROM never written).
  void return_allowance(uint64_t n) {
    if (n > 0) allowance_.fetch_add(static_cast<int64_t>(n), std::memory_order_acq_rel);
  }
  // A session got a greeting: a run that then stops because of the relay was stopped by the
  // relay (exit 5), not by an address nothing answers on (exit 2).
  void relay_answered() { relay_answered_.store(true, std::memory_order_relaxed); }
  // --limit: true while this run may start one more message.
  bool take_message() {
    return cfg_.limit == 0 || started_.fetch_add(1, std::memory_order_relaxed) < cfg_.limit;
  }
  void limit_reached() {
    limit_hit_.store(true);
    std::lock_guard<std::mutex> g(mu_);
    cv_.notify_one();
  }
  // --direct: recipients that may still move to another worker (see unsettled_). A worker
  // finishes only when there are none: until then one may be handed to it.
  int64_t unsettled() const { return unsettled_.load(std::memory_order_acquire); }
  size_t worker_count() const { return mailings_.size(); }
  // --direct: what each destination's own push-back throttle is built from.
  const ThrottleConfig& dest_throttle_config() const { return dest_tcfg_; }
  void add_pushback_stats(const ThrottleSnapshot& s) {
    std::lock_guard<std::mutex> g(mu_);
    ++pushed_dests_;
    dest_push_.pushbacks += s.pushbacks;
    dest_push_.slowdowns += s.slowdowns;
    dest_push_.quota_replies += s.quota_replies;
    dest_push_.quota_pauses += s.quota_pauses;
    dest_push_.rate_cuts += s.rate_cuts;
  }
  // Of those, the ones waiting to retry a failed lookup (minutes, maybe): sessions do not
  // stay open idle for them.
  int64_t dns_retrying() const { return dns_retrying_.load(std::memory_order_relaxed); }
  void add_dns_retrying(int64_t n) { dns_retrying_.fetch_add(n, std::memory_order_relaxed); }
  void settle(int64_t n) {
    if (n == 0) return;
    if (unsettled_.fetch_sub(n, std::memory_order_acq_rel) == n) {
      // The last one: workers waiting only for this learn it from the journal thread (which
      // also tears them down, so nothing is posted to a worker already gone).
      {
        std::lock_guard<std::mutex> g(mu_);
        settled_all_ = true;
      }
      cv_.notify_one();
    }
  }
  // --direct: hands recipients to the worker owning their destination, and tells the journal
  // thread, so that later rows of those domains go there at once.
  void hand_over(size_t owner, std::vector<Handover> hs) {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (const Handover& h : hs) moved_.emplace_back(h.domain, owner);
    }
    WorkerMailing* m = mailings_[owner];
    workers_[owner]->post([m, hs = std::move(hs)]() mutable { m->adopt(std::move(hs)); });
  }
  void add_dns_stats(uint64_t lookups, uint64_t queries, uint64_t cpu_ns, uint64_t domains,
                     uint64_t handed_over) {
    std::lock_guard<std::mutex> g(mu_);
    dns_lookups_ += lookups;
    dns_queries_ += queries;
    dns_cpu_ns_ += cpu_ns;
    dns_domains_ += domains;
    handed_over_ += handed_over;
  }
  void worker_finished(const std::string& failure, bool fatal = false) {
    {
      std::lock_guard<std::mutex> g(mu_);
      ++finished_;
      if (!failure.empty() && failure_.empty()) failure_ = failure;
      fatal_ = fatal_ || fatal;
    }
    cv_.notify_one();
  }

 private:
  int prepare();
  int prepare_task();
  void loop();
  void commit(std::vector<Report>& v);
  void filter_suppressed(std::vector<RecipientRow>& rows, std::vector<Report>& out);
  // The next kBatch recipients, marked in flight, suppressed ones answered in `outcomes`;
  // false (and the run's failure set) when the store fails. Sets exhausted_ at the end.
  bool claim_next(std::vector<RecipientRow>& rows, std::vector<Report>& outcomes);
  // --direct: answers batch requests from per-worker queues (see pending_).
  void serve_direct(const std::vector<WorkerMailing*>& requests, std::vector<Report>& outcomes);
  void release_pending(std::vector<Report>& outcomes);
  void stop_all_new();
  int run_pickup();
  void write_backup(const Report& r);
  int finish();  // summary, --reset-errors-after, exit code
  void print_progress(bool final_line);
  void save_throttle_state();
  // The resume check: a task resumed with another sender, relay or DKIM domain (0 or 2).
  int check_identity();
  // The sending account's quota: opened in run(), topped up by loop(), returned at the end.
  int open_account_quota();
  void top_up_allowance();
  void return_unused_allowance();
  int exit_code(bool all_done) const;
  uint64_t account_chunk_ = 32;  // recipients reserved per top-up (grows while used fast)
  uint64_t last_topup_ms_ = 0;

  MailingConfig cfg_;  // a copy: run() completes it (the envelope sender)
  std::string store_error_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<CompiledTemplate> tpl_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<WorkerMailing*> mailings_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Report> in_;
  std::vector<WorkerMailing*> requests_;
  std::vector<Outcome> scratch_;  // journal thread: the outcomes of one commit
  std::unique_ptr<AccountingLog> accounting_;
  std::unique_ptr<Classifier> classifier_;  // the accounting log's category column
  std::optional<EmlNamer> namer_;  // --backup-dir / --pickup
  bool name_uses_subject_ = false;  // the pattern has {{subject}}: render it per message
  std::string backup_error_;
  uint64_t backup_failures_ = 0;
  int lock_fd_ = -1;
  std::atomic<uint64_t> started_{0};
  std::atomic<bool> limit_hit_{false};
  bool limit_reported_ = false;
  size_t finished_ = 0;
  std::string failure_;
  uint64_t daily_resume_at_ = 0;  // set when the daily limit stopped the run
  bool fatal_ = false;            // credentials or TLS: reconnecting cannot help
  uint64_t dns_lookups_ = 0, dns_queries_ = 0, dns_cpu_ns_ = 0, dns_domains_ = 0;  // --direct
  uint64_t handed_over_ = 0;  // --direct: recipients handed to the worker owning their MX set
  ThrottleConfig dest_tcfg_;     // --direct: push-back only (see Destination::push_)
  ThrottleSnapshot dest_push_;   // --direct: summed over the destinations that were pushed back
  uint64_t pushed_dests_ = 0;
  // --direct: recipients claimed from the store that are not yet in a destination queue of
  // the worker owning it: held here (pending_), waiting for DNS, in a retry without a
  // destination, or being handed over. Claims add, workers settle.
  std::atomic<int64_t> unsettled_{0};
  std::atomic<int64_t> dns_retrying_{0};
  bool settled_all_ = false;                               // under mu_
  std::vector<std::pair<std::string, size_t>> moved_;      // under mu_: domain -> owner
  std::unordered_map<std::string, size_t> domain_owner_;   // journal thread: learnt from moved_
  std::unique_ptr<SharedThrottle> throttle_;
  // Journal-thread state.
  int64_t cursor_ = 0;
  // --direct: a domain's rows go to one worker: by a hash of the domain until a worker has
  // learnt the worker owning its destination (domain_owner_). Claimed rows wait here for
  // their worker's request; parked_ marks workers whose request waits for rows.
  std::vector<std::deque<RecipientRow>> pending_;
  std::vector<bool> parked_;
  size_t pending_total_ = 0;
  bool daily_reported_ = false;
  std::string daily_message_;
  bool exhausted_ = false;
  bool stop_requested_ = false;
  uint64_t todo_ = 0;
  uint64_t done_sent_ = 0, done_failed_ = 0, done_deferred_ = 0, done_suppressed_ = 0,
           attempts_ = 0;
  std::chrono::steady_clock::time_point t0_;
  bool progress_shown_ = false;
  std::chrono::steady_clock::time_point last_plain_progress_;
  std::atomic<int> signals_{0};  // SIGINT/SIGTERM received
  // Per recipient, not per attempt: recipients whose latest outcome in this run is deferred,
  // with their attempts in this run (a later outcome of the same recipient replaces it).
  std::unordered_map<int64_t, uint32_t> deferred_now_;
  uint64_t deferred_attempts_ = 0;  // the attempts of the recipients in deferred_now_
  // Account quota (AccountQuota): the store, the key, what is reserved and not yet used.
  std::unique_ptr<AccountQuota> account_;
  std::string account_key_;
  std::atomic<int64_t> allowance_{0};
  std::atomic<uint64_t> account_resume_at_{0};
  std::atomic<bool> topup_wanted_{false};
  std::vector<std::pair<uint64_t, uint64_t>> reservations_;  // (charged at, n), oldest first
  uint64_t account_used_ = 0;  // the account's count at the last reservation
  bool daily_by_account_ = false;  // under mu_: the account's quota stopped the run
  std::string account_error_;      // the quota store failed: nothing more is reserved
  std::atomic<bool> relay_answered_{false};
};

// ---------------------------------------------------------------------------- Destination

Destination::~Destination() {
  if (timer_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }
}

void Destination::start(uv_loop_s* loop) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop, timer_);
  timer_->data = this;
  pool_ = std::make_unique<ConnectionPool>(loop, pcfg_, *this);
}

SessionHost::Next Destination::next_txn(bool bdat, Txn*& out) { return w_.next_txn(*this, bdat, out); }
void Destination::rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) {
  w_.rcpt_outcome(t, i, v, code, text);
}
void Destination::txn_done(Txn& t) { w_.txn_done(t); }
void Destination::pool_failed(const std::string& why, bool fatal) { w_.dest_failed(*this, why, fatal); }
void Destination::pool_idle() { w_.maybe_finish(); }
uint64_t Destination::connect_delay_ms() {
  uint64_t n = wall_ms();
  uint64_t at = w_.throttle_.acquire_connect(n);
  return at > n ? at - n : 0;
}
bool Destination::reserve_connection() { return w_.reserve_connection(*this); }
void Destination::session_ended(const Session& s, const std::string& tls) {
  (void)tls;
  w_.connection_ended(*this, s);
}

// ---------------------------------------------------------------------------- WorkerMailing

WorkerMailing::WorkerMailing(Runner& runner, Worker& worker, const CompiledTemplate& tpl,
                             const MailingConfig& cfg, const PoolConfig& pcfg,
                             SharedThrottle& throttle)
    : runner_(runner), worker_(worker), tpl_(tpl), cfg_(cfg), pcfg_(pcfg), throttle_(throttle),
      rng_(static_cast<unsigned>(worker.index() * 7919 + ::getpid())) {
  budget_ = std::max<uint32_t>(1, pcfg.connections);
  // One message for several recipients only when every recipient gets the same bytes.
  // (A per-recipient unsubscribe URL makes every message different too.)
  // A VERP return path differs per recipient: one recipient per transaction.
  group_rcpts_ = cfg.direct && cfg.max_rcpt_per_txn > 1 && tpl_.placeholders().empty() &&
                 cfg.return_path.empty() &&
                 (cfg.message == nullptr || cfg.message->unsubscribe_url.find("{{") == std::string::npos);
}

void WorkerMailing::start() {
  flush_timer_ = new uv_timer_t;
  retry_timer_ = new uv_timer_t;
  poke_timer_ = new uv_timer_t;
  uv_timer_init(worker_.loop(), flush_timer_);
  uv_timer_init(worker_.loop(), retry_timer_);
  uv_timer_init(worker_.loop(), poke_timer_);
  flush_timer_->data = retry_timer_->data = poke_timer_->data = this;
  uv_timer_start(flush_timer_, [](uv_timer_t* t) {
    static_cast<WorkerMailing*>(t->data)->flush_outcomes();
  }, std::min<uint64_t>(kFlushMs, cfg_.commit_interval_ms), std::min<uint64_t>(kFlushMs, cfg_.commit_interval_ms));
  if (cfg_.direct) {
    auto r = make_mx_resolver(worker_.loop(), cfg_.lookup);
    if (!r.ok()) {
      finished_ = aborted_ = true;
      runner_.worker_finished("DNS resolver: " + r.error().message, true);
      return;
    }
    resolver_ = std::move(r).value();
    outbox_.resize(runner_.worker_count());
  } else {
    auto d = std::make_unique<Destination>(*this, "relay", pcfg_);
    relay_ = d.get();
    relay_->start(worker_.loop());
    dests_.emplace("relay", std::move(d));
  }
  maybe_request();
}

void WorkerMailing::destroy() {
  flush_outcomes();
  auto del = [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); };
  uv_close(reinterpret_cast<uv_handle_t*>(flush_timer_), del);
  uv_close(reinterpret_cast<uv_handle_t*>(retry_timer_), del);
  uv_close(reinterpret_cast<uv_handle_t*>(poke_timer_), del);
  // Nothing waits for DNS here any more (a worker finishes only when its queues are empty or
  // dropped), so lookups_ is empty and the callbacks shutdown() runs find nothing to do.
  lookups_.clear();
  if (resolver_) {
    runner_.add_dns_stats(dns_lookups_, resolver_->resolver().queries_started(),
                          dns_cpu_ns_ + resolver_->resolver().cpu_ns(), resolver_->cached_domains(),
                          handed_over_);
    resolver_->shutdown();
  }
  for (auto& [key, d] : dests_) {
    if (d->push_ != nullptr) {
      ThrottleSnapshot snap = d->push_->snapshot(wall_ms());
      if (snap.pushbacks > 0) runner_.add_pushback_stats(snap);
    }
    d->pool_.reset();
  }
  dests_.clear();
  resolver_.reset();
  delete this;
}

Job* WorkerMailing::new_job() {
  if (free_.empty()) {
    jobs_.push_back(std::make_unique<Job>());
    return jobs_.back().get();
  }
  Job* j = free_.back();
  free_.pop_back();
  return j;
}

void WorkerMailing::recycle(Job* j) {
  j->retry = false;
  j->retry_now = false;
  j->not_tried = 0;
  j->run_attempts = 0;
  j->row.values.clear();
  j->rcpt.clear();
  j->dest = nullptr;
  j->leader = nullptr;
  free_.push_back(j);
}

void WorkerMailing::add_batch(std::vector<RecipientRow> rows, bool exhausted) {
  requested_ = false;
  exhausted_ = exhausted_ || exhausted;
  if (aborted_ || stopping_) {
    // Claimed (in flight in the store) but never started: back to their earlier status.
    for (auto& r : rows) release_row(r);
    flush_outcomes();
    if (cfg_.direct) runner_.settle(static_cast<int64_t>(rows.size()));
    maybe_finish();
    return;
  }
  for (auto& r : rows) {
    Job* j = new_job();
    j->row = std::move(r);
    route(j);
  }
  poke_touched();
  send_handovers();
  tell_settled();
  maybe_request();
  maybe_finish();
}

void WorkerMailing::adopt(std::vector<Handover> hs) {
  std::vector<Job*> jobs;
  for (Handover& h : hs) {
    if (finished_ || aborted_ || stopping_) {
      // Never started here: back to their earlier status (a retry has its outcome already).
      for (auto& rc : h.rcpts) {
        if (rc.run_attempts == 0) release_row(rc.row);
      }
      settled_ += static_cast<int64_t>(h.rcpts.size());
      continue;
    }
    jobs.clear();
    for (auto& rc : h.rcpts) {
      Job* j = new_job();
      j->row = std::move(rc.row);
      j->run_attempts = rc.run_attempts;
      jobs.push_back(j);
    }
    route_resolved(h.domain, h.mx, jobs);
  }
  flush_outcomes();
  poke_touched();
  send_handovers();  // none, unless the answer names another owner than the sender thought
  tell_settled();
  maybe_finish();
}

void WorkerMailing::enqueue(Destination& d, Job* j) {
  j->dest = &d;
  if (d.ready_.empty()) touched_.push_back(&d);
  d.ready_.push_back(j);
  ++queued_;
}

void WorkerMailing::poke_touched() {
  std::vector<Destination*> t;
  t.swap(touched_);
  for (Destination* d : t) d->poke();
}

void WorkerMailing::route(Job* j) {
  if (!cfg_.direct) {
    enqueue(*relay_, j);
    return;
  }
  const std::string& e = j->row.email;
  std::string domain = domain_of(e);
  // A domain routed before and still within its DNS TTL skips the resolver (a lookup per
  // domain per batch was most of the DNS cost).
  if (auto m = routes_.find(domain); m != routes_.end()) {
    if (m->second.expires_ms > now()) {
      if (m->second.dest == nullptr) {
        hand_over(m->second.owner, domain, m->second.mx, j);
        return;
      }
      if (!m->second.alabel.empty()) j->rcpt = with_domain(e, m->second.alabel);
      enqueue(*m->second.dest, j);
      ++settled_;
      return;
    }
    routes_.erase(m);
  }
  auto [it, first] = lookups_.try_emplace(domain);
  it->second.push_back(j);
  ++queued_;
  if (!first) return;
  // Cached answers come back on the next loop turn too (never inside resolve_mx).
  uint64_t t0 = dns::dns_thread_cpu_ns();
  ++dns_lookups_;
  resolver_->resolve_mx(domain, [this, domain](const dns::MxResult& r) { on_mx(domain, r); });
  dns_cpu_ns_ += dns::dns_thread_cpu_ns() - t0;
}

void WorkerMailing::on_mx(const std::string& domain, const dns::MxResult& r) {
  auto it = lookups_.find(domain);
  if (it == lookups_.end()) return;  // dropped by a stop
  std::vector<Job*> jobs = std::move(it->second);
  lookups_.erase(it);
  queued_ -= jobs.size();
  for (const std::string& n : r.notes) {
    std::fprintf(stderr, "smtpblast: %s: %s\n", domain.c_str(), n.c_str());
  }
  if (!r.ok()) {
    for (Job* j : jobs) {
      ++j->run_attempts;
      if (r.status == dns::MxStatus::kPermanent) {
        // RFC 5321 §5.1, RFC 7505: no such domain, or one that accepts no mail.
        record(j, RcptStatus::kFailed, 0, r.message);
        recycle(j);
        ++settled_;
      } else {
        defer_for_retry(j, 0, r.message);  // SERVFAIL, timeout: never a bounce
      }
    }
    tell_settled();
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
    tell_settled();
    maybe_finish();
    return;
  }
  route_resolved(domain, std::make_shared<const dns::MxResult>(r), jobs);
  poke_touched();
  send_handovers();
  tell_settled();
}

void WorkerMailing::route_resolved(const std::string& domain,
                                   const std::shared_ptr<const dns::MxResult>& mx,
                                   std::vector<Job*>& jobs) {
  const dns::MxResult& r = *mx;
  std::string key = route_key(r);
  size_t owner = owner_of_route(key, runner_.worker_count());
  if (routes_.size() >= 100000) routes_.clear();  // bounded; the resolver keeps its cache
  if (owner != index()) {
    // The destination lives on another loop: its limits and its queue stay in one place.
    if (r.expires_ms > 0) routes_[domain] = Route{nullptr, std::string(), r.expires_ms, owner, mx};
    for (Job* j : jobs) hand_over(owner, domain, mx, j);
    return;
  }
  Destination& d = destination_for(key, r);
  // The RCPT address carries the A-label domain, so an IDN domain needs no SMTPUTF8.
  bool alabel = !is_ascii(domain);
  if (r.expires_ms > 0) routes_[domain] = Route{&d, alabel ? r.domain : std::string(), r.expires_ms};
  for (Job* j : jobs) {
    if (alabel) j->rcpt = with_domain(j->row.email, r.domain);
    enqueue(d, j);
  }
  settled_ += static_cast<int64_t>(jobs.size());
}

void WorkerMailing::hand_over(size_t owner, const std::string& domain,
                              const std::shared_ptr<const dns::MxResult>& mx, Job* j) {
  Handover& h = outbox_[owner][domain];
  if (h.rcpts.empty()) {
    h.domain = domain;
    h.mx = mx;
  }
  h.rcpts.push_back(Handover::Rcpt{std::move(j->row), j->run_attempts});
  recycle(j);
  ++handed_over_;
}

void WorkerMailing::send_handovers() {
  for (size_t o = 0; o < outbox_.size(); ++o) {
    if (outbox_[o].empty()) continue;
    std::vector<Handover> hs;
    hs.reserve(outbox_[o].size());
    for (auto& [domain, h] : outbox_[o]) hs.push_back(std::move(h));
    outbox_[o].clear();
    runner_.hand_over(o, std::move(hs));
  }
}

void WorkerMailing::tell_settled() {
  runner_.settle(settled_);
  settled_ = 0;
}

Destination& WorkerMailing::destination_for(const std::string& key, const dns::MxResult& r) {
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
  auto d = std::make_unique<Destination>(*this, key, p);
  d->push_ = std::make_unique<Throttle>(runner_.dest_throttle_config());
  Destination& ref = *d;
  dests_.emplace(key, std::move(d));
  ref.start(worker_.loop());
  return ref;
}

uint64_t WorkerMailing::backoff_ms(uint32_t level) {
  // Exponential backoff with jitter, so recipients deferred together do not come back
  // together: retry_delay, 2x, 4x ... up to retry_max.
  uint64_t base = static_cast<uint64_t>(cfg_.retry_delay_ms) << std::min<uint32_t>(level, 20);
  base = std::min<uint64_t>(base, cfg_.retry_max_ms);
  uint64_t jitter = base / 4 == 0 ? 0 : rng_() % (base / 4);
  return base + jitter;
}

void WorkerMailing::defer_for_retry(Job* j, int code, std::string_view why) {
  record(j, RcptStatus::kDeferred, code, why);
  if (may_retry(j) && !aborted_ && !stopping_) {
    j->dest = nullptr;  // looked up again
    runner_.add_dns_retrying(1);
    delayed_.emplace(now() + backoff_ms(j->run_attempts - 1), j);
    arm_retry();
  } else {
    recycle(j);
    ++settled_;  // (it came from a DNS lookup: unsettled until now)
  }
}

void WorkerMailing::maybe_request() {
  if (requested_ || exhausted_ || aborted_) return;
  // Direct delivery holds a deeper queue: recipients of one domain are spread over the whole
  // list, and only a deep queue gives each connection several messages to carry.
  if (queued_ >= (cfg_.direct ? kDirectQueue : kBatch) / 2) return;
  requested_ = true;
  runner_.request_batch(this);
}

SessionHost::Next WorkerMailing::next_txn(Destination& d, bool bdat, Txn*& out) {
  if (yield_) return SessionHost::Next::kWait;  // the poke timer ends it
  while (!d.ready_.empty() && !aborted_ && !stopping_ && !d.backing_off_) {
    // The recipients of this transaction: one, or (same content for all) up to
    // --max-rcpt-per-txn of this destination's queue.
    size_t n = 1;
    if (group_rcpts_) {
      // SMTPUTF8 recipients travel apart: a server without it would refuse the lot.
      bool utf8 = !is_ascii(rcpt_address(d.ready_[0]));
      size_t limit = std::min<size_t>(d.ready_.size(), cfg_.max_rcpt_per_txn);
      while (n < limit && !is_ascii(rcpt_address(d.ready_[n])) == utf8) ++n;
    }
    // Every limit (rate, burst, blocks, daily quota, push-back) is charged here, once per
    // message, just before it is handed to a session: across all workers and connections.
    Limit why = Limit::kNone;
    uint64_t now_wall = wall_ms();
    if (d.push_ != nullptr) {
      // This receiver's own pace first (without charging it): a refusal here must not use
      // up the run's tokens.
      if (uint64_t at = d.push_->peek(now_wall, n); at != 0) {
        poke_later(at);
        return SessionHost::Next::kWait;
      }
    }
    // The sending account's quota (shared with other tasks): taken from what this run has
    // reserved; when the account has no room left today the run stops as for --daily-limit.
    const bool account = runner_.account_limited();
    if (account) {
      uint64_t resume_at = 0;
      if (!runner_.take_allowance(n, &resume_at)) {
        if (resume_at != 0 && !cfg_.wait_daily) {
          runner_.daily_limit_reached(resume_at, true);
          return SessionHost::Next::kWait;
        }
        poke_later(resume_at != 0 ? resume_at : now_wall + 5);  // a top-up is on its way
        return SessionHost::Next::kWait;
      }
    }
    if (uint64_t at = throttle_.acquire(now_wall, n, &why); at != 0) {
      if (account) runner_.return_allowance(n);
      if (why == Limit::kDaily && !cfg_.wait_daily) {
        runner_.daily_limit_reached(at);
        return SessionHost::Next::kWait;  // the runner stops every worker
      }
      poke_later(at);
      return SessionHost::Next::kWait;
    }
    if (d.push_ != nullptr) (void)d.push_->acquire(now_wall, n);  // granted: peek said so
    group_.clear();
    while (group_.size() < n && !d.ready_.empty()) {
      Job* j = d.ready_.front();
      if (!runner_.take_message()) {
        runner_.limit_reached();  // the runner stops every worker; the rest stays queued
        break;
      }
      d.ready_.pop_front();
      --queued_;
      j->sent_at = now_wall;
      group_.push_back(j);
    }
    if (account) runner_.return_allowance(n - group_.size());
    if (group_.empty()) return SessionHost::Next::kWait;
    maybe_request();
    // Rendering (RSA signing above all: ~0.7 ms a message) must not hold the loop for long:
    // after kRenderSliceNs in one loop iteration the sessions wait for the next one.
    uint64_t iter = now();
    if (iter != render_iter_) {
      render_iter_ = iter;
      render_ns_ = 0;
    }
    uint64_t t_render = uv_hrtime();
    Job* lead = group_[0];
    RenderInput in = render_input(lead->row, static_cast<int64_t>(std::time(nullptr)));
    lead->rendered_at = in.now;
    Status st = tpl_.render(in, !bdat, lead->msg);
    render_ns_ += uv_hrtime() - t_render;
    if (render_ns_ > kRenderSliceNs) {
      render_ns_ = 0;
      yield_ = true;
      poke_later(wall_ms());  // a timer at 0 ms: after the loop has polled I/O
    }
    if (!st.ok()) {
      // This recipient's data cannot make a valid message; the run goes on.
      if (account) runner_.return_allowance(group_.size());
      for (Job* j : group_) {
        ++j->run_attempts;
        record(j, RcptStatus::kFailed, 0, st.error().message);
        recycle(j);
      }
      continue;
    }
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
      t.rcpts[i].address = rcpt_address(j);
      t.rcpts[i].cookie = reinterpret_cast<uint64_t>(j);
      ascii = ascii && is_ascii(t.rcpts[i].address);
    }
    t.body = lead->msg.pieces;
    t.body_size = lead->msg.size;
    t.eight_bit = lead->msg.eight_bit;
    t.smtputf8 = !ascii || lead->msg.smtputf8;  // a UTF-8 address in a header (RFC 6532)
    t.mail_code = 0;
    t.next_cmd = 0;  // still 0 in txn_done: MAIL FROM was never written (see txn_done)
    ++inflight_;
    out = &t;
    return SessionHost::Next::kTxn;
  }
  if (aborted_ || stopping_) {
    maybe_finish();
    return SessionHost::Next::kDone;
  }
  if (cfg_.direct) {
    // A session with nothing for its destination gives its connection up at once when another
    // destination waits for one; otherwise it waits while more recipients may come.
    // (Recipients unsettled anywhere may yet be handed to this worker's destinations, soon
    // unless they wait to retry a lookup.)
    bool more_may_come = !exhausted_ || !lookups_.empty() ||
                         runner_.unsettled() > runner_.dns_retrying() || retry_soon();
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

bool WorkerMailing::retry_soon() const {
  return !delayed_.empty() && delayed_.begin()->first <= now() + kHoldForRetryMs;
}

void WorkerMailing::release(Job* j) { release_row(j->row); }

void WorkerMailing::release_row(const RecipientRow& row) {
  add_released(outcomes_, row);
  if (outcomes_.size() >= kOutcomeFlush) flush_outcomes();
}

void WorkerMailing::record(Job* j, RcptStatus s, int code, std::string_view text,
                           const Txn* t) {
  Report& r = outcomes_.emplace_back();
  r.time_ms = static_cast<int64_t>(wall_ms());
  if (!cfg_.accounting_path.empty()) {
    r.email = j->row.email;
    if (t != nullptr) {
      if (t->conn != nullptr) {
        r.peer = t->conn->peer;
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
  Outcome& o = r.out;
  o.id = j->row.id;
  o.status = s;
  o.code = code;
  o.reply.assign(text.substr(0, 512));
  for (char& c : o.reply) {
    if (c == '\n') c = ' ';
  }
  o.attempts = j->row.attempts + j->run_attempts;
  o.time = static_cast<int64_t>(std::time(nullptr));
  if (outcomes_.size() >= kOutcomeFlush) flush_outcomes();
}

void WorkerMailing::flush_outcomes() {
  if (!outcomes_.empty()) runner_.post_outcomes(outcomes_);
}

void WorkerMailing::rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) {
  Job* j = reinterpret_cast<Job*>(t.rcpts[i].cookie);
  // 552 to RCPT after the server took others of this transaction is "too many recipients"
  // (RFC 5321 §4.5.3.1.10): this recipient was not tried. It goes into the next transaction
  // at once and keeps its attempts, so a relay that takes 100 recipients a message does not
  // leave the 301st deferred after --max-attempts 3. (A 552 to the first RCPT is counted: a
  // server that refuses every recipient that way must not be retried for ever.)
  const bool too_many = v == Verdict::kDeferred && code == 552 && t.accepted > 0;
  ++j->run_attempts;  // an outcome is recorded either way (release() relies on the count)
  if (too_many) ++j->not_tried;
  // "Slow down" and quota replies (421, 451 4.7.x, Office 365's 554 5.2.0 ...
  // SubmissionQuotaExceeded) cut the rate; they say nothing about the recipient, so a
  // permanent-looking quota reply defers rather than fails.
  // Direct: the reply counts against its destination only.
  Throttle* own = j->dest != nullptr ? j->dest->push_.get() : nullptr;
  PushBack pb = PushBack::kNone;
  if (code != 0) {
    pb = own != nullptr ? own->on_reply(code, text, wall_ms(), j->sent_at)
                        : throttle_.on_reply(code, text, wall_ms(), j->sent_at);
  }
  if (pb == PushBack::kQuota && v == Verdict::kFailed) v = Verdict::kDeferred;
  RcptStatus s = v == Verdict::kSent     ? RcptStatus::kSent
                 : v == Verdict::kFailed ? RcptStatus::kFailed
                                         : RcptStatus::kDeferred;
  record(j, s, code, text, &t);
  j->retry = s == RcptStatus::kDeferred && may_retry(j) && !aborted_ && !stopping_;
  j->retry_now = j->retry && too_many;
}

void WorkerMailing::txn_done(Txn& t) {
  --inflight_;
  if (t.next_cmd == 0 && !t.rcpts.empty()) {
    // MAIL FROM was never written (the connection went first): nothing reached the server,
    // so the quotas charged for it are given back.
    const Job* lead = reinterpret_cast<const Job*>(t.rcpts[0].cookie);
    throttle_.refund(lead->sent_at, t.rcpts.size());
    if (runner_.account_limited()) runner_.return_allowance(t.rcpts.size());
  }
  // The leader (rcpts[0]) owns the transaction: it is recycled last.
  for (size_t i = t.rcpts.size(); i-- > 0;) {
    Job* j = reinterpret_cast<Job*>(t.rcpts[i].cookie);
    j->leader = nullptr;
    if (j->retry && !aborted_) {
      j->retry = false;
      const uint64_t due = j->retry_now ? now() : now() + backoff_ms(j->run_attempts - 1);
      j->retry_now = false;
      delayed_.emplace(due, j);
    } else {
      recycle(j);
    }
  }
  arm_retry();
  maybe_request();
  maybe_finish();
}

void WorkerMailing::poke_later(uint64_t at_wall_ms) {
  if (poke_at_ != 0 && poke_at_ <= at_wall_ms) return;
  poke_at_ = std::max<uint64_t>(at_wall_ms, 1);
  uint64_t n = wall_ms();
  uv_timer_start(poke_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<WorkerMailing*>(t->data);
    self->poke_at_ = 0;
    self->yield_ = false;
    for (auto& [key, d] : self->dests_) {
      if (!d->ready_.empty()) d->poke();
    }
    // Sessions told to wait while the queue emptied learn now that the run is over.
    self->maybe_finish();
  }, at_wall_ms > n ? at_wall_ms - n : 0, 0);
}

void WorkerMailing::arm_retry() {
  if (delayed_.empty()) return;
  uint64_t due = delayed_.begin()->first;
  uint64_t n = now();
  uv_timer_start(retry_timer_, [](uv_timer_t* tm) {
    static_cast<WorkerMailing*>(tm->data)->retry_due();
  }, due > n ? due - n : 0, 0);
}

void WorkerMailing::retry_due() {
  uint64_t n = now();
  while (!delayed_.empty() && delayed_.begin()->first <= n) {
    Job* j = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    if (j->dest != nullptr) {
      enqueue(*j->dest, j);
    } else {
      runner_.add_dns_retrying(-1);
      route(j);  // direct: after a DNS failure, looked up again
    }
  }
  arm_retry();
  poke_touched();
  if (cfg_.direct) {
    send_handovers();
    tell_settled();
  }
}

void WorkerMailing::dest_failed(Destination& d, const std::string& why, bool fatal) {
  if (finished_) return;
  if (!cfg_.direct) {
    // The relay cannot be reached: this worker ends, and the runner stops the run.
    aborted_ = true;
    drop_queued();
    flush_outcomes();
    finished_ = true;
    runner_.worker_finished(why, fatal);
    return;
  }
  // Direct: the destination's queue waits out a backoff together (no hammering a dead host
  // per recipient); each queued recipient is charged one deferred attempt.
  std::deque<Job*> keep;
  for (Job* j : d.ready_) {
    ++j->run_attempts;
    record(j, RcptStatus::kDeferred, 0, why);
    if (may_retry(j) && !stopping_ && !aborted_) {
      keep.push_back(j);
    } else {
      --queued_;
      recycle(j);
    }
  }
  d.ready_.swap(keep);
  uint64_t delay = backoff_ms(d.backoff_level_++);
  d.backing_off_ = true;
  uv_timer_start(d.timer_, [](uv_timer_t* tm) {
    auto* dest = static_cast<Destination*>(tm->data);
    dest->w_.backoff_over(*dest);
  }, delay, 0);
  maybe_request();
  maybe_finish();
}

void WorkerMailing::backoff_over(Destination& d) {
  d.backing_off_ = false;
  // A fresh pool (the failed one refuses to open connections); never inside its callbacks.
  d.pool_ = std::make_unique<ConnectionPool>(worker_.loop(), d.pcfg_, d);
  if (!d.ready_.empty()) d.poke();
  maybe_finish();
}

bool WorkerMailing::reserve_connection(Destination& d) {
  // The destination's own limit (--max-connections-per-domain) is its pool's size: it lives
  // on this loop only. This is the worker's share of --connections.
  if (open_conns_ < budget_) {
    ++open_conns_;
    return true;
  }
  if (!d.starved_) {
    d.starved_ = true;
    starved_.push_back(&d);
    // Sessions idle on other destinations give their connections up (see next_txn).
    for (auto& [key, o] : dests_) {
      if (o.get() != &d && o->ready_.empty() && o->pool_ && o->pool_->open_connections() > 0) {
        o->poke();
      }
    }
  }
  return false;
}

void WorkerMailing::connection_ended(Destination& d, const Session& s) {
  if (open_conns_ > 0) --open_conns_;
  if (!s.greeting().empty()) runner_.relay_answered();
  if (s.ready_reached()) d.backoff_level_ = 0;
  // The budget freed up: the longest-waiting destination that still has work gets it.
  while (!starved_.empty() && open_conns_ < budget_) {
    Destination* w = starved_.front();
    starved_.pop_front();
    w->starved_ = false;
    if (w->has_work()) {
      w->poke();
      break;
    }
  }
}

void WorkerMailing::drop_queued() {
  // Recipients queued here but not started go back to the status they had before this run
  // claimed them (a retry already has its deferred outcome): nothing is lost, a later run
  // sends them.
  for (auto& [key, d] : dests_) {
    for (Job* j : d->ready_) {
      if (j->run_attempts == 0) release(j);
      recycle(j);
    }
    d->ready_.clear();
  }
  for (auto& [domain, jobs] : lookups_) {
    for (Job* j : jobs) {
      if (j->run_attempts == 0) release(j);
      recycle(j);
    }
    settled_ += static_cast<int64_t>(jobs.size());
  }
  lookups_.clear();
  queued_ = 0;
  for (auto& [due, j] : delayed_) {
    if (j->dest == nullptr) {  // a DNS retry: it might have moved
      ++settled_;
      runner_.add_dns_retrying(-1);
    }
    recycle(j);
  }
  delayed_.clear();
  uv_timer_stop(retry_timer_);
  flush_outcomes();  // the releases reach the journal before the settlement
  if (cfg_.direct) tell_settled();
}

void WorkerMailing::stop_new() {
  if (finished_) return;
  stopping_ = true;
  exhausted_ = true;
  drop_queued();
  // Idle sessions learn there is nothing more and QUIT; connections still waiting for a
  // greeting or a login carry nothing and close at once (a server that never greets must not
  // hold a stop for minutes).
  for (auto& [key, d] : dests_) {
    if (d->pool_) d->pool_->stop("run stopped");
  }
  maybe_finish();
}

void WorkerMailing::abort(const std::string& why) {
  if (finished_) return;
  aborted_ = true;
  drop_queued();
  for (auto& [key, d] : dests_) {
    if (d->pool_) d->pool_->abort(why);
  }
  maybe_finish();
}

void WorkerMailing::maybe_finish() {
  if (finished_) return;
  bool work_left = queued_ > 0 || !delayed_.empty() || inflight_ > 0;
  if (work_left || !(exhausted_ || aborted_)) return;
  // Direct: another worker may still hand recipients over (the journal thread wakes this
  // one when none are left anywhere).
  if (cfg_.direct && runner_.unsettled() > 0) return;
  if (open_conns_ > 0) {
    if (!aborted_) {
      for (auto& [key, d] : dests_) {
        if (d->pool_ && d->pool_->open_connections() > 0) d->poke();  // idle sessions QUIT
      }
    }
    return;
  }
  flush_outcomes();
  finished_ = true;
  runner_.worker_finished("");
}

// ---------------------------------------------------------------------------- Runner

}  // namespace

int lock_task(const std::string& task_path) {
  if (task_path == ":memory:") return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::string path = task_path + ".lock";
  // 0600 like the task: it names the task and the sender's PID, nobody else's business.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "smtpblast: cannot open lock file %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return -1;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {0};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
      std::fprintf(stderr, "smtpblast: task %s is being sent by process %s\n", task_path.c_str(),
                   pid.c_str());
    } else {
      std::fprintf(stderr, "smtpblast: cannot lock %s: %s\n", path.c_str(), std::strerror(err));
    }
    return -1;
  }
  // The file stays (removing it would race with a starting sender); the lock dies with us.
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the PID in it; the message just says "?".
  }
  return fd;
}

int import_recipients(TaskStore& store, const std::string& path, const ImportOptions& options) {
  auto rep = store.import_csv(path, options);
  if (!rep.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", rep.error().describe().c_str());
    return 2;
  }
  if (rep->removed > 0) {
    std::fprintf(stderr, "replaced the list of %llu recipients; ",
                 static_cast<unsigned long long>(rep->removed));
  }
  std::fprintf(stderr, "%s %llu recipients from %s",
               options.mode == ImportMode::kAppend ? "added" : "imported",
               static_cast<unsigned long long>(rep->imported), path.c_str());
  if (rep->already_present > 0) {
    std::fprintf(stderr, ", %llu already in the task skipped",
                 static_cast<unsigned long long>(rep->already_present));
  }
  if (rep->duplicates > 0) {
    std::fprintf(stderr, ", %llu duplicates skipped", static_cast<unsigned long long>(rep->duplicates));
  }
  if (rep->invalid > 0) {
    std::fprintf(stderr, ", %llu invalid (recorded as failed)", static_cast<unsigned long long>(rep->invalid));
  }
  std::fprintf(stderr, "\n");
  for (const auto& p : rep->problems) std::fprintf(stderr, "  %s\n", p.c_str());
  return 0;
}

namespace {

std::string read_file(const std::string& path, std::string* err) {
  auto r = read_whole_file(path);  // says why: missing, a directory, permission denied
  if (!r.ok()) {
    *err = r.error().message;
    return {};
  }
  return std::move(r).value();
}

// `send --recipients F` on a task that has its list: F is not imported again. When F is not
// the file the list came from, say how to use it: replace the list (while nothing was sent)
// or append its new rows.
void print_not_imported_again(TaskStore& store, const MailingConfig& cfg) {
  auto source = store.get_meta("sb.source");
  auto digest = store.get_meta("sb.source_digest");
  auto now = TaskStore::file_digest(cfg.recipients_path);
  std::string from = source.ok() && source->has_value() ? display_escape(**source) : "?";
  std::string task = display_escape(cfg.task_path);
  std::string file = display_escape(cfg.recipients_path);
  if (digest.ok() && digest->has_value() && now.ok() && **digest == *now) {
    std::fprintf(stderr, "task %s already holds its recipient list (imported from %s, the same "
                         "bytes as %s); it is not imported again\n",
                 task.c_str(), from.c_str(), file.c_str());
    return;
  }
  std::fprintf(stderr,
               "task %s already holds its recipient list (imported from %s); %s differs and is "
               "not imported again. To send to it instead while nothing was sent: smtpblast "
               "import --task %s --recipients %s --replace; to add its new rows: the same with "
               "--append\n",
               task.c_str(), from.c_str(), file.c_str(), task.c_str(), file.c_str());
}

// A run that fails at start leaves no task file it created itself: with no list in it,
// it is only clutter (a mistyped --task) that later looks like a task.
int Runner::prepare() {
  lock_fd_ = lock_task(cfg_.task_path);
  if (lock_fd_ < 0) return 2;
  std::error_code ec;
  bool fresh =
      cfg_.task_path != ":memory:" && !std::filesystem::exists(cfg_.task_path, ec) && !ec;
  int rc = prepare_task();
  if (rc != 0 && fresh && (!store_ || !store_->imported())) {
    store_.reset();  // closed first: SQLite removes its -wal and -shm files then
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(cfg_.task_path + suffix, ec);
    }
  }
  return rc;
}

int Runner::prepare_task() {
  auto st = TaskStore::open(cfg_.task_path, true);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    return 2;
  }
  store_ = std::move(st).value();
  // A new list is imported only after the template and every file and flag below were
  // checked against its header: a run that fails at start must not leave the task holding
  // a list the user then cannot correct.
  std::vector<std::string> csv_fields;
  if (!store_->imported()) {
    if (cfg_.recipients_path.empty()) {
      std::fprintf(stderr, "smtpblast: task %s has no recipients yet: give --recipients FILE\n",
                   cfg_.task_path.c_str());
      return 2;
    }
    auto f = TaskStore::read_csv_fields(cfg_.recipients_path, cfg_.csv);
    if (!f.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", f.error().describe().c_str());
      return 2;
    }
    csv_fields = std::move(f).value();
  } else if (!cfg_.recipients_path.empty()) {
    print_not_imported_again(*store_, cfg_);
  }
  const std::vector<std::string>& fields =
      store_->imported() ? store_->field_names() : csv_fields;

  std::string err;
  std::string raw = read_file(cfg_.template_path, &err);
  if (!err.empty()) {
    std::fprintf(stderr, "smtpblast: --template: %s\n", err.c_str());
    return 2;
  }
  auto key = store_->get_meta("task_key");
  std::string task_key;
  if (key.ok() && key->has_value()) {
    task_key = **key;
  } else {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    task_key = buf;
    if (auto s = store_->set_meta("task_key", task_key); !s.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", s.error().describe().c_str());
      return 2;
    }
  }
  if (!cfg_.return_path.empty()) {
    auto keys = task_match_keys(*store_, true);
    if (!keys.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", keys.error().describe().c_str());
      return 2;
    }
    cfg_.verp_key = keys->verp_key;
    cfg_.task_key = task_key;
  }
  TemplateOptions topts;
  topts.default_from = cfg_.from;
  topts.task_key = task_key;
  if (cfg_.message) apply_message_setup(*cfg_.message, task_key, topts);
  auto tpl = CompiledTemplate::compile(raw, topts);
  if (!tpl.ok()) {
    std::fprintf(stderr, "smtpblast: --template %s: %s\n", cfg_.template_path.c_str(),
                 tpl.error().message.c_str());
    return 2;
  }
  tpl_ = std::make_unique<CompiledTemplate>(std::move(tpl).value());
  if (auto s = tpl_->bind(fields); !s.ok()) {
    std::fprintf(stderr, "smtpblast: --template %s: %s\n", cfg_.template_path.c_str(),
                 s.error().message.c_str());
    return 2;
  }
  auto prev = store_->get_meta("template_hash");
  if (prev.ok() && prev->has_value() && **prev != tpl_->source_hash() && !cfg_.force) {
    std::fprintf(stderr,
                 "smtpblast: --template %s differs from the template this task was started with; "
                 "give --force to send the rest with the new one\n",
                 cfg_.template_path.c_str());
    return 2;
  }
  if (int rc = check_identity(); rc != 0) return rc;
  if (cfg_.message) print_message_warnings(*cfg_.message, *tpl_);

  auto tcfg = make_throttle_config(cfg_.throttle);
  if (!tcfg.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", tcfg.error().message.c_str());
    return 2;
  }
  throttle_ = std::make_unique<SharedThrottle>(*tcfg);
  // Direct delivery: receivers push back per destination; the user's limits stay global.
  dest_tcfg_.adaptive = tcfg->adaptive;
  dest_tcfg_.aimd = tcfg->aimd;
  dest_tcfg_.quota_pause_ms = tcfg->quota_pause_ms;
  dest_tcfg_.quota_pause_max_ms = tcfg->quota_pause_max_ms;
  if (!cfg_.backup_dir.empty() || !cfg_.pickup_dir.empty()) {
    const std::string& dir = cfg_.pickup_dir.empty() ? cfg_.backup_dir : cfg_.pickup_dir;
    if (auto w = check_writable_dir(dir, cfg_.pickup_dir.empty() ? "--backup-dir" : "--pickup");
        !w.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", w.error().message.c_str());
      return 2;
    }
    auto n = EmlNamer::create(
        cfg_.backup_name.empty() ? EmlNamer::kDefaultPattern : cfg_.backup_name, fields);
    if (!n.ok()) {
      std::fprintf(stderr, "smtpblast: --backup-name: %s\n", n.error().message.c_str());
      return 2;
    }
    namer_.emplace(std::move(n).value());
    name_uses_subject_ = cfg_.backup_name.find("subject") != std::string::npos;
  }
  if (!cfg_.accounting_path.empty()) {
    auto a = AccountingLog::open(cfg_.accounting_path);
    if (!a.ok()) {
      std::fprintf(stderr, "smtpblast: --accounting: %s\n", a.error().message.c_str());
      return 2;
    }
    accounting_ = std::move(a).value();
    // The shipped bounce rules label each refusal (the returns classifier, issue 14).
    if (auto c = Classifier::create(); c.ok()) {
      classifier_ = std::make_unique<Classifier>(std::move(c).value());
    }
  }
  if (!store_->imported()) {
    ImportOptions io;
    io.csv = cfg_.csv;
    if (int rc = import_recipients(*store_, cfg_.recipients_path, io); rc != 0) return rc;
    if (store_->field_names() != fields) {  // the file changed under us since its header
      std::fprintf(stderr, "smtpblast: %s changed while it was read; run again\n",
                   cfg_.recipients_path.c_str());
      return 2;
    }
  }
  // Recorded once the list is in: a first run that stopped before must not make the next,
  // corrected, template look like a change that needs --force.
  (void)store_->set_meta("template_hash", tpl_->source_hash());
  // The rolling daily count lives in the task, so a limit holds across runs.
  if (auto ds = store_->get_meta("daily_state"); ds.ok() && ds->has_value()) {
    if (auto r = throttle_->restore_daily_state(**ds); !r.ok()) {
      std::fprintf(stderr, "smtpblast: warning: daily count in %s unreadable (%s); starting at 0\n",
                   cfg_.task_path.c_str(), r.error().message.c_str());
    }
  }
  return 0;
}

void Runner::save_throttle_state() {
  uint64_t now = wall_ms();
  if (!cfg_.throttle.rate.empty() || cfg_.throttle.daily_limit > 0 || cfg_.throttle.block_size > 0) {
    (void)store_->set_meta("daily_state", throttle_->daily_state(now));
  }
  ThrottleSnapshot snap = throttle_->snapshot(now);
  (void)store_->set_meta("throttle", describe(snap));
  (void)store_->set_meta("throttle_json", throttle_json(snap).dump());  // status --json
}

void Runner::commit(std::vector<Report>& v) {
  if (v.empty()) return;
  scratch_.clear();
  for (const Report& r : v) scratch_.push_back(r.out);
  if (auto s = store_->record(scratch_); !s.ok()) {
    // Nothing new may start when outcomes cannot be recorded: stop the run.
    if (store_error_.empty()) {
      std::fprintf(stderr, "smtpblast: cannot record outcomes: %s\n", s.error().describe().c_str());
      store_error_ = "task store write failed: " + s.error().message;
    }
    return;  // kept in v: retried with the next commit
  }
  for (const Report& r : v) {
    const Outcome& o = r.out;
    if (o.status_only) continue;  // a release: no attempt was made
    if (o.status == RcptStatus::kSuppressed) {
      ++done_suppressed_;
    } else {
      ++attempts_;
      // Per recipient: a deferred recipient's later outcome in this run replaces it.
      uint32_t before = 0;
      if (auto d = deferred_now_.find(o.id); d != deferred_now_.end()) {
        before = d->second;
        deferred_attempts_ -= before;
        deferred_now_.erase(d);
      }
      if (o.status == RcptStatus::kSent) ++done_sent_;
      else if (o.status == RcptStatus::kFailed) ++done_failed_;
      else if (o.status == RcptStatus::kDeferred) {
        ++done_deferred_;
        deferred_now_[o.id] = before + 1;
        deferred_attempts_ += before + 1;
      }
    }
    if (accounting_) {
      AccountingRecord a;
      a.time_ms = r.time_ms;
      a.recipient = r.email;
      a.status = o.status;
      a.code = o.code;
      a.reply = o.reply;
      if (size_t colon = r.peer.rfind(':'); colon != std::string::npos) {
        a.remote_host = r.peer.substr(0, colon);
        if (a.remote_host.size() >= 2 && a.remote_host.front() == '[') {
          a.remote_host = a.remote_host.substr(1, a.remote_host.size() - 2);
        }
        a.remote_port = static_cast<uint16_t>(std::atoi(r.peer.c_str() + colon + 1));
      }
      a.tls_version = r.tls_version;
      a.attempt = o.attempts;
      a.connection_id = r.conn_id;
      a.elapsed_ms = r.elapsed_ms;
      if (o.status != RcptStatus::kSent && classifier_) {
        a.category = classifier_->classify_reply(o.code, o.reply).category;
      }
      accounting_->add(a);
    }
    if (!r.eml.empty() && o.status == RcptStatus::kSent) write_backup(r);
  }
  if (accounting_) {
    if (auto f = accounting_->flush(); !f.ok() && backup_error_.empty()) {
      // The task store is the record of truth; the log keeps the lines and retries.
      std::fprintf(stderr, "smtpblast: warning: --accounting: %s\n", f.error().message.c_str());
    }
  }
  v.clear();
}

void Runner::write_backup(const Report& r) {
  EmlNameVars nv;
  nv.task_title = cfg_.title;
  // {{subject}} is this recipient's Subject as rendered, not the template's placeholders.
  std::string subject =
      name_uses_subject_ ? rendered_header(r.eml, "Subject") : std::string();
  nv.subject = subject;
  nv.recipient = r.email;
  nv.time = r.out.time;
  nv.id = r.out.id;
  nv.values = &r.values;
  std::vector<std::string_view> pieces{r.eml};
  if (auto w = write_eml_atomically(cfg_.backup_dir, namer_->name(nv), pieces, nullptr); !w.ok()) {
    ++backup_failures_;
    if (backup_error_.empty()) {
      backup_error_ = w.error().message;
      std::fprintf(stderr, "smtpblast: warning: --backup-dir: %s\n", backup_error_.c_str());
    }
  }
}

void Runner::filter_suppressed(std::vector<RecipientRow>& rows, std::vector<Report>& out) {
  if (cfg_.suppress == nullptr || cfg_.suppress->empty()) return;
  size_t keep = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (cfg_.suppress->suppressed(rows[i].email)) {
      Report& r = out.emplace_back();
      r.time_ms = static_cast<int64_t>(wall_ms());
      r.email = rows[i].email;
      r.out.id = rows[i].id;
      r.out.status = RcptStatus::kSuppressed;
      r.out.reply = "on the suppression list";
      r.out.attempts = rows[i].attempts;
      r.out.time = static_cast<int64_t>(std::time(nullptr));
      continue;
    }
    if (keep != i) rows[keep] = std::move(rows[i]);
    ++keep;
  }
  rows.resize(keep);
}

void Runner::stop_all_new() {
  stop_requested_ = true;
  for (size_t i = 0; i < mailings_.size(); ++i) {
    WorkerMailing* m = mailings_[i];
    workers_[i]->post([m] { m->stop_new(); });
  }
}

void Runner::print_progress(bool final_line) {
  if (cfg_.progress_plain && !final_line) {
    // No terminal (cron, CI, a pipe): a whole line at most every 10 s, for a log.
    auto n = std::chrono::steady_clock::now();
    if (n - last_plain_progress_ < std::chrono::milliseconds(9000)) return;
    last_plain_progress_ = n;
    double secs = std::chrono::duration<double>(n - t0_).count();
    double rate = secs > 0 ? static_cast<double>(done_sent_) / secs : 0;
    uint64_t finished = done_sent_ + done_failed_;
    uint64_t left = todo_ > finished ? todo_ - finished : 0;
    char eta[32] = "-";
    if (rate > 0 && left > 0) {
      std::snprintf(eta, sizeof eta, "%.0fs", static_cast<double>(left) / rate);
    }
    std::fprintf(stderr, "progress: %.0f s: %llu recipients sent, %llu failed, %zu deferred; "
                         "%llu attempts; %.0f msgs/s; %llu left; ETA %s\n",
                 secs, static_cast<unsigned long long>(done_sent_),
                 static_cast<unsigned long long>(done_failed_), deferred_now_.size(),
                 static_cast<unsigned long long>(attempts_), rate,
                 static_cast<unsigned long long>(left), eta);
    return;
  }
  if (!cfg_.progress) return;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  double rate = secs > 0 ? static_cast<double>(done_sent_) / secs : 0;
  uint64_t finished = done_sent_ + done_failed_;
  uint64_t left = todo_ > finished ? todo_ - finished : 0;
  char eta[32] = "-";
  if (rate > 0 && left > 0) std::snprintf(eta, sizeof eta, "%.0fs", static_cast<double>(left) / rate);
  std::fprintf(stderr, "\r\033[Ksent %llu  failed %llu  deferred %zu  %.0f msgs/s  ETA %s",
               static_cast<unsigned long long>(done_sent_),
               static_cast<unsigned long long>(done_failed_), deferred_now_.size(), rate, eta);
  if (final_line) std::fprintf(stderr, "\n");
  progress_shown_ = true;
}

bool Runner::claim_next(std::vector<RecipientRow>& rows, std::vector<Report>& outcomes) {
  rows.clear();
  // In flight in the store before any worker sees them (crash safety).
  auto got = store_->claim(cursor_, kBatch, rows, true);
  if (!got.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", got.error().describe().c_str());
    exhausted_ = true;
    std::lock_guard<std::mutex> g(mu_);
    if (failure_.empty()) failure_ = got.error().message;
    return false;
  }
  if (!rows.empty()) cursor_ = rows.back().id;
  if (rows.size() < kBatch) exhausted_ = true;
  filter_suppressed(rows, outcomes);
  return true;
}

void Runner::release_pending(std::vector<Report>& outcomes) {
  if (pending_total_ == 0) return;
  // Claimed but never handed to a worker: back to their earlier status, nothing in flight.
  for (auto& q : pending_) {
    for (const auto& r : q) add_released(outcomes, r);
    q.clear();
  }
  settle(static_cast<int64_t>(pending_total_));
  pending_total_ = 0;
}

void Runner::serve_direct(const std::vector<WorkerMailing*>& requests, std::vector<Report>& outcomes) {
  const size_t n = mailings_.size();
  if (pending_.size() != n) {
    pending_.resize(n);
    parked_.assign(n, false);
  }
  for (WorkerMailing* w : requests) parked_[w->index()] = true;
  // Claim while a parked worker has nothing and the rows held stay bounded (a worker whose
  // domains are slow must not make the others read the whole task into memory).
  const size_t cap = kDirectQueue * n;
  if (stop_requested_) release_pending(outcomes);
  std::vector<RecipientRow> rows;
  auto wanting = [&] {
    for (size_t i = 0; i < n; ++i) {
      if (parked_[i] && pending_[i].empty()) return true;
    }
    return false;
  };
  while (!exhausted_ && !stop_requested_ && pending_total_ < cap && wanting()) {
    if (!claim_next(rows, outcomes)) break;
    unsettled_.fetch_add(static_cast<int64_t>(rows.size()), std::memory_order_acq_rel);
    for (auto& r : rows) {
      std::string domain = domain_of(r.email);
      auto known = domain_owner_.find(domain);
      size_t o = known != domain_owner_.end() ? known->second
                                              : std::hash<std::string>{}(domain) % n;
      pending_[o].push_back(std::move(r));
      ++pending_total_;
    }
  }
  bool done = exhausted_ || stop_requested_;
  for (size_t i = 0; i < n; ++i) {
    if (!parked_[i] || (pending_[i].empty() && !done)) continue;
    parked_[i] = false;
    std::vector<RecipientRow> give;
    while (!pending_[i].empty() && give.size() < kBatch) {
      give.push_back(std::move(pending_[i].front()));
      pending_[i].pop_front();
      --pending_total_;
    }
    // A stopping worker hands claimed rows back (released), so nothing stays in flight.
    bool exhausted = done && pending_[i].empty();
    WorkerMailing* w = mailings_[i];
    workers_[i]->post([w, r = std::move(give), exhausted]() mutable {
      w->add_batch(std::move(r), exhausted);
    });
  }
}

void Runner::loop() {
  std::vector<Report> outcomes;
  std::vector<WorkerMailing*> requests;
  std::vector<RecipientRow> rows;
  std::vector<std::pair<std::string, size_t>> moved;
  auto last_commit = std::chrono::steady_clock::now();
  auto last_progress = last_commit;
  int signals_seen = 0;
  std::chrono::steady_clock::time_point first_signal_at{};
  bool stop_timed_out = false;
  for (;;) {
    size_t finished;
    std::string failure;
    bool settled_all;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait_for(lk, std::chrono::milliseconds(cfg_.commit_interval_ms), [&] {
        return !requests_.empty() || in_.size() >= 4096 || finished_ == mailings_.size() ||
               signals_.load() > signals_seen || (limit_hit_.load() && !limit_reported_) ||
               settled_all_ || topup_wanted_.load();
      });
      if (outcomes.empty()) outcomes.swap(in_);
      else {
        outcomes.insert(outcomes.end(), std::make_move_iterator(in_.begin()), std::make_move_iterator(in_.end()));
        in_.clear();
      }
      requests.swap(requests_);
      finished = finished_;
      failure = failure_;
      settled_all = settled_all_;
      settled_all_ = false;
      moved.swap(moved_);
    }
    // Bounded: past this, rows of further moved domains take one extra hop between workers.
    for (auto& [domain, owner] : moved) {
      if (domain_owner_.size() < 262144 || domain_owner_.count(domain) != 0) {
        domain_owner_[domain] = owner;
      }
    }
    moved.clear();
    if (settled_all) {
      for (size_t i = 0; i < mailings_.size(); ++i) {
        WorkerMailing* m = mailings_[i];
        workers_[i]->post([m] { m->maybe_finish(); });
      }
    }
    if (failure.empty() && !store_error_.empty()) {
      failure = store_error_;
      std::lock_guard<std::mutex> g(mu_);
      if (failure_.empty()) failure_ = failure;
    }
    auto now = std::chrono::steady_clock::now();
    // Commit in batches: one SQLite transaction for many outcomes.
    if (!outcomes.empty() && (now - last_commit >= std::chrono::milliseconds(cfg_.commit_interval_ms) ||
                              outcomes.size() >= 4096 || finished == mailings_.size())) {
      commit(outcomes);
      save_throttle_state();
      last_commit = now;
    }
    uint64_t daily_at;
    {
      std::lock_guard<std::mutex> g(mu_);
      daily_at = daily_resume_at_;
    }
    top_up_allowance();
    if (daily_at != 0 && !daily_reported_) {
      daily_reported_ = true;
      stop_requested_ = true;
      time_t t = static_cast<time_t>(daily_at / 1000);
      char when[64];
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", std::localtime(&t));
      bool by_account;
      {
        std::lock_guard<std::mutex> g(mu_);
        by_account = daily_by_account_;
      }
      daily_message_ = std::string("daily limit of ") + std::to_string(cfg_.throttle.daily_limit) +
                       " recipients reached" +
                       (by_account ? " for account " + account_key_ +
                                         " (counted across every task of this account)"
                                   : std::string()) +
                       "; sending may resume at " + when + " (" + iso_utc(daily_at) +
                       "; run again then, or give --wait)";
      std::fprintf(stderr, "\n%s\n", daily_message_.c_str());
      stop_all_new();
    }
    if (limit_hit_.load() && !limit_reported_) {
      limit_reported_ = true;
      std::fprintf(stderr, "\n--limit %llu reached: no new messages are started; a later run "
                           "(at any time) sends the rest\n",
                   static_cast<unsigned long long>(cfg_.limit));
      stop_all_new();
    }
    if (!failure.empty() && !stop_requested_) {
      stop_requested_ = true;
      for (size_t i = 0; i < mailings_.size(); ++i) {
        WorkerMailing* m = mailings_[i];
        workers_[i]->post([m, failure] { m->abort(failure); });
      }
    }
    int sigs = signals_.load();
    const auto steady_now = std::chrono::steady_clock::now();
    if (signals_seen == 1 && sigs == 1 && !stop_timed_out &&
        steady_now - first_signal_at > std::chrono::milliseconds(cfg_.stop_timeout_ms)) {
      // A server that stopped reading (or answering) would hold the stop until its end-of-
      // data timeout, up to 10 minutes: after --stop-timeout, stop as a second signal does.
      stop_timed_out = true;
      std::fprintf(stderr, "stopping now: messages under way did not finish within "
                           "--stop-timeout\n");
      for (size_t i = 0; i < mailings_.size(); ++i) {
        WorkerMailing* m = mailings_[i];
        workers_[i]->post([m] { m->abort("run stopped: --stop-timeout after a signal"); });
      }
    }
    if (sigs > signals_seen) {
      if (signals_seen == 0) {
        // The workers are told first: once the line is out, no new message is started.
        stop_all_new();
        first_signal_at = steady_now;
        std::fprintf(stderr, "\nstopping: no new messages are started, those under way finish "
                             "(within --stop-timeout); a second signal stops at once; a later "
                             "run resumes\n");
      } else if (signals_seen == 1 && !stop_timed_out) {
        // Connections are dropped; their open recipients come back deferred and are still
        // committed below, so nothing is lost.
        std::fprintf(stderr, "stopping now\n");
        for (size_t i = 0; i < mailings_.size(); ++i) {
          WorkerMailing* m = mailings_[i];
          workers_[i]->post([m] { m->abort("run stopped by a second signal"); });
        }
      }
      signals_seen = sigs;
    }
    if (cfg_.direct) {
      serve_direct(requests, outcomes);
    } else {
      for (WorkerMailing* w : requests) {
        rows.clear();
        bool exhausted = exhausted_ || stop_requested_;
        if (!exhausted) {
          (void)claim_next(rows, outcomes);
          exhausted = exhausted_;
        }
        workers_[w->index()]->post([w, r = std::move(rows), exhausted]() mutable {
          w->add_batch(std::move(r), exhausted);
        });
        rows = {};
      }
    }
    requests.clear();
    if (now - last_progress >= std::chrono::seconds(1)) {
      print_progress(false);
      last_progress = now;
    }
    if (finished == mailings_.size()) {
      std::lock_guard<std::mutex> g(mu_);
      if (in_.empty()) break;
    }
  }
  release_pending(outcomes);  // --direct: none left by now, unless a worker failed at start
  commit(outcomes);
  save_throttle_state();
}

// --pickup: no SMTP and no workers. This thread claims, renders (undotted) and writes each
// message as an .eml file; a recipient is sent once its file has its final name.
int Runner::run_pickup() {
  t0_ = std::chrono::steady_clock::now();
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
  std::vector<RecipientRow> rows;
  std::vector<Report> outcomes;
  RenderedMessage msg;
  auto last_commit = std::chrono::steady_clock::now();
  bool stop = false;
  bool exhausted = false;
  while (!stop && !exhausted) {
    rows.clear();
    auto got = store_->claim(cursor_, kBatch, rows, true);
    if (!got.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", got.error().describe().c_str());
      failure_ = got.error().message;
      break;
    }
    if (!rows.empty()) cursor_ = rows.back().id;
    exhausted = rows.size() < kBatch;
    filter_suppressed(rows, outcomes);
    size_t i = 0;
    for (; i < rows.size(); ++i) {
      timespec zero{0, 0};
      if (sigtimedwait(&sigs, nullptr, &zero) > 0) {
        std::fprintf(stderr, "\nstopping: a later run resumes\n");
        stop = true;
      } else if (!store_error_.empty()) {
        failure_ = store_error_;
        stop = true;
      } else if (!take_message()) {
        std::fprintf(stderr, "--limit %llu reached; a later run writes the rest\n",
                     static_cast<unsigned long long>(cfg_.limit));
        stop = true;
      }
      if (stop) break;
      const RecipientRow& row = rows[i];
      RenderInput in = render_input(row, static_cast<int64_t>(std::time(nullptr)));
      msg.clear();
      Report& r = outcomes.emplace_back();
      r.time_ms = static_cast<int64_t>(wall_ms());
      r.email = row.email;
      r.out.id = row.id;
      r.out.attempts = row.attempts + 1;
      r.out.time = in.now;
      if (Status st = tpl_->render(in, false, msg); !st.ok()) {
        r.out.status = RcptStatus::kFailed;
        r.out.reply = st.error().message.substr(0, 512);
      } else {
        EmlNameVars nv;
        nv.task_title = cfg_.title;
        std::string subject;
        if (name_uses_subject_) {
          // Only the header block is needed; the first pieces hold it.
          std::string head;
          for (std::string_view p : msg.pieces) {
            head.append(p);
            if (head.find("\r\n\r\n") != std::string::npos) break;
          }
          subject = rendered_header(head, "Subject");
        }
        nv.subject = subject;
        nv.recipient = row.email;
        nv.time = in.now;
        nv.id = row.id;
        nv.values = &row.values;
        std::string final_path;
        // A pickup service reads these, often as another user: the umask decides.
        if (auto w = write_eml_atomically(cfg_.pickup_dir, namer_->name(nv), msg.pieces,
                                          &final_path, false, kSharedFile);
            !w.ok()) {
          // The directory went away or filled up: stop; this one is not sent.
          std::fprintf(stderr, "smtpblast: --pickup: %s\n", w.error().message.c_str());
          failure_ = "--pickup: " + w.error().message;
          r.out.status_only = true;
          r.out.status = row.status;
          ++i;
          stop = true;
          break;
        }
        r.out.status = RcptStatus::kSent;
        r.out.reply = "written to " + final_path;
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_commit >= std::chrono::milliseconds(cfg_.commit_interval_ms)) {
        commit(outcomes);
        last_commit = now;
      }
    }
    for (; i < rows.size(); ++i) {  // claimed, not written: back to their earlier status
      Report& r = outcomes.emplace_back();
      r.out.id = rows[i].id;
      r.out.status = rows[i].status;
      r.out.status_only = true;
    }
    commit(outcomes);
    last_commit = std::chrono::steady_clock::now();
    if (!store_error_.empty()) {
      failure_ = store_error_;
      break;
    }
  }
  commit(outcomes);
  timespec zero{0, 0};
  while (sigtimedwait(&sigs, nullptr, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  return finish();
}

int Runner::check_identity() {
  // What the recipients see and what the receivers judge: a resumed task keeps them unless
  // the user says otherwise (like a changed template).
  std::string sender = cfg_.from.empty() ? tpl_->from_address() : cfg_.from;
  // The relay's host, not its port: the same provider on 587 or 465 is the same sender to
  // the receivers.
  std::string relay = !cfg_.pickup_dir.empty() ? "pickup"
                      : cfg_.direct            ? "direct delivery"
                      : cfg_.relay != nullptr  ? "relay " + cfg_.relay->host
                                               : "";
  for (char& c : relay) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string dkim;
  if (cfg_.message != nullptr) {
    for (const auto& signer : cfg_.message->dkim) {
      if (dkim.find(signer->domain()) == std::string::npos) {
        dkim += (dkim.empty() ? "" : ",") + signer->domain();
      }
    }
  }
  struct Item {
    const char* key;
    const char* what;
    const std::string& now;
  };
  const Item items[] = {{"sender", "the envelope sender (--from, or the template's From:)", sender},
                        {"relay", "the relay (--relay, --preset, --direct or --pickup)", relay},
                        {"dkim_domain", "the DKIM signing domain (--dkim-domain)", dkim}};
  for (const Item& it : items) {
    auto prev = store_->get_meta(it.key);
    if (!prev.ok() || !prev->has_value() || **prev == it.now) continue;
    if (cfg_.force) {
      std::fprintf(stderr, "smtpblast: warning: --force: %s changes from '%s' to '%s'\n",
                   it.what, (*prev)->empty() ? "none" : (*prev)->c_str(),
                   it.now.empty() ? "none" : it.now.c_str());
      continue;
    }
    std::fprintf(stderr,
                 "smtpblast: task %s was started with %s '%s'; this run has '%s'; give --force "
                 "to send the rest with the new one\n",
                 cfg_.task_path.c_str(), it.what, (*prev)->empty() ? "none" : (*prev)->c_str(),
                 it.now.empty() ? "none" : it.now.c_str());
    return kExitUsage;
  }
  for (const Item& it : items) (void)store_->set_meta(it.key, it.now);
  return 0;
}

int Runner::open_account_quota() {
  if (cfg_.throttle.daily_limit == 0) return 0;
  std::string path = cfg_.quota_store.empty() ? AccountQuota::default_path() : cfg_.quota_store;
  auto q = AccountQuota::open(path);
  if (!q.ok()) {
    std::fprintf(stderr, "smtpblast: --daily-limit counts per account in the quota store: %s\n",
                 q.error().message.c_str());
    return kExitUsage;
  }
  account_ = std::move(q).value();
  const RelaySetup& r = *cfg_.relay;
  account_key_ = account_key(r.credentials != nullptr ? r.credentials->user() : std::string(),
                             cfg_.from, r.host, cfg_.direct);
  // For `status`: which account and store this task's sends count against.
  (void)store_->set_meta("account", account_key_);
  (void)store_->set_meta("account_quota_store", account_->path());
  (void)store_->set_meta("account_daily_limit", std::to_string(cfg_.throttle.daily_limit));
  top_up_allowance();  // the first reservation, before any worker asks
  if (!account_error_.empty()) return kExitUsage;
  return 0;
}

void Runner::top_up_allowance() {
  // Cleared first, whatever happens next: the journal loop's wait ends while it is set.
  const bool wanted = topup_wanted_.exchange(false);
  if (account_ == nullptr || !account_error_.empty() || stop_requested_) return;
  const uint64_t now = wall_ms();
  if (uint64_t resume = account_resume_at_.load(); resume != 0) {
    // The account had no room: with --wait, ask again once it may have.
    if (!cfg_.wait_daily || now < resume) return;
    account_resume_at_.store(0);
  }
  if (!wanted && allowance_.load() >= static_cast<int64_t>(account_chunk_ / 2)) return;
  // Reserve more at once while the run uses it up fast (one fsync'd transaction each), but
  // start small so that a slow run does not hold what other tasks of the account could send.
  if (last_topup_ms_ != 0 && now - last_topup_ms_ < 1000) {
    account_chunk_ = std::min<uint64_t>(account_chunk_ * 2, 4096);
  }
  last_topup_ms_ = now;
  auto g = account_->reserve(account_key_, cfg_.throttle.daily_limit, account_chunk_, now);
  if (!g.ok()) {
    account_error_ = g.error().message;
    std::fprintf(stderr, "smtpblast: %s\n", account_error_.c_str());
    std::lock_guard<std::mutex> lk(mu_);
    if (failure_.empty()) failure_ = account_error_;
    return;
  }
  account_used_ = g->used;
  if (g->granted > 0) {
    reservations_.emplace_back(now, g->granted);
    allowance_.fetch_add(static_cast<int64_t>(g->granted), std::memory_order_acq_rel);
  } else {
    account_resume_at_.store(std::max<uint64_t>(g->resume_at, 1));
  }
}

void Runner::return_unused_allowance() {
  if (account_ == nullptr) return;
  int64_t left = allowance_.exchange(0);
  const uint64_t now = wall_ms();
  // The newest reservations first: their minutes stay in the window longest.
  while (left > 0 && !reservations_.empty()) {
    auto& [at, n] = reservations_.back();
    uint64_t back = std::min<uint64_t>(n, static_cast<uint64_t>(left));
    if (auto s = account_->give_back(account_key_, at, back, now); !s.ok()) {
      std::fprintf(stderr, "smtpblast: warning: %s (the unsent reservation stays counted)\n",
                   s.error().message.c_str());
      break;
    }
    left -= static_cast<int64_t>(back);
    reservations_.pop_back();
  }
  if (auto u = account_->used(account_key_, now); u.ok()) account_used_ = *u;
}

int Runner::exit_code(bool all_done) const {
  // The first that applies: configuration/environment, the relay, a signal, a limit, failures.
  if (!store_error_.empty() || !account_error_.empty()) return kExitUsage;
  if (!failure_.empty()) {
    // --pickup could not write its directory; the DNS resolver could not be set up; nothing
    // could be delivered at all (most likely a wrong relay address or port).
    if (!cfg_.pickup_dir.empty() || failure_.rfind("DNS resolver", 0) == 0) return kExitUsage;
    if (fatal_) return kExitRelay;  // credentials, sender refused, TLS
    // Nothing ever answered: most likely a wrong address or port. Otherwise the relay
    // refused us (STARTTLS refused again and again) or went away mid-run.
    return attempts_ == 0 && !relay_answered_.load() ? kExitUsage : kExitRelay;
  }
  if (all_done) return kExitDone;
  if (signals_.load() > 0) return kExitInterrupted;
  if (daily_reported_ || limit_reported_) return kExitLimit;
  return kExitSomeFailed;
}

// Before anything is opened: a run whose connections cannot fit in the descriptor limit
// would fail socket() calls in the middle (EMFILE) instead.
bool check_fd_limit(uint32_t connections, uint32_t workers) {
  const FdLimit l = ensure_fd_limit(fds_needed(connections, std::min(workers, connections)));
  if (l.raised) {
    std::fprintf(stderr, "smtpblast: open-file limit raised from %llu to %llu (ulimit -n) for "
                         "--connections %u\n",
                 static_cast<unsigned long long>(l.soft_before),
                 static_cast<unsigned long long>(l.soft), connections);
  }
  if (l.fits()) return true;
  std::fprintf(stderr,
               "smtpblast: --connections %u needs about %llu file descriptors, but this process "
               "may open only %llu (ulimit -n; hard limit %llu): raise `ulimit -n` or lower "
               "--connections\n",
               connections, static_cast<unsigned long long>(l.needed),
               static_cast<unsigned long long>(l.soft), static_cast<unsigned long long>(l.hard));
  return false;
}

int Runner::run() {
  if (cfg_.pickup_dir.empty() && !check_fd_limit(cfg_.connections, cfg_.workers)) return 2;
  if (int rc = prepare(); rc != 0) return rc;
  if (cfg_.from.empty()) cfg_.from = tpl_->from_address();
  if (!cfg_.pickup_dir.empty()) return run_pickup();
  for (const std::string& w : cfg_.relay->warnings) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  if (int rc = open_account_quota(); rc != 0) return rc;
  // The ETA needs the number left to send: a full scan, so only when a progress line shows.
  auto before = cfg_.progress || cfg_.progress_plain ? store_->counts(false)
                                                     : Result<StatusCounts>(StatusCounts{});
  if (before.ok()) {
    todo_ = before->get(RcptStatus::kUnsent) + before->get(RcptStatus::kDeferred) +
            before->get(RcptStatus::kInFlight);
  }

  uint32_t nworkers = std::max<uint32_t>(1, std::min(cfg_.workers, cfg_.connections));
  const RelaySetup& relay = *cfg_.relay;
  PoolConfig pcfg = pool_config_for(relay, cfg_.timeouts);
  pcfg.session.max_messages = cfg_.per_connection;
  pcfg.session.window = cfg_.window;
  pcfg.session.use_pipelining = cfg_.pipelining;
  pcfg.session.use_chunking = cfg_.chunking;

  // Signals go to one thread that waits for them (sigwait) and wakes the journal thread at
  // once; every other thread, the workers included, has them blocked.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigset_t old_mask;
  pthread_sigmask(SIG_BLOCK, &sigs, &old_mask);
  std::atomic<bool> run_over{false};
  std::thread signal_thread([this, &sigs, &run_over] {
    for (;;) {
      int sig = 0;
      if (sigwait(&sigs, &sig) != 0) continue;
      if (run_over.load()) return;
      signals_.fetch_add(1);
      std::lock_guard<std::mutex> g(mu_);
      cv_.notify_one();
    }
  });

  t0_ = std::chrono::steady_clock::now();
  last_plain_progress_ = t0_;
  for (uint32_t i = 0; i < nworkers; ++i) {
    workers_.push_back(std::make_unique<Worker>(static_cast<int>(i)));
    PoolConfig p = pcfg;
    p.connections = cfg_.connections / nworkers + (i < cfg_.connections % nworkers ? 1 : 0);
    auto* m = new WorkerMailing(*this, *workers_.back(), *tpl_, cfg_, p, *throttle_);
    mailings_.push_back(m);
  }
  for (uint32_t i = 0; i < nworkers; ++i) {
    WorkerMailing* m = mailings_[i];
    workers_[i]->post([m] { m->start(); });
    workers_[i]->start();
  }
  loop();
  run_over.store(true);
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  for (uint32_t i = 0; i < nworkers; ++i) {
    WorkerMailing* m = mailings_[i];
    workers_[i]->post([m] { m->destroy(); });
    workers_[i]->stop_and_join();
  }
  workers_.clear();
  // Outcomes a worker handed over after the journal loop ended (a batch released late).
  {
    std::vector<Report> late;
    late.swap(in_);
    commit(late);
  }
  return_unused_allowance();
  return finish();
}

int Runner::finish() {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  print_progress(true);
  auto c = store_->counts(false);
  if (!c.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", c.error().describe().c_str());
    return kExitUsage;
  }
  RunReport rep;
  rep.sent = done_sent_;
  rep.failed = done_failed_;
  rep.deferred = deferred_now_.size();
  rep.deferred_attempts = deferred_attempts_;
  rep.suppressed = done_suppressed_;
  rep.attempts = attempts_;
  rep.seconds = secs;
  rep.task = *c;
  if (account_ != nullptr) {
    rep.account = account_key_;
    rep.quota_store = account_->path();
    rep.account_limit = cfg_.throttle.daily_limit;
    rep.account_used = account_used_;
  }
  std::fprintf(stderr, "%s\n", summary_text(rep).c_str());
  if (backup_failures_ > 0) {
    std::fprintf(stderr, "smtpblast: %llu backup copies could not be written (%s)\n",
                 static_cast<unsigned long long>(backup_failures_), backup_error_.c_str());
  }
  ThrottleSnapshot snap = throttle_ ? throttle_->snapshot(wall_ms()) : ThrottleSnapshot{};
  rep.throttle = snap;
  if (snap.configured_rate_per_s > 0 || snap.daily_limit > 0 || snap.block_size > 0 ||
      snap.pushbacks > 0) {
    std::fprintf(stderr, "throttle: %s\n", describe(snap).c_str());
  }
  if (!daily_message_.empty()) std::fprintf(stderr, "%s\n", daily_message_.c_str());
  if (cfg_.direct) {
    std::fprintf(stderr, "dns: %llu domains, %llu MX lookups, %llu queries, %.1f ms CPU; "
                         "%llu recipients handed to the worker owning their destination\n",
                 static_cast<unsigned long long>(dns_domains_),
                 static_cast<unsigned long long>(dns_lookups_),
                 static_cast<unsigned long long>(dns_queries_), static_cast<double>(dns_cpu_ns_) / 1e6,
                 static_cast<unsigned long long>(handed_over_));
  }
  if (pushed_dests_ > 0) {
    std::fprintf(stderr,
                 "push-back: %llu replies from %llu destinations (%llu slow down, %llu quota): "
                 "their rates cut %llu times, paused %llu times; the others kept their pace\n",
                 static_cast<unsigned long long>(dest_push_.pushbacks),
                 static_cast<unsigned long long>(pushed_dests_),
                 static_cast<unsigned long long>(dest_push_.slowdowns),
                 static_cast<unsigned long long>(dest_push_.quota_replies),
                 static_cast<unsigned long long>(dest_push_.rate_cuts),
                 static_cast<unsigned long long>(dest_push_.quota_pauses));
  }
  if (!failure_.empty()) {
    std::fprintf(stderr, "smtpblast: run stopped: %s\n", display_escape(failure_).c_str());
  }
  // Rows with a status this version does not know are not done either (issue 18).
  bool all_done = c->get(RcptStatus::kUnsent) + c->get(RcptStatus::kDeferred) +
                      c->get(RcptStatus::kFailed) + c->get(RcptStatus::kInFlight) +
                      c->unknown ==
                  0;
  rep.exit_code = exit_code(all_done);
  switch (rep.exit_code) {
    case kExitUsage: rep.stopped_by = "error"; break;
    case kExitRelay: rep.stopped_by = "relay"; break;
    case kExitInterrupted: rep.stopped_by = "signal"; break;
    case kExitLimit:
      rep.stopped_by = !daily_reported_ ? "limit"
                       : daily_by_account_ ? "account-daily-limit"
                                           : "daily-limit";
      break;
    default: break;
  }
  if (!failure_.empty()) rep.error = failure_;
  if (rep.exit_code == kExitLimit && daily_reported_) {
    std::lock_guard<std::mutex> g(mu_);
    rep.resume_at_ms = daily_resume_at_;
  }
  if (cfg_.reset_errors_after) {
    uint64_t n = c->get(RcptStatus::kFailed) + c->get(RcptStatus::kDeferred);
    if (auto r = store_->reset(true); !r.ok()) {
      std::fprintf(stderr, "smtpblast: --reset-errors-after: %s\n", r.error().describe().c_str());
      return kExitUsage;
    }
    std::fprintf(stderr, "--reset-errors-after: failed and deferred recipients (%llu) are unsent "
                         "again (except addresses rejected at import)\n",
                 static_cast<unsigned long long>(n));
  }
  if (rep.exit_code != kExitDone && rep.exit_code != kExitSomeFailed) {
    std::fprintf(stderr, "exit code %d (%s)\n", rep.exit_code, rep.stopped_by.c_str());
  }
  if (cfg_.json) {
    std::printf("%s\n", summary_json(rep)
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                             .c_str());
    std::fflush(stdout);
    mark_json_printed();
  }
  return rep.exit_code;
}

}  // namespace

int run_mailing(const MailingConfig& cfg) {
  Runner r(cfg);
  return r.run();
}

}  // namespace sb
