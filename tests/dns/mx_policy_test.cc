// The MX policy without a DNS server: ordering, null and implicit MX, TTL clamps, route keys.
#include "dns/mx_policy.h"

#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sb::dns {
namespace {

constexpr uint8_t kV4a[4] = {192, 0, 2, 1};
constexpr uint8_t kV4b[4] = {192, 0, 2, 2};

std::string hosts_of(const std::vector<MailExchanger>& v) {
  std::string s;
  for (const auto& m : v) s += (s.empty() ? "" : " ") + std::to_string(m.preference) + ":" + m.host;
  return s;
}

Answer mx_answer(std::vector<MxRecord> mx, std::optional<uint32_t> ttl = 300) {
  Answer a;
  a.qname = "example.test";
  a.qtype = static_cast<uint16_t>(RecordType::kMx);
  a.mx = std::move(mx);
  a.min_ttl = ttl;
  return a;
}

TEST(MxPolicy, ClampTtl) {
  TtlLimits l;  // min 5, max 86400, negative max 3600
  struct Case {
    std::optional<uint32_t> ttl;
    bool negative;
    uint32_t want;
  };
  const Case cases[] = {
      {300, false, 300},     {0, false, 5},          {4, false, 5},
      {86400, false, 86400}, {999999, false, 86400}, {std::nullopt, false, 5},
      {20, true, 20},        {7200, true, 3600},     {std::nullopt, true, 5},  // no SOA
      {1, true, 5},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(clamp_ttl(c.ttl, c.negative, l), c.want)
        << c.ttl.value_or(0) << (c.negative ? " negative" : " positive");
  }
  TtlLimits odd;
  odd.min_ttl_s = 60;
  odd.max_negative_ttl_s = 10;  // a cap below the floor: the floor wins
  EXPECT_EQ(clamp_ttl(30, true, odd), 60u);
  EXPECT_EQ(clamp_ttl(90, true, odd), 60u);
}

TEST(MxPolicy, PlanOrdersDedupesCapsAndSkipsNullMx) {
  struct Case {
    const char* name;
    std::vector<MxRecord> mx;
    size_t max_hosts;
    MxStatus status;
    std::string hosts;
    size_t notes;
  };
  const std::vector<Case> cases = {
      {"one", {{10, "mx.example.test"}}, 16, MxStatus::kOk, "10:mx.example.test", 0},
      {"by preference then name",
       {{20, "b.test"}, {10, "z.test"}, {20, "a.test"}, {5, "m.test"}},
       16,
       MxStatus::kOk,
       "5:m.test 10:z.test 20:a.test 20:b.test",
       0},
      {"a host twice keeps its lowest preference",
       {{30, "a.test"}, {10, "a.test"}, {20, "b.test"}},
       16,
       MxStatus::kOk,
       "10:a.test 20:b.test",
       0},
      {"null MX (RFC 7505)", {{0, "."}}, 16, MxStatus::kPermanent, "", 0},
      {"several null MX", {{0, "."}, {10, "."}}, 16, MxStatus::kPermanent, "", 0},
      {"null MX next to real ones is ignored",
       {{0, "."}, {10, "mx.test"}},
       16,
       MxStatus::kOk,
       "10:mx.test",
       1},
      {"capped at max_hosts, lowest preferences kept",
       {{40, "d.test"}, {10, "a.test"}, {30, "c.test"}, {20, "b.test"}},
       2,
       MxStatus::kOk,
       "10:a.test 20:b.test",
       1},
  };
  for (const Case& c : cases) {
    MxPlan p = plan_mx(mx_answer(c.mx), "example.test", c.max_hosts, TtlLimits{});
    EXPECT_EQ(p.status, c.status) << c.name;
    EXPECT_EQ(hosts_of(p.candidates), c.hosts) << c.name;
    EXPECT_EQ(p.notes.size(), c.notes) << c.name;
    EXPECT_FALSE(p.implicit_mx) << c.name;
    EXPECT_EQ(p.ttl_s, 300u) << c.name;
  }
  MxPlan null = plan_mx(mx_answer({{0, "."}}), "example.test", 16, TtlLimits{});
  EXPECT_EQ(null.message, "domain does not accept mail (null MX)");
}

TEST(MxPolicy, PlanImplicitMxIsTheDomainItself) {
  Answer a = mx_answer({}, std::nullopt);  // NODATA
  a.negative_ttl = 60;
  MxPlan p = plan_mx(a, "example.test", 16, TtlLimits{});
  EXPECT_EQ(p.status, MxStatus::kOk);
  EXPECT_TRUE(p.implicit_mx);
  EXPECT_EQ(hosts_of(p.candidates), "0:example.test");
  EXPECT_EQ(p.ttl_s, 60u);  // the negative (SOA) TTL, clamped as negative

  // Through a CNAME the implicit MX is where the chain ends, and the alias is noted.
  a.cname_chain = {"real.test"};
  p = plan_mx(a, "example.test", 16, TtlLimits{});
  EXPECT_EQ(hosts_of(p.candidates), "0:real.test");
  ASSERT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(p.notes[0], "example.test is an alias (CNAME) for real.test; followed");
}

TEST(MxPolicy, PlanFailures) {
  TtlLimits l;
  l.temporary_failure_ttl_s = 7;
  Answer nx = mx_answer({}, std::nullopt);
  nx.rcode = Rcode::kNxDomain;
  nx.negative_ttl = 20;
  MxPlan p = plan_mx(nx, "gone.test", 16, l);
  EXPECT_EQ(p.status, MxStatus::kPermanent);
  EXPECT_EQ(p.message, "domain gone.test does not exist (NXDOMAIN)");
  EXPECT_EQ(p.ttl_s, 20u);

  Answer fail = mx_answer({}, std::nullopt);
  fail.rcode = Rcode::kServFail;
  p = plan_mx(fail, "flaky.test", 16, l);
  EXPECT_EQ(p.status, MxStatus::kTemporary);
  EXPECT_EQ(p.message.rfind("MX lookup for flaky.test: ", 0), 0u) << p.message;
  EXPECT_EQ(p.ttl_s, 7u);
  EXPECT_TRUE(p.candidates.empty());
}

HostAddresses host(HostAddresses::State st, uint32_t ttl, std::string msg = {}) {
  HostAddresses h;
  h.state = st;
  h.ttl_s = ttl;
  h.message = std::move(msg);
  if (st == HostAddresses::State::kOk) h.addresses = {IpAddress::v4(kV4a)};
  return h;
}

TEST(MxPolicy, SettleClassifiesWhatTheAddressLookupsFound) {
  using S = HostAddresses::State;
  TtlLimits l;
  l.temporary_failure_ttl_s = 7;
  const std::vector<MailExchanger> two = {{"a.test", 10, {}}, {"b.test", 20, {}}};
  struct Case {
    const char* name;
    std::vector<HostAddresses> hosts;
    bool implicit;
    AddressFamilies fam;
    MxStatus status;
    size_t usable;
    uint32_t ttl;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"all resolve",
       {host(S::kOk, 100), host(S::kOk, 50)},
       false,
       AddressFamilies::kBoth,
       MxStatus::kOk,
       2,
       50,
       ""},
      {"one skipped",
       {host(S::kNone, 30, "A a.test: no record"), host(S::kOk, 100)},
       false,
       AddressFamilies::kBoth,
       MxStatus::kOk,
       1,
       30,
       ""},
      {"a temporary failure wins over none",
       {host(S::kNone, 30, "x"), host(S::kTemporary, 5, "y")},
       false,
       AddressFamilies::kBoth,
       MxStatus::kTemporary,
       0,
       7,
       "no MX host could be resolved: x; y"},
      {"none anywhere is permanent",
       {host(S::kNone, 30, "x"), host(S::kNone, 40, "y")},
       false,
       AddressFamilies::kBoth,
       MxStatus::kPermanent,
       0,
       30,
       "no MX host of example.test has an address: x; y"},
      {"our family restriction is never a bounce",
       {host(S::kNone, 30, "x"), host(S::kNone, 40, "y")},
       false,
       AddressFamilies::kIpv6Only,
       MxStatus::kTemporary,
       0,
       30,
       "no IPv6 address for any MX host: x; y"},
  };
  for (const Case& c : cases) {
    MxResult res;
    res.domain = "example.test";
    res.implicit_mx = c.implicit;
    uint32_t ttl = settle_mx(res, two, c.hosts, 300, c.fam, l);
    EXPECT_EQ(res.status, c.status) << c.name;
    EXPECT_EQ(res.hosts.size(), c.usable) << c.name;
    EXPECT_EQ(ttl, c.ttl) << c.name;
    EXPECT_EQ(res.message, c.message) << c.name;
  }
}

TEST(MxPolicy, SettleImplicitMx) {
  using S = HostAddresses::State;
  TtlLimits l;
  const std::vector<MailExchanger> self = {{"example.test", 0, {}}};
  MxResult res;
  res.domain = "example.test";
  res.implicit_mx = true;
  settle_mx(res, self, {host(S::kNone, 30, "A example.test: NXDOMAIN")}, 60, AddressFamilies::kBoth,
            l);
  EXPECT_EQ(res.status, MxStatus::kPermanent);
  EXPECT_EQ(res.message, "no MX and no address for example.test");
  EXPECT_TRUE(res.notes.empty());  // no "MX host skipped" for the domain itself

  MxResult v4;
  v4.domain = "example.test";
  v4.implicit_mx = true;
  settle_mx(v4, self, {host(S::kNone, 30, "A example.test: no record")}, 60,
            AddressFamilies::kIpv4Only, l);
  EXPECT_EQ(v4.status, MxStatus::kTemporary);
  EXPECT_EQ(v4.message,
            "no IPv4 address for the domain (no MX records): A example.test: no record");

  MxResult ok;
  ok.domain = "example.test";
  ok.implicit_mx = true;
  settle_mx(ok, self, {host(S::kOk, 30)}, 60, AddressFamilies::kBoth, l);
  ASSERT_EQ(ok.status, MxStatus::kOk);
  ASSERT_EQ(ok.hosts.size(), 1u);
  EXPECT_EQ(ok.hosts[0].addresses[0], IpAddress::v4(kV4a));
}

TEST(MxPolicy, ShuffleKeepsPreferenceGroupsAndReachesEveryOrder) {
  std::vector<MailExchanger> base = {{"a", 10, {}}, {"b", 10, {}}, {"c", 10, {}},
                                     {"d", 20, {}}, {"e", 30, {}}, {"f", 30, {}}};
  std::set<std::string> seen_first_group;
  uint64_t seed = 1;
  std::function<uint64_t()> rnd = [&seed] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return seed >> 33;
  };
  for (int i = 0; i < 200; ++i) {
    auto h = base;
    shuffle_equal_preferences(h, rnd);
    std::string first;
    for (size_t k = 0; k < h.size(); ++k) {
      EXPECT_EQ(h[k].preference, base[k].preference);  // groups never mix or move
      if (k < 3) first += h[k].host;
    }
    EXPECT_EQ(h[3].host, "d");
    seen_first_group.insert(first);
  }
  EXPECT_EQ(seen_first_group.size(), 6u);  // all 3! orders of the equal-preference group
}

TEST(MxPolicy, RouteKey) {
  MxResult r;
  r.status = MxStatus::kOk;
  r.domain = "example.test";
  r.hosts = {{"b.test", 20, {IpAddress::v4(kV4b)}}, {"a.test", 10, {}}, {"c.test", 20, {}}};
  EXPECT_EQ(route_key(r), "10:a.test,20:b.test,20:c.test");
  std::swap(r.hosts[0], r.hosts[2]);  // the shuffle does not change the key
  EXPECT_EQ(route_key(r), "10:a.test,20:b.test,20:c.test");
  MxResult implicit = r;
  implicit.implicit_mx = true;
  EXPECT_EQ(route_key(implicit), "implicit:example.test");
  MxResult failed = r;
  failed.status = MxStatus::kTemporary;
  EXPECT_EQ(route_key(failed), "");
}

}  // namespace
}  // namespace sb::dns
