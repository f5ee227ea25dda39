// Resolver and MxResolver against real DNS servers on loopback: dnsmasq for real-world answers,
// a canned responder (dns_test_util.h) for SERVFAIL, SOA negative TTLs, counting and silence.
#include "dns/mx_resolver.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <memory>
#include <set>

#include "dns/dns_test_util.h"
#include "dns/resolver.h"

namespace sb::dns {
namespace {

using testing::Dnsmasq;
using testing::FakeDnsServer;
using testing::run_until;

const char* kZone = R"(local=/test/
local-ttl=60
mx-host=one.test,mx1.one.test,10
host-record=mx1.one.test,127.0.0.2,::2
mx-host=multi.test,b.multi.test,10
mx-host=multi.test,a.multi.test,10
mx-host=multi.test,c.multi.test,20
host-record=a.multi.test,127.0.0.3
host-record=b.multi.test,127.0.0.4
host-record=c.multi.test,127.0.0.5
host-record=implicit.test,127.0.0.6
txt-record=txtonly.test,"no mail here"
mx-host=nullmx.test,.,0
mx-host=cn.test,alias.cn.test,5
cname=alias.cn.test,real.cn.test
host-record=real.cn.test,127.0.0.7
mx-host=skip.test,noaddr.skip.test,5
mx-host=skip.test,ok.skip.test,10
host-record=ok.skip.test,127.0.0.8
mx-host=alldead.test,noaddr.alldead.test,5
txt-record=one.test,"v=spf1 -all"
)";

std::vector<std::string> names(const MxResult& r) {
  std::vector<std::string> v;
  for (const auto& h : r.hosts) v.push_back(h.host);
  return v;
}

std::vector<std::string> addrs(const MailExchanger& m) {
  std::vector<std::string> v;
  for (const auto& a : m.addresses) v.push_back(a.to_string());
  return v;
}

class DnsFixture : public ::testing::Test {
 protected:
  void SetUp() override { uv_loop_init(&loop_); }
  void TearDown() override {
    mx_.reset();
    resolver_.reset();
    testing::drain_loop(&loop_);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a uv handle was left open";
  }
  void make_mx(const std::string& server, MxResolverOptions opts = {}, int timeout_ms = 1000,
               int tries = 2) {
    ResolverConfig cfg;
    cfg.servers = {server};
    cfg.timeout_ms = timeout_ms;
    cfg.tries = tries;
    auto r = MxResolver::create(&loop_, cfg, std::move(opts));
    ASSERT_TRUE(r.ok()) << r.error().describe();
    mx_ = std::move(r).value();
  }
  MxResult resolve(const std::string& domain, int timeout_ms = 5000) {
    MxResult out;
    bool done = false;
    EXPECT_TRUE(mx_->resolve_mx(domain, [&](const MxResult& r) {
      out = r;
      done = true;
    }));
    EXPECT_TRUE(run_until(
        &loop_, [&] { return done; }, timeout_ms))
        << domain;
    return out;
  }

  uv_loop_t loop_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<MxResolver> mx_;
};

// ---- against dnsmasq ----

class DnsmasqTest : public DnsFixture {
 protected:
  static void SetUpTestSuite() { server_ = new Dnsmasq(kZone); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    DnsFixture::SetUp();
    ASSERT_TRUE(server_->running()) << "dnsmasq did not start";
  }
  static Dnsmasq* server_;
};
Dnsmasq* DnsmasqTest::server_ = nullptr;

TEST_F(DnsmasqTest, ResolverRawQueries) {
  ResolverConfig cfg;
  cfg.servers = {server_->address()};
  auto r = Resolver::create(&loop_, cfg);
  ASSERT_TRUE(r.ok());
  resolver_ = std::move(r).value();
  std::optional<Result<Answer>> mx, txt, nx;
  resolver_->query("one.test", RecordType::kMx, [&](Result<Answer> a) { mx = std::move(a); });
  resolver_->query("one.test", RecordType::kTxt, [&](Result<Answer> a) { txt = std::move(a); });
  resolver_->query("nx.test", RecordType::kMx, [&](Result<Answer> a) { nx = std::move(a); });
  EXPECT_EQ(resolver_->pending(), 3u);  // nothing completes inside query()
  ASSERT_TRUE(run_until(
      &loop_, [&] { return mx && txt && nx; }, 5000));
  ASSERT_TRUE(mx->ok());
  EXPECT_EQ((*mx)->mx, (std::vector<MxRecord>{{10, "mx1.one.test"}}));
  ASSERT_TRUE(txt->ok());
  EXPECT_EQ((*txt)->txt, std::vector<std::string>{"v=spf1 -all"});
  ASSERT_TRUE(nx->ok());
  EXPECT_EQ((*nx)->rcode, Rcode::kNxDomain);
  EXPECT_EQ(resolver_->pending(), 0u);
}

// A burst larger than max_in_flight waits its turn: every question is answered, none lost to a
// timeout (with 600 at once, replies overflowed the UDP receive buffer and cost 5 s each).
TEST_F(DnsmasqTest, BurstBeyondInFlightLimitIsQueuedNotLost) {
  ResolverConfig cfg;
  cfg.servers = {server_->address()};
  cfg.max_in_flight = 4;
  cfg.timeout_ms = 3000;
  resolver_ = std::move(Resolver::create(&loop_, cfg)).value();
  int ok = 0, errors = 0;
  for (int i = 0; i < 300; ++i) {
    resolver_->query(i % 2 ? "one.test" : "multi.test", RecordType::kMx, [&](Result<Answer> a) {
      (a.ok() ? ok : errors)++;
    });
  }
  EXPECT_EQ(resolver_->pending(), 300u);
  uint64_t t0 = uv_now(&loop_);
  ASSERT_TRUE(run_until(
      &loop_, [&] { return ok + errors == 300; }, 10000));
  EXPECT_EQ(ok, 300);
  EXPECT_LT(uv_now(&loop_) - t0, 2500u) << "some question waited for a timeout";
}

TEST_F(DnsmasqTest, ShutdownFailsQuestionsStillWaitingForASlot) {
  ResolverConfig cfg;
  cfg.servers = {server_->address()};
  cfg.max_in_flight = 1;
  resolver_ = std::move(Resolver::create(&loop_, cfg)).value();
  int calls = 0;
  std::string last;
  for (int i = 0; i < 5; ++i) {
    resolver_->query("one.test", RecordType::kMx, [&](Result<Answer> a) {
      ++calls;
      if (!a.ok()) last = a.error().message;
    });
  }
  resolver_->shutdown();
  EXPECT_EQ(calls, 5);
  EXPECT_NE(last.find("shut down"), std::string::npos) << last;
}

TEST_F(DnsmasqTest, CancelledQueryNeverCallsBack) {
  ResolverConfig cfg;
  cfg.servers = {server_->address()};
  resolver_ = std::move(Resolver::create(&loop_, cfg)).value();
  int calls = 0;
  bool other = false;
  QueryId id = resolver_->query("one.test", RecordType::kMx, [&](Result<Answer>) { ++calls; });
  resolver_->query("one.test", RecordType::kA, [&](Result<Answer>) { other = true; });
  resolver_->cancel(id);
  ASSERT_TRUE(run_until(
      &loop_, [&] { return other && resolver_->pending() == 0; }, 5000));
  EXPECT_EQ(calls, 0);
}

TEST_F(DnsmasqTest, OneMx) {
  make_mx(server_->address());
  MxResult r = resolve("one.test");
  ASSERT_EQ(r.status, MxStatus::kOk) << r.message;
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].host, "mx1.one.test");
  EXPECT_EQ(r.hosts[0].preference, 10);
  EXPECT_EQ(addrs(r.hosts[0]), (std::vector<std::string>{"127.0.0.2", "::2"}));
  EXPECT_FALSE(r.implicit_mx);
  EXPECT_EQ(route_key(r), "10:mx1.one.test");
}

TEST_F(DnsmasqTest, Ipv4OnlyAndIpv6Only) {
  MxResolverOptions o4;
  o4.ipv4_only = true;
  make_mx(server_->address(), o4);
  MxResult r = resolve("one.test");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(addrs(r.hosts[0]), std::vector<std::string>{"127.0.0.2"});
  mx_.reset();
  MxResolverOptions o6;
  o6.ipv6_only = true;
  make_mx(server_->address(), o6);
  r = resolve("one.test");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(addrs(r.hosts[0]), std::vector<std::string>{"::2"});
  // implicit.test has only an A record: IPv6-only cannot reach it, which is not the
  // recipient's fault → temporary, never a bounce.
  r = resolve("implicit.test");
  EXPECT_EQ(r.status, MxStatus::kTemporary) << r.message;
}

TEST_F(DnsmasqTest, SeveralMxOrderedAndEqualPreferencesShuffled) {
  std::set<std::vector<std::string>> orders;
  for (uint64_t seed = 0; seed < 16; ++seed) {
    MxResolverOptions o;
    o.random = [seed]() mutable { return seed++; };
    make_mx(server_->address(), o);
    MxResult r = resolve("multi.test");
    ASSERT_TRUE(r.ok()) << r.message;
    auto n = names(r);
    ASSERT_EQ(n.size(), 3u);
    EXPECT_EQ(n[2], "c.multi.test");  // preference 20 always last
    EXPECT_EQ(r.hosts[0].preference, 10);
    EXPECT_EQ(r.hosts[1].preference, 10);
    orders.insert(n);
    EXPECT_EQ(route_key(r), "10:a.multi.test,10:b.multi.test,20:c.multi.test");
    mx_.reset();
  }
  EXPECT_EQ(orders.size(), 2u) << "equal preferences were never shuffled (or lost)";
}

TEST_F(DnsmasqTest, NoMxMeansImplicitMx) {
  make_mx(server_->address());
  MxResult r = resolve("implicit.test");
  ASSERT_EQ(r.status, MxStatus::kOk) << r.message;
  EXPECT_TRUE(r.implicit_mx);
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].host, "implicit.test");
  EXPECT_EQ(addrs(r.hosts[0]), std::vector<std::string>{"127.0.0.6"});
  EXPECT_EQ(route_key(r), "implicit:implicit.test");
}

TEST_F(DnsmasqTest, NoMxAndNoAddressIsPermanent) {
  make_mx(server_->address());
  MxResult r = resolve("txtonly.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_EQ(r.message, "no MX and no address for txtonly.test");
}

TEST_F(DnsmasqTest, NullMxIsPermanent) {
  make_mx(server_->address());
  MxResult r = resolve("nullmx.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_EQ(r.message, "domain does not accept mail (null MX)");
  EXPECT_EQ(route_key(r), "");
}

TEST_F(DnsmasqTest, NxdomainIsPermanent) {
  make_mx(server_->address());
  MxResult r = resolve("does-not-exist.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_NE(r.message.find("NXDOMAIN"), std::string::npos) << r.message;
}

TEST_F(DnsmasqTest, MxThatIsACnameIsFollowedAndNoted) {
  make_mx(server_->address());
  MxResult r = resolve("cn.test");
  ASSERT_EQ(r.status, MxStatus::kOk) << r.message;
  ASSERT_EQ(r.hosts.size(), 1u);
  EXPECT_EQ(r.hosts[0].host, "alias.cn.test");
  EXPECT_EQ(addrs(r.hosts[0]), std::vector<std::string>{"127.0.0.7"});
  ASSERT_FALSE(r.notes.empty());
  EXPECT_NE(r.notes[0].find("CNAME for real.cn.test"), std::string::npos) << r.notes[0];
}

TEST_F(DnsmasqTest, MxHostWithoutAddressIsSkipped) {
  make_mx(server_->address());
  MxResult r = resolve("skip.test");
  ASSERT_EQ(r.status, MxStatus::kOk) << r.message;
  EXPECT_EQ(names(r), std::vector<std::string>{"ok.skip.test"});
  bool noted = false;
  for (const auto& n : r.notes) noted |= n.find("noaddr.skip.test skipped") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(DnsmasqTest, AllMxHostsWithoutAddressIsPermanent) {
  make_mx(server_->address());
  MxResult r = resolve("alldead.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_NE(r.message.find("has an address"), std::string::npos) << r.message;
}

TEST_F(DnsmasqTest, IdnDomainsAreNormalised) {
  auto a = normalise_domain("Bücher.Example.");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.value(), "xn--bcher-kva.example");
  EXPECT_EQ(normalise_domain("ONE.test").value(), "one.test");
  EXPECT_FALSE(normalise_domain("a..b").ok());
  EXPECT_FALSE(normalise_domain(std::string(64, 'a') + ".test").ok());
  make_mx(server_->address());
  MxResult r = resolve("ONE.TEST.");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.domain, "one.test");
  r = resolve("bad\xff\xfe.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_NE(r.message.find("invalid domain name"), std::string::npos) << r.message;
}

// ---- against the canned responder ----

FakeDnsServer::Reply canned(const std::string& qname, uint16_t qtype) {
  const char* soa = "test. 30 IN SOA ns.test. host.test. 1 7200 3600 1209600 20";
  FakeDnsServer::Reply r;
  if (qname == "servfail.test.") {
    r.rcode = 2;
  } else if (qname == "refused.test.") {
    r.rcode = 5;
  } else if (qname == "neg.test.") {
    r.rcode = 3;
    r.authority = {soa};
  } else if (qname == "silent.test.") {
    r.rcode = -1;
  } else if (qname == "busy.test." && qtype == 15) {
    r.answer = {"busy.test. 300 IN MX 10 mx.busy.test."};
  } else if (qname == "mx.busy.test." && qtype == 1) {
    r.answer = {"mx.busy.test. 300 IN A 127.0.0.10"};
  } else if (qname == "xn--bcher-kva.test." && qtype == 15) {
    r.answer = {"xn--bcher-kva.test. 300 IN MX 10 mx.busy.test."};
  } else if (qname == "tempmx.test." && qtype == 15) {
    r.answer = {"tempmx.test. 300 IN MX 10 broken.tempmx.test."};
  } else if (qname == "broken.tempmx.test.") {
    r.rcode = 2;
  } else {
    r.authority = {soa};  // NODATA
  }
  return r;
}

TEST_F(DnsFixture, ServfailIsTemporary) {
  FakeDnsServer dns(canned);
  make_mx(dns.address());
  MxResult r = resolve("servfail.test");
  EXPECT_EQ(r.status, MxStatus::kTemporary);
  EXPECT_NE(r.message.find("SERVFAIL"), std::string::npos) << r.message;
  EXPECT_EQ(dns.count("servfail.test.", 15), 1);  // an answer, if a bad one: not retried
  r = resolve("refused.test");
  EXPECT_EQ(r.status, MxStatus::kTemporary) << r.message;
}

TEST_F(DnsFixture, MxHostLookupFailingIsTemporary) {
  FakeDnsServer dns(canned);
  make_mx(dns.address());
  MxResult r = resolve("tempmx.test");
  EXPECT_EQ(r.status, MxStatus::kTemporary);
  EXPECT_NE(r.message.find("no MX host could be resolved"), std::string::npos) << r.message;
}

TEST_F(DnsFixture, ConcurrentLookupsAreCoalescedAndCached) {
  FakeDnsServer dns(canned);
  make_mx(dns.address());
  int done = 0;
  std::vector<MxResult> got;
  for (int i = 0; i < 3; ++i) {
    mx_->resolve_mx("busy.test", [&](const MxResult& r) {
      got.push_back(r);
      ++done;
    });
  }
  EXPECT_EQ(mx_->in_flight(), 1u);
  ASSERT_TRUE(run_until(
      &loop_, [&] { return done == 3; }, 5000));
  for (const auto& r : got) {
    ASSERT_TRUE(r.ok()) << r.message;
    EXPECT_EQ(addrs(r.hosts[0]), std::vector<std::string>{"127.0.0.10"});
  }
  EXPECT_EQ(dns.count("busy.test.", 15), 1);
  EXPECT_EQ(dns.count("mx.busy.test.", 1), 1);
  // A cache hit: no second query, and still never a callback inside resolve_mx().
  bool inside = true;
  bool hit = false;
  mx_->resolve_mx("busy.test", [&](const MxResult& r) { hit = r.ok() && !inside; });
  inside = false;
  ASSERT_TRUE(run_until(
      &loop_, [&] { return hit; }, 1000));
  EXPECT_EQ(dns.count("busy.test.", 15), 1);
  // Another domain with the same MX host reuses the cached host addresses; IDN input too.
  MxResult idn = resolve("bücher.test");
  ASSERT_TRUE(idn.ok()) << idn.message;
  EXPECT_EQ(dns.count("xn--bcher-kva.test.", 15), 1);
  EXPECT_EQ(dns.count("mx.busy.test.", 1), 1);
  EXPECT_EQ(route_key(idn), route_key(got[0]));
}

TEST_F(DnsFixture, NegativeAnswersCachedForSoaMinimum) {
  FakeDnsServer dns(canned);
  FakeClock clock;
  MxResolverOptions o;
  o.clock = &clock;
  make_mx(dns.address(), o);
  MxResult r = resolve("neg.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_EQ(dns.count("neg.test.", 15), 1);
  clock.advance(19'000);  // min(SOA TTL 30, MINIMUM 20) = 20 s
  r = resolve("neg.test");
  EXPECT_EQ(r.status, MxStatus::kPermanent);
  EXPECT_EQ(dns.count("neg.test.", 15), 1);
  clock.advance(2'000);
  r = resolve("neg.test");
  EXPECT_EQ(dns.count("neg.test.", 15), 2);
}

TEST_F(DnsFixture, DeadServerTimesOutOnTheTimerNotAPoll) {
  FakeDnsServer dns([](const std::string&, uint16_t) { return FakeDnsServer::Reply{-1, {}, {}}; });
  // 150 ms, then 300 ms (c-ares doubles per round): ~450 ms in all, far from a 1 s poll.
  make_mx(dns.address(), {}, 150, 2);
  auto t0 = std::chrono::steady_clock::now();
  MxResult r = resolve("silent.test", 5000);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(r.status, MxStatus::kTemporary);
  EXPECT_NE(r.message.find("timed out"), std::string::npos) << r.message;
  EXPECT_EQ(dns.count("silent.test.", 15), 2);  // the retry happened
  EXPECT_GE(ms, 400);
  EXPECT_LT(ms, 900);
}

TEST_F(DnsFixture, ShutdownCompletesPendingLookupsAsTemporary) {
  FakeDnsServer dns([](const std::string&, uint16_t) { return FakeDnsServer::Reply{-1, {}, {}}; });
  make_mx(dns.address(), {}, 5000, 1);
  int calls = 0;
  MxStatus st = MxStatus::kOk;
  mx_->resolve_mx("silent.test", [&](const MxResult& r) {
    ++calls;
    st = r.status;
  });
  run_until(
      &loop_, [&] { return dns.total() > 0; }, 2000);
  mx_->shutdown();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(st, MxStatus::kTemporary);
  EXPECT_FALSE(mx_->resolve_mx("one.test", [&](const MxResult&) { ++calls; }));
  EXPECT_EQ(calls, 1);
}

TEST(ResolverConfigTest, ServerAddresses) {
  EXPECT_EQ(parse_server_address("127.0.0.1").value().port, 53);
  EXPECT_EQ(parse_server_address("127.0.0.1:5353").value().port, 5353);
  EXPECT_EQ(parse_server_address("[::1]:5353").value().port, 5353);
  EXPECT_EQ(parse_server_address("::1").value().port, 53);
  EXPECT_FALSE(parse_server_address("localhost").ok());
  EXPECT_FALSE(parse_server_address("127.0.0.1:0").ok());
  EXPECT_FALSE(parse_server_address("127.0.0.1:99999").ok());
  EXPECT_FALSE(parse_server_address("[::1").ok());
  uv_loop_t loop;
  uv_loop_init(&loop);
  ResolverConfig cfg;
  cfg.servers = {"not-an-ip"};
  auto r = Resolver::create(&loop, cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not an IP address"), std::string::npos);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

}  // namespace
}  // namespace sb::dns
