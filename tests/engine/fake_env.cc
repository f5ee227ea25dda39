// The fake loop environment of the engine tests.
#include "engine/fake_env.h"

#include <cstdlib>

namespace sb::test {

// Engine tests run with a strict ledger: a lost or twice-settled recipient aborts, named.
[[maybe_unused]] const int kStrictLedger = (setenv("SMTPBLAST_LEDGER_STRICT", "1", 1), 0);

FakeTimer::FakeTimer(FakeLoop& loop, std::function<void()> cb) : loop_(loop), cb_(std::move(cb)) {
  loop_.timers.insert(this);
}

FakeTimer::~FakeTimer() { loop_.timers.erase(this); }

void FakeTimer::start(uint64_t delay_ms) { due_ = loop_.clock().mono_ms() + delay_ms; }

std::unique_ptr<EnginePool> FakeLoop::pool(const PoolConfig& cfg, PoolHost& host) {
  return std::make_unique<FakePool>(*this, cfg, host);
}

namespace {

class FakeMx final : public MxLookup {
 public:
  explicit FakeMx(FakeLoop& loop) : loop_(loop) {}
  void resolve(const std::string& domain, dns::MxCallback cb) override {
    loop_.lookups.emplace_back(domain, std::move(cb));
  }
  void shutdown() override {
    auto l = std::move(loop_.lookups);
    loop_.lookups.clear();
    for (auto& [d, cb] : l) {
      dns::MxResult r;
      r.status = dns::MxStatus::kTemporary;
      r.message = "resolver shut down";
      cb(r);
    }
  }

 private:
  FakeLoop& loop_;
};

}  // namespace

Result<std::unique_ptr<MxLookup>> FakeLoop::mx_lookup(const DirectLookup& d) {
  (void)d;
  return std::unique_ptr<MxLookup>(std::make_unique<FakeMx>(*this));
}

bool FakeLoop::fire_due() {
  bool any = false;
  for (;;) {
    FakeTimer* due = nullptr;
    for (FakeTimer* t : timers) {
      if (t->due() != 0 && t->due() <= clock_.mono_ms() &&
          (due == nullptr || t->due() < due->due())) {
        due = t;
      }
    }
    if (due == nullptr) return any;
    due->fire();
    any = true;
  }
}

uint64_t FakeLoop::next_due() const {
  uint64_t n = 0;
  for (FakeTimer* t : timers) {
    if (t->due() != 0 && (n == 0 || t->due() < n)) n = t->due();
  }
  return n;
}

bool FakeLoop::pump() {
  bool any = false;
  std::vector<FakePool*> ps(pools.begin(), pools.end());
  for (FakePool* p : ps) {
    if (pools.count(p) != 0) any = p->pump() || any;
  }
  return any;
}

bool FakeLoop::answer_lookups() {
  if (lookups.empty()) return false;
  auto l = std::move(lookups);
  lookups.clear();
  for (auto& [domain, cb] : l) {
    dns::MxResult r;
    r.domain = domain;
    auto st = mx_status.find(domain);
    r.status = st == mx_status.end() ? dns::MxStatus::kOk : st->second;
    if (r.status == dns::MxStatus::kOk) {
      dns::MailExchanger mx;
      mx.host = "mx." + domain;
      mx.preference = 10;
      const uint8_t loopback[4] = {127, 0, 0, 1};
      mx.addresses.push_back(dns::IpAddress::v4(loopback));
      r.hosts.push_back(mx);
      r.expires_ms = clock_.mono_ms() + mx_ttl_ms;
    } else {
      r.message = r.status == dns::MxStatus::kPermanent ? "no such domain" : "DNS timeout";
    }
    cb(r);
  }
  return true;
}

FakePool::FakePool(FakeLoop& loop, const PoolConfig& cfg, PoolHost& host)
    : loop_(loop), cfg_(cfg), host_(host), dummy_(scfg_, host, outbox_) {
  loop_.pools.insert(this);
}

FakePool::~FakePool() { loop_.pools.erase(this); }

void FakePool::abort(const std::string& why) {
  (void)why;
  failed_ = true;
  while (sessions_ > 0) end_session();
}

void FakePool::stop(const std::string& why) {
  (void)why;
  stopping_ = true;
  poked_ = true;
}

void FakePool::end_session() {
  --sessions_;
  host_.session_ended(dummy_, "");
}

FakeReply FakePool::draw() {
  const auto& w = loop_.plan.weights;
  uint64_t total = 0;
  for (uint32_t x : w) total += x;
  if (total == 0) return FakeReply::k250;
  uint64_t r = loop_.rng_() % total;
  for (size_t i = 0; i < w.size(); ++i) {
    if (r < w[i]) return static_cast<FakeReply>(i);
    r -= w[i];
  }
  return FakeReply::k250;
}

// One transaction; false when the connection dropped.
bool FakePool::run_txn(Txn& t) {
  ++loop_.txns;
  t.next_cmd = 1;  // MAIL FROM written
  t.accepted = 0;
  FakeReply whole = draw();
  bool dropped = whole == FakeReply::kDropBeforeDot || whole == FakeReply::kDropAfterDot;
  for (size_t i = 0; i < t.rcpts.size(); ++i) {
    FakeReply r = dropped ? whole : draw();
    if (r == FakeReply::kDropBeforeDot || r == FakeReply::kDropAfterDot) r = FakeReply::k250;
    Verdict v = Verdict::kSent;
    int code = 250;
    if (dropped) {
      // Before the dot nothing was delivered; after it the reply never came: deferred both.
      v = Verdict::kDeferred;
      code = 0;
    } else {
      switch (r) {
        case FakeReply::k421:
          code = 421;
          break;
        case FakeReply::k451:
          code = 451;
          break;
        case FakeReply::k452:
          code = 452;
          break;
        case FakeReply::k550:
          code = 550;
          break;
        case FakeReply::k554:
          code = 554;
          break;
        default:
          break;
      }
      if (code != 250) v = verdict_for(code);
    }
    if (v == Verdict::kSent) ++t.accepted;
    host_.rcpt_outcome(t, i, v, code, code == 0 ? "connection lost" : "fake reply");
  }
  host_.txn_done(t);
  return !dropped;
}

bool FakePool::pump() {
  if (failed_) return false;
  bool any = false;
  // Open connections while there is work and the host's budget allows.
  const bool dead =
      !loop_.plan.dead.empty() && cfg_.name.find(loop_.plan.dead) != std::string::npos;
  while (!stopping_ && sessions_ < cfg_.connections && host_.has_work()) {
    if (!host_.reserve_connection()) break;
    ++connections_opened;
    any = true;
    const bool refused = dead || (loop_.plan.connect_failure > 0 &&
                                  std::uniform_real_distribution<double>(0, 1)(loop_.rng_) <
                                      loop_.plan.connect_failure);
    if (refused) {
      host_.session_ended(dummy_, "");
      if (++failures_ >= std::max<uint32_t>(cfg_.max_connect_failures, 1)) {
        // As the real pool: it fails only once no connection of it is open.
        while (sessions_ > 0) end_session();
        failed_ = true;
        host_.pool_failed("connection refused", false);
        return true;
      }
      continue;
    }
    failures_ = 0;
    ++sessions_;
  }
  // Each session carries at most one transaction per round.
  size_t n = sessions_;
  for (size_t s = 0; s < n && sessions_ > 0 && !failed_; ++s) {
    Txn* t = nullptr;
    bool bdat = (loop_.rng_() & 1) != 0;
    auto next = host_.next_txn(bdat, t);
    if (next == SessionHost::Next::kTxn) {
      any = true;
      t->bdat = bdat;
      if (!run_txn(*t)) end_session();
    } else if (next == SessionHost::Next::kDone) {
      any = true;
      end_session();
    }
  }
  if (sessions_ == 0 && !failed_ && !host_.has_work() && poked_) {
    poked_ = false;
    host_.pool_idle();
  }
  return any;
}

}  // namespace sb::test
