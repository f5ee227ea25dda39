// A seeded property test of the whole engine on a FakeClock with fake pools and fake DNS:
// random replies (250/421/451/452/550/554), drops before and after the final dot, DNS
// timeouts and NXDOMAIN, hand-overs between workers, SIGTERM-style stops (one and two),
// --limit and daily limits. After every run each claimed recipient was settled exactly once
// and the store's counts add up.
//   SB_PROPERTY_RUNS=N   how many runs (default 1000)
//   SB_PROPERTY_SEED=S   replay one seed (a failure prints its seed)
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "engine/harness.h"

namespace sb::test {
namespace {

volatile uint64_t g_seed = 0;

// A strict ledger aborts on a violation: say which seed, so it can be replayed.
void on_abort(int) {
  char buf[96];
  int n = std::snprintf(buf, sizeof buf, "\nproperty test: failing seed %llu (SB_PROPERTY_SEED)\n",
                        static_cast<unsigned long long>(g_seed));
  if (n > 0) (void)!::write(2, buf, static_cast<size_t>(n));
}

struct Run {
  HarnessOptions o;
  std::vector<std::string> emails;
  int signal_at = -1;         // turn of a first SIGTERM
  int second_signal_at = -1;  // turn of a second one
};

Run make_run(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };
  Run r;
  r.o.seed = seed;
  r.o.memory_store = true;
  r.o.direct = pick(2) == 0;
  r.o.workers = r.o.direct ? 1 + pick(4) : 1 + pick(2);
  r.o.connections = static_cast<uint32_t>(1 + pick(6));
  r.o.max_attempts = static_cast<uint32_t>(1 + pick(3));
  r.o.retry_delay_ms = static_cast<uint32_t>(100 + pick(2000));
  r.o.retry_max_ms = r.o.retry_delay_ms * 8;
  if (pick(5) == 0) r.o.limit = 1 + pick(40);
  if (pick(5) == 0) r.o.daily_limit = 1 + pick(40);
  if (r.o.direct && pick(3) == 0) {
    r.o.same_content = true;
    r.o.max_rcpt_per_txn = static_cast<uint32_t>(1 + pick(8));
  }
  // Replies: 250 mostly, the rest by chance.
  r.o.plan.weights = {static_cast<uint32_t>(4 + pick(20))};
  for (int i = 1; i < 8; ++i)
    r.o.plan.weights.push_back(static_cast<uint32_t>(pick(3) == 0 ? pick(4) : 0));
  if (pick(6) == 0) r.o.plan.connect_failure = 0.2;
  const size_t ndomains = 1 + pick(12);
  std::vector<std::string> domains;
  for (size_t i = 0; i < ndomains; ++i) {
    domains.push_back("d" + std::to_string(i) + ".example");
    if (r.o.direct) {
      uint64_t k = pick(10);
      if (k == 0) r.o.mx[domains.back()] = dns::MxStatus::kPermanent;
      if (k == 1) r.o.mx[domains.back()] = dns::MxStatus::kTemporary;
      if (k == 2) r.o.plan.dead = domains.back();
    }
  }
  const size_t n = 1 + pick(pick(4) == 0 ? 1200 : 80);
  for (size_t i = 0; i < n; ++i) {
    r.emails.push_back("u" + std::to_string(i) + "@" + domains[pick(domains.size())]);
  }
  if (pick(6) == 0) r.o.suppress = {r.emails[pick(r.emails.size())]};
  if (pick(5) == 0) r.signal_at = static_cast<int>(pick(30));
  if (r.signal_at >= 0 && pick(2) == 0)
    r.second_signal_at = r.signal_at + static_cast<int>(pick(30));
  return r;
}

// One run; "" or what went wrong.
std::string check_run(uint64_t seed) {
  g_seed = seed;
  Run r = make_run(seed);
  Harness h(r.emails, r.o);
  int turn = 0;
  while (!h.over() && h.turns() < 400000) {
    if (turn == r.signal_at) h.signal();
    if (turn == r.second_signal_at) h.signal();
    ++turn;
    if (!h.run(h.turns() + 1)) continue;
    break;
  }
  if (!h.over()) {
    return "the run never finished (" + std::to_string(h.turns()) + " turns; " +
           std::to_string(h.ledger().open_count()) + " open, direct " + std::to_string(r.o.direct) +
           ", workers " + std::to_string(r.o.workers) + ", limit " + std::to_string(r.o.limit) +
           ", daily " + std::to_string(r.o.daily_limit) + ", signals at " +
           std::to_string(r.signal_at) + "/" + std::to_string(r.second_signal_at) +
           ", finish sent " + std::to_string(h.coordinator().finish_sent()) + ")";
  }
  Ledger& l = h.ledger();
  if (l.violations() != 0) return std::to_string(l.violations()) + " ledger violations";
  if (!l.empty()) return std::to_string(l.open_count()) + " recipients never settled";
  if (l.settled_total() != l.claimed()) return "settled != claimed";
  StatusCounts c = h.counts();
  const uint64_t total = r.emails.size();
  auto want = [&](RcptStatus s, uint64_t n, const char* what) -> std::string {
    if (c.get(s) == n) return "";
    return std::string(what) + ": the store has " + std::to_string(c.get(s)) +
           ", the ledger says " + std::to_string(n);
  };
  for (const std::string& e : {
           want(RcptStatus::kInFlight, 0, "in flight"),
           want(RcptStatus::kSent, l.settled(Settle::kSent), "sent"),
           want(RcptStatus::kFailed, l.settled(Settle::kFailed), "failed"),
           want(RcptStatus::kDeferred, l.settled(Settle::kDeferred), "deferred"),
           want(RcptStatus::kSuppressed, l.settled(Settle::kSuppressed), "suppressed"),
           want(RcptStatus::kUnsent, total - l.claimed() + l.settled(Settle::kReleased), "unsent"),
       }) {
    if (!e.empty()) return e;
  }
  if (c.total != total) return "the store lost rows";
  if (r.o.limit != 0 && l.settled(Settle::kSent) > r.o.limit) return "--limit exceeded";
  if (r.o.daily_limit != 0 && l.settled(Settle::kSent) > r.o.daily_limit)
    return "daily limit exceeded";
  if (r.signal_at < 0 && r.o.limit == 0 && r.o.daily_limit == 0 && l.claimed() + 0 != total) {
    return "a run without a stop left recipients unclaimed";
  }
  return "";
}

TEST(EngineProperty, EveryClaimedRecipientSettlesExactlyOnce) {
  std::signal(SIGABRT, on_abort);
  if (const char* s = std::getenv("SB_PROPERTY_SEED"); s != nullptr && *s != '\0') {
    uint64_t seed = std::strtoull(s, nullptr, 10);
    std::string err = check_run(seed);
    EXPECT_EQ(err, "") << "seed " << seed;
    return;
  }
  uint64_t runs = 1000;
  if (const char* s = std::getenv("SB_PROPERTY_RUNS"); s != nullptr && *s != '\0') {
    runs = std::strtoull(s, nullptr, 10);
  }
  size_t failures = 0;
  for (uint64_t seed = 1; seed <= runs && failures < 5; ++seed) {
    std::string err = check_run(seed);
    if (!err.empty()) {
      ++failures;
      ADD_FAILURE() << "seed " << seed << " (SB_PROPERTY_SEED=" << seed << "): " << err;
    }
  }
}

}  // namespace
}  // namespace sb::test
