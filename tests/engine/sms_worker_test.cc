// The SMS worker on a FakeClock: the real store, planner, journal, ledger, coordinator and
// SmppSession, over a fake SMSC scripted per submit_sm (accepted, ESME_RTHROTTLED,
// ESME_RMSGQFUL, generic_nack, a dropped bind); every claimed recipient settles exactly once,
// throttling defers without an attempt and pushes the rate back, retries and enquire_link
// keep their times. A seeded property variant drives random scripts (SB_PROPERTY_RUNS).
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "engine/coordinator.h"
#include "engine/fake_env.h"
#include "engine/harness.h"
#include "engine/sms_run_config.h"
#include "engine/sms_worker.h"
#include "sms/smsc_bytes.h"
#include "store/sms_ids.h"

namespace sb::test {
namespace {

// What the fake SMSC does with the Nth submit_sm (1-based, over every bind).
enum class Answer { kOk, kThrottled, kQueueFull, kNack, kSysErr, kDrop };

struct Submit {
  uint64_t n = 0;
  uint64_t at = 0;  // mono ms
  int conn = 0;
  std::string dest;
  int ref = -1, total = 0, part = 0;  // the UDH of a concatenated part
  Answer answer = Answer::kOk;
  std::string id;
};

struct Smsc {
  std::map<uint64_t, Answer> script;  // by n; kOk otherwise
  std::function<Answer(uint64_t)> random;  // the property test's; null: script
  std::vector<Submit> submits;
  std::vector<uint64_t> enquire_links;  // when each came
  std::vector<uint64_t> last_io;        // per enquire_link: the conn's previous PDU time
  int binds = 0;
};

// The link the worker drives: SMPP sessions (the real state machine) whose bytes go to a fake
// SMSC in this process; a dropped bind comes back after 100 ms, as sms_links.cc's does.
class FakeSmppLink final : public SmsLink, public SmppHost {
 public:
  FakeSmppLink(FakeLoop& loop, SmsLinkHost& host, const SmppConfig& cfg, Smsc& smsc,
               uint32_t binds)
      : loop_(loop), host_(host), cfg_(cfg), smsc_(smsc), binds_(binds) {
    reconnect_ = loop_.timer([this] {
      reconnect_pending_ = false;
      poke();
    });
  }
  ~FakeSmppLink() override {
    for (auto& c : conns_) {
      if (!c->s->wants_close()) c->s->force_close("test over", false, now());
    }
  }

  void poke() override {
    if (!aborted_ && !reconnect_pending_ && host_.link_wanted()) {
      while (conns_.size() < binds_) {
        auto c = std::make_unique<Conn>();
        c->id = ++conn_seq_;
        c->s = std::make_unique<SmppSession>(cfg_, *this, c->out);
        conns_.push_back(std::move(c));
        conns_.back()->s->on_connected(now());
      }
    }
    for (auto& c : conns_) {
      if (!c->s->wants_close()) c->s->poke(now());
    }
  }
  void abort(const std::string& why) override {
    aborted_ = true;
    reconnect_->stop();
    for (auto& c : conns_) {
      if (!c->s->wants_close()) c->s->force_close(why, false, now());
    }
  }
  size_t open() const override { return conns_.size(); }

  Next next_message(SmsMessage*& out) override {
    if (!answered_) {
      answered_ = true;
      host_.link_answered();
    }
    SmsJob* j = nullptr;
    Next n = host_.next_sms(j);
    if (n == Next::kMessage) out = &j->msg;
    return n;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    host_.sms_outcome(*reinterpret_cast<SmsJob*>(m.cookie), o.verdict, static_cast<int>(o.status),
                      o.text, o.throttled, o.message_ids);
  }
  void on_receipt(const DeliveryReceipt& r) override { host_.sms_receipt(r); }
  void on_mobile_originated(const MobileOriginated& mo) override { host_.sms_reply(mo); }

  // The SMSC reads and answers what the sessions wrote; closed connections go. True when
  // anything happened.
  bool pump() {
    bool any = false;
    for (size_t i = 0; i < conns_.size(); ++i) {
      Conn& c = *conns_[i];
      if (c.out.empty()) continue;
      any = true;
      std::vector<Sent> v = split(c.out.flatten());
      c.out.clear();
      for (const Sent& p : v) {
        if (c.s->wants_close() || c.dropped) break;
        answer(c, p);
      }
    }
    for (size_t i = 0; i < conns_.size();) {
      if (!conns_[i]->s->wants_close()) {
        ++i;
        continue;
      }
      const bool bound = conns_[i]->s->bind_reached();
      conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
      any = true;
      closed(bound);
    }
    return any;
  }
  // Session timers (responses, enquire_link) due now.
  bool fire_due() {
    bool any = false;
    for (auto& c : conns_) {
      uint64_t d = c->s->deadline_ms();
      if (d != 0 && d <= now() && !c->s->wants_close()) {
        c->s->on_timer(now());
        any = true;
      }
    }
    return any;
  }
  uint64_t next_due() const {
    uint64_t next = 0;
    for (auto& c : conns_) {
      uint64_t d = c->s->deadline_ms();
      if (d != 0 && (next == 0 || d < next)) next = d;
    }
    return next;
  }

 private:
  struct Conn {
    int id = 0;
    Outbox out;
    std::unique_ptr<SmppSession> s;
    uint64_t last_io = 0;
    bool dropped = false;
  };

  uint64_t now() const { return loop_.clock().mono_ms(); }

  void answer(Conn& c, const Sent& p) {
    const uint64_t prev_io = c.last_io;
    c.last_io = now();
    switch (p.id) {
      case 0x00000009:  // bind_transceiver
        ++smsc_.binds;
        c.s->on_data(bind_resp(p.seq), now());
        return;
      case 0x00000015:  // enquire_link
        smsc_.enquire_links.push_back(now());
        smsc_.last_io.push_back(prev_io);
        c.s->on_data(pdu(0x80000015, 0, p.seq), now());
        return;
      case 0x00000006:  // unbind
        c.s->on_data(pdu(0x80000006, 0, p.seq), now());
        return;
      case 0x00000004: break;
      default: return;
    }
    Submit& sub = smsc_.submits.emplace_back();
    sub.n = smsc_.submits.size();
    sub.at = now();
    sub.conn = c.id;
    sub.dest = p.dest;
    if ((p.esm_class & 0x40) != 0 && p.short_message.size() >= 6) {
      sub.ref = static_cast<unsigned char>(p.short_message[3]);
      sub.total = static_cast<unsigned char>(p.short_message[4]);
      sub.part = static_cast<unsigned char>(p.short_message[5]);
    }
    auto it = smsc_.script.find(sub.n);
    sub.answer = smsc_.random ? smsc_.random(sub.n)
                 : it != smsc_.script.end() ? it->second
                                            : Answer::kOk;
    switch (sub.answer) {
      case Answer::kOk:
        sub.id = "m" + std::to_string(sub.n);
        c.s->on_data(submit_resp(p.seq, 0, sub.id), now());
        return;
      case Answer::kThrottled: c.s->on_data(submit_resp(p.seq, 0x58, ""), now()); return;
      case Answer::kQueueFull: c.s->on_data(submit_resp(p.seq, 0x14, ""), now()); return;
      case Answer::kSysErr: c.s->on_data(submit_resp(p.seq, 0x08, ""), now()); return;
      case Answer::kNack: c.s->on_data(pdu(0x80000000, 0x08, p.seq), now()); return;
      case Answer::kDrop:
        // Cut before the response: whatever is open on this bind is deferred.
        c.dropped = true;
        c.s->on_closed("connection reset by the SMSC", now());
        return;
    }
  }

  void closed(bool bound) {
    failures_ = bound ? 0 : failures_ + 1;
    if (!aborted_ && host_.link_wanted() && !reconnect_pending_ && failures_ < 5) {
      reconnect_pending_ = true;
      reconnect_->start(100);
    }
    host_.link_idle();
  }

  FakeLoop& loop_;
  SmsLinkHost& host_;
  const SmppConfig& cfg_;
  Smsc& smsc_;
  const uint32_t binds_;
  std::unique_ptr<EngineTimer> reconnect_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int conn_seq_ = 0;
  uint32_t failures_ = 0;
  bool reconnect_pending_ = false;
  bool answered_ = false;
  bool aborted_ = false;
};

struct SmsOptions {
  size_t recipients = 20;
  uint32_t window = 5;
  uint32_t binds = 1;
  uint32_t max_attempts = 3;
  uint32_t retry_delay_ms = 5000;
  std::string rate;  // --rate; "" none
  std::string text = "Hi {{name}}";
  uint32_t enquire_link_ms = 30000;
  uint64_t seed = 1;
};

// One SMS run on one thread: a task in memory, the coordinator and one SmsWorker.
class SmsHarness {
 public:
  explicit SmsHarness(SmsOptions o) : o_(std::move(o)) {
    clock_.advance(1000);  // a FakeTimer due at 0 would read as not armed
    std::string csv = "phone,name\n";
    for (size_t i = 0; i < o_.recipients; ++i) csv += phone(i) + ",n" + std::to_string(i) + "\n";
    store_ = std::move(TaskStore::open(":memory:", true)).value();
    ImportOptions io;
    io.key_column = "phone";
    io.normalize = [](std::string_view v, const void*) -> Result<std::string> {
      return std::string(v);
    };
    EXPECT_TRUE(store_->import_csv_buffer(csv, "list.csv", io).ok());
    tpl_ = std::make_unique<SmsTemplate>(std::move(SmsTemplate::compile(o_.text)).value());
    EXPECT_TRUE(tpl_->bind(store_->field_names()).ok());
    sms_->provider = "sim";
    sms_->country = "GB";
    sms_->smpp.session.system_id = "sb";
    sms_->smpp.session.password = "pw";
    sms_->smpp.session.source_addr = "Shop";
    sms_->smpp.session.window = o_.window;
    sms_->smpp.session.enquire_link_ms = o_.enquire_link_ms;
    cfg_.sms = sms_;
    cfg_.max_attempts = o_.max_attempts;
    cfg_.retry_delay_ms = o_.retry_delay_ms;
    cfg_.retry_max_ms = o_.retry_delay_ms * 8;
    cfg_.commit_interval_ms = 100;
    cfg_.throttle.rate = o_.rate;
    throttle_ =
        std::make_unique<SharedThrottle>(std::move(make_throttle_config(cfg_.throttle)).value());
    shared_ = std::make_unique<RunShared>(0, inbox_);
    ledger_ = std::make_unique<Ledger>(true);
  }

  ~SmsHarness() {
    worker_.reset();
    coord_.reset();
    journal_.reset();
    planner_.reset();
    store_.reset();
  }

  static std::string phone(size_t i) { return "+4474001" + std::to_string(10000 + i); }

  TaskStore& store() { return *store_; }

  // Builds the run (after the test has prepared the task).
  void begin() {
    Planner::Options po;
    po.annotate = [this](RowsCmd& c) { EXPECT_TRUE(find_partial_sms(*store_, c).ok()); };
    planner_ = std::make_unique<Planner>(*store_, *ledger_, clock_, shared_.get(), po);
    journal_ = std::make_unique<Journal>(*store_, JournalOptions{});
    loop_ = std::make_unique<FakeLoop>(clock_, o_.seed);
    SmsWorker::Deps d;
    d.env = loop_.get();
    d.cfg = &cfg_;
    d.tpl = tpl_.get();
    d.throttle = throttle_.get();
    d.shared = shared_.get();
    d.inbox = &inbox_;
    d.seed = static_cast<uint32_t>(o_.seed);
    d.make_link = [this](SmsLinkHost& h) {
      auto l = std::make_unique<FakeSmppLink>(*loop_, h, sms_->smpp.session, smsc, o_.binds);
      link_ = l.get();
      return l;
    };
    worker_ = std::make_unique<SmsWorker>(std::move(d));
    Coordinator::Deps cd;
    cd.cfg = &cfg_;
    cd.store = store_.get();
    cd.journal = journal_.get();
    cd.ledger = ledger_.get();
    cd.planner = planner_.get();
    cd.throttle = throttle_.get();
    cd.shared = shared_.get();
    cd.inbox = &inbox_;
    cd.port = &port_;
    cd.events = &events_;
    cd.clock = &clock_;
    cd.signals = &signals_;
    cd.workers = 1;
    coord_ = std::make_unique<Coordinator>(cd);
    worker_->start();
  }

  bool turn() {
    bool any = false;
    while (!port_.q[0].empty()) {
      WorkerCommand c = std::move(port_.q[0].front());
      port_.q[0].pop_front();
      worker_->on_command(std::move(c));
      any = true;
    }
    any = link_->pump() || any;
    any = link_->fire_due() || any;
    any = loop_->fire_due() || any;
    inbox_.take(msgs_);
    any = any || !msgs_.empty();
    if (running_) running_ = coord_->step(msgs_);
    ++turns_;
    return any;
  }

  // Until the run is over (true) or `max_ms` of fake time passed (false: a hang).
  bool run(uint64_t max_ms = 3'600'000, int signal_at_turn = -1) {
    if (worker_ == nullptr) begin();
    const uint64_t end = clock_.mono_ms() + max_ms;
    while (running_ && clock_.mono_ms() < end) {
      if (static_cast<int>(turns_) == signal_at_turn) signals_.fetch_add(1);
      if (turn()) continue;
      uint64_t next = loop_->next_due();
      uint64_t s = link_->next_due();
      if (s != 0 && (next == 0 || s < next)) next = s;
      const uint64_t now = clock_.mono_ms();
      clock_.advance(next > now ? std::min<uint64_t>(next - now, 100) : 100);
    }
    if (running_) return false;
    worker_->shutdown();
    coord_->wind_up();
    return true;
  }

  void expect_settled_once() {
    EXPECT_TRUE(ledger_->empty());
    EXPECT_EQ(ledger_->violations(), 0u);
    EXPECT_EQ(ledger_->settled_total(), ledger_->claimed());
    EXPECT_EQ(counts().get(RcptStatus::kInFlight), 0u);
  }
  // Messages the phones got whole, per number (a concatenated one once all its parts were
  // accepted under one reference); `dup_parts`: parts accepted twice (a phone shows them twice).
  std::map<std::string, int> accepted(int* dup_parts = nullptr) const {
    std::map<std::string, int> out;
    std::map<std::tuple<std::string, int, int>, std::set<int>> parts;
    for (const Submit& s : smsc.submits) {
      if (s.answer != Answer::kOk) continue;
      if (s.total == 0) {
        ++out[s.dest];
        continue;
      }
      auto& got = parts[{s.dest, s.ref, s.total}];
      if (!got.insert(s.part).second && dup_parts != nullptr) ++*dup_parts;
      if (got.size() == static_cast<size_t>(s.total)) {
        ++out[s.dest];
        got.clear();
      }
    }
    return out;
  }

  StatusCounts counts() { return std::move(store_->counts(false)).value(); }
  Ledger& ledger() { return *ledger_; }
  Coordinator& coordinator() { return *coord_; }
  FakeClock& clock() { return clock_; }
  SharedThrottle& throttle() { return *throttle_; }

  Smsc smsc;

 private:
  SmsOptions o_;
  FakeClock clock_;
  std::unique_ptr<TaskStore> store_;
  std::unique_ptr<SmsTemplate> tpl_;
  std::shared_ptr<SmsRunConfig> sms_ = std::make_shared<SmsRunConfig>();
  RunConfig cfg_;
  std::unique_ptr<SharedThrottle> throttle_;
  CoordinatorInbox inbox_;
  std::unique_ptr<RunShared> shared_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Planner> planner_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<FakeLoop> loop_;
  FakeSmppLink* link_ = nullptr;
  std::unique_ptr<SmsWorker> worker_;
  QueuePort port_{1};
  SilentEvents events_;
  std::atomic<int> signals_{0};
  std::unique_ptr<Coordinator> coord_;
  std::vector<std::pair<size_t, WorkerMsg>> msgs_;
  bool running_ = true;
  uint64_t turns_ = 0;
};

std::string digits(const std::string& e164) { return e164.substr(1); }

TEST(SmsWorker, SendsEveryoneOnceOverTwoBinds) {
  SmsOptions o;
  o.recipients = 600;  // more than one batch of rows
  o.binds = 2;
  SmsHarness h(o);
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 600u);
  EXPECT_EQ(h.smsc.submits.size(), 600u);
  auto acc = h.accepted();
  EXPECT_EQ(acc.size(), 600u);
  for (auto& [to, n] : acc) EXPECT_EQ(n, 1) << to;
  EXPECT_EQ(h.smsc.binds, 2);
}

TEST(SmsWorker, ThrottledRepliesDeferWithoutAnAttemptAndPushTheRateBack) {
  SmsOptions o;
  o.window = 1;
  o.max_attempts = 1;  // a throttle reply must not use it up
  o.rate = "50/s";
  SmsHarness h(o);
  h.smsc.script = {{3, Answer::kThrottled}, {4, Answer::kThrottled}, {8, Answer::kQueueFull}};
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 20u);
  auto acc = h.accepted();
  EXPECT_EQ(acc.size(), 20u);
  for (auto& [to, n] : acc) EXPECT_EQ(n, 1) << to;
  // The throttled one comes back no sooner than a second later (the session's pause and the
  // worker's retry), and the run's rate was pushed back (AIMD).
  const Submit& refused = h.smsc.submits[2];
  const Submit* again = nullptr;
  for (size_t i = 3; i < h.smsc.submits.size(); ++i) {
    if (h.smsc.submits[i].dest == refused.dest) again = &h.smsc.submits[i];
  }
  ASSERT_NE(again, nullptr);
  EXPECT_GE(again->at - refused.at, 1000u);
  EXPECT_EQ(again->answer, Answer::kOk);
  auto snap = h.throttle().snapshot(static_cast<uint64_t>(h.clock().wall_ms()));
  EXPECT_GE(snap.pushbacks, 3u);
  EXPECT_GT(snap.adaptive_rate_per_s, 0.0);
  EXPECT_LT(snap.adaptive_rate_per_s, 50.0);
}

TEST(SmsWorker, GenericNackAndSystemErrorRetryAfterTheBackoff) {
  SmsOptions o;
  o.window = 1;
  o.max_attempts = 2;
  o.retry_delay_ms = 5000;
  o.recipients = 6;
  SmsHarness h(o);
  h.smsc.script = {{2, Answer::kNack}, {3, Answer::kSysErr}};
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 6u);
  for (size_t k : {1u, 2u}) {
    const Submit& refused = h.smsc.submits[k];
    const Submit* again = nullptr;
    for (size_t i = k + 1; i < h.smsc.submits.size(); ++i) {
      if (h.smsc.submits[i].dest == refused.dest) again = &h.smsc.submits[i];
    }
    ASSERT_NE(again, nullptr);
    EXPECT_GE(again->at - refused.at, 5000u * 3 / 4) << k;  // backoff with jitter
  }
  auto rows = h.store().list(RcptStatus::kSent, 10);
  ASSERT_TRUE(rows.ok());
  int twice = 0;
  for (auto& [row, out] : *rows) twice += out.attempts == 2 ? 1 : 0;
  EXPECT_EQ(twice, 2);
}

TEST(SmsWorker, AttemptsRunOutAndTheRecipientStaysDeferred) {
  SmsOptions o;
  o.window = 1;
  o.max_attempts = 2;
  o.retry_delay_ms = 1000;
  o.recipients = 3;
  SmsHarness h(o);
  h.smsc.random = [](uint64_t) { return Answer::kSysErr; };
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kDeferred), 3u);
  EXPECT_EQ(h.smsc.submits.size(), 6u);
}

TEST(SmsWorker, ADroppedBindComesBackAndItsOpenMessagesGoAgainOnce) {
  SmsOptions o;
  o.window = 4;
  o.recipients = 40;
  SmsHarness h(o);
  h.smsc.script = {{10, Answer::kDrop}};
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 40u);
  auto acc = h.accepted();
  EXPECT_EQ(acc.size(), 40u);
  for (auto& [to, n] : acc) EXPECT_EQ(n, 1) << to;
  EXPECT_EQ(h.smsc.binds, 2);
}

TEST(SmsWorker, EnquireLinkKeepsAnIdleBindAliveOnTime) {
  SmsOptions o;
  o.window = 1;
  o.recipients = 3;
  o.rate = "1/min";  // a minute between messages: the bind idles
  o.enquire_link_ms = 20000;
  SmsHarness h(o);
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 3u);
  ASSERT_GE(h.smsc.enquire_links.size(), 2u);
  for (size_t i = 0; i < h.smsc.enquire_links.size(); ++i) {
    const uint64_t idle = h.smsc.enquire_links[i] - h.smsc.last_io[i];
    EXPECT_GE(idle, 20000u) << i;
    EXPECT_LE(idle, 20100u) << i;
  }
  ASSERT_EQ(h.smsc.submits.size(), 3u);
  EXPECT_GE(h.smsc.submits[1].at - h.smsc.submits[0].at, 59000u);
}

TEST(SmsWorker, APartlyAcceptedMessageFromAnEarlierRunSendsOnlyItsMissingParts) {
  SmsOptions o;
  o.window = 1;
  o.recipients = 2;
  o.text = "Hi {{name}} " + std::string(400, 'x');  // three GSM-7 parts
  SmsHarness h(o);
  // What a killed run left: recipient 1 deferred with part 1 accepted under reference 77.
  std::vector<RecipientRow> rows;
  ASSERT_TRUE(h.store().claim(0, 10, rows, true).ok());
  Outcome out;
  out.id = rows[0].id;
  out.status = RcptStatus::kDeferred;
  out.attempts = 1;
  out.sms_ids = {"old1", "", ""};
  out.sms_ref = 77;
  Outcome rel;
  rel.id = rows[1].id;
  rel.status = RcptStatus::kUnsent;
  rel.status_only = true;
  ASSERT_TRUE(h.store().record({out, rel}).ok());
  ASSERT_TRUE(partial_sms(sqlite_handle(h.store()), rows[0].id)->resumable());
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kSent), 2u);
  std::vector<std::pair<int, int>> first;  // (ref, part) of recipient 1's submits
  int second = 0;
  for (const Submit& s : h.smsc.submits) {
    if (s.dest == digits(rows[0].email)) first.emplace_back(s.ref, s.part);
    if (s.dest == digits(rows[1].email)) ++second;
  }
  EXPECT_EQ(first, (std::vector<std::pair<int, int>>{{77, 2}, {77, 3}}));
  EXPECT_EQ(second, 3);  // the other one whole
  auto p = partial_sms(sqlite_handle(h.store()), rows[0].id);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ids[0], "old1");
  EXPECT_FALSE(p->ids[1].empty());
  EXPECT_FALSE(p->ids[2].empty());
  EXPECT_EQ(p->concat_ref, 77);
}

TEST(SmsWorker, ThePartsOfAMessageDeferredInPartKeepTheirReferenceInTheTask) {
  SmsOptions o;
  o.window = 1;
  o.recipients = 1;
  o.max_attempts = 1;  // the run ends with it deferred, as a kill before the retry would
  o.text = "Hi {{name}} " + std::string(400, 'x');
  SmsHarness h(o);
  h.smsc.script = {{2, Answer::kSysErr}};
  ASSERT_TRUE(h.run());
  h.expect_settled_once();
  EXPECT_EQ(h.counts().get(RcptStatus::kDeferred), 1u);
  ASSERT_EQ(h.smsc.submits.size(), 2u);
  auto p = partial_sms(sqlite_handle(h.store()), 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ids, (std::vector<std::string>{"m1", "", ""}));
  EXPECT_EQ(p->concat_ref, h.smsc.submits[0].ref);
  EXPECT_TRUE(p->resumable());
}

// A seeded property run: random answers (and drops), windows, binds, attempts and a stop.
std::string check_sms_run(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  SmsOptions o;
  o.seed = seed;
  o.recipients = 1 + pick(pick(4) == 0 ? 700 : 60);
  o.window = static_cast<uint32_t>(1 + pick(8));
  o.binds = static_cast<uint32_t>(1 + pick(2));
  o.max_attempts = static_cast<uint32_t>(1 + pick(3));
  o.retry_delay_ms = static_cast<uint32_t>(100 + pick(3000));
  if (pick(3) == 0) o.text = "{{name}} " + std::string(200 + pick(300), 'y');
  std::vector<uint32_t> w = {static_cast<uint32_t>(10 + pick(40))};
  for (int i = 1; i < 6; ++i) w.push_back(static_cast<uint32_t>(pick(3) == 0 ? pick(4) : 0));
  const int signal_at = pick(5) == 0 ? static_cast<int>(pick(200)) : -1;
  SmsHarness h(o);
  auto answers = std::make_shared<std::mt19937_64>(seed * 7 + 1);
  h.smsc.random = [answers, w](uint64_t) {
    std::discrete_distribution<int> d(w.begin(), w.end());
    return static_cast<Answer>(d(*answers));
  };
  if (!h.run(24 * 3'600'000ull, signal_at)) return "the run never finished";
  Ledger& l = h.ledger();
  if (l.violations() != 0) return std::to_string(l.violations()) + " ledger violations";
  if (!l.empty()) return std::to_string(l.open_count()) + " recipients never settled";
  StatusCounts c = h.counts();
  if (c.get(RcptStatus::kInFlight) != 0) return "recipients left in flight";
  if (c.get(RcptStatus::kSent) != l.settled(Settle::kSent)) return "sent: store != ledger";
  if (c.get(RcptStatus::kDeferred) != l.settled(Settle::kDeferred)) return "deferred differs";
  if (c.total != o.recipients) return "the store lost rows";
  // Every message accepted whole at most once; every recipient recorded sent was accepted.
  int dup_parts = 0;
  auto acc = h.accepted(&dup_parts);
  if (dup_parts != 0) return std::to_string(dup_parts) + " parts accepted twice";
  for (auto& [to, n] : acc) {
    if (n != 1) return "+" + to + " accepted " + std::to_string(n) + " times";
  }
  if (acc.size() != c.get(RcptStatus::kSent)) {
    return std::to_string(acc.size()) + " accepted, " +
           std::to_string(c.get(RcptStatus::kSent)) + " recorded sent";
  }
  if (signal_at < 0 && l.claimed() != o.recipients) return "recipients never claimed";
  return "";
}

TEST(SmsWorkerProperty, EveryClaimedRecipientSettlesExactlyOnce) {
  if (const char* s = std::getenv("SB_PROPERTY_SEED"); s != nullptr && *s != '\0') {
    const uint64_t seed = std::strtoull(s, nullptr, 10);
    EXPECT_EQ(check_sms_run(seed), "") << "seed " << seed;
    return;
  }
  // Fewer runs than the SMTP engine's: each runs a real SMPP session per bind.
  uint64_t runs = 150;
  if (const char* s = std::getenv("SB_PROPERTY_RUNS"); s != nullptr && *s != '\0') {
    runs = std::max<uint64_t>(1, std::strtoull(s, nullptr, 10) / 5);
  }
  size_t failures = 0;
  for (uint64_t seed = 1; seed <= runs && failures < 5; ++seed) {
    std::string err = check_sms_run(seed);
    if (!err.empty()) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << " (SB_PROPERTY_SEED=" << seed << "): " << err;
    }
  }
}

}  // namespace
}  // namespace sb::test
