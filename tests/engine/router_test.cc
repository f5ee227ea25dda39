// The --direct router: queue here, hand over, look up; the cache's expiry; A-labels.
#include "engine/router.h"

#include <gtest/gtest.h>

#include "engine/job.h"

namespace sb {
namespace {

dns::MxResult answer(const std::string& domain, const std::string& host, uint64_t expires) {
  dns::MxResult r;
  r.status = dns::MxStatus::kOk;
  r.domain = domain;
  dns::MailExchanger mx;
  mx.host = host;
  mx.preference = 10;
  r.hosts.push_back(mx);
  r.expires_ms = expires;
  return r;
}

TEST(Router, LooksUpFirstThenQueuesHereUntilTheAnswerExpires) {
  Router r;
  auto* dest = reinterpret_cast<Destination*>(0x1000);
  EXPECT_EQ(r.route("a.example", 100).kind, RouteDecision::Kind::kLookup);
  r.learn_here("a.example", dest, "", 5000);
  RouteDecision d = r.route("a.example", 4999);
  EXPECT_EQ(d.kind, RouteDecision::Kind::kQueueHere);
  EXPECT_EQ(d.dest, dest);
  EXPECT_EQ(d.alabel, nullptr);
  EXPECT_EQ(r.route("a.example", 5000).kind, RouteDecision::Kind::kLookup);  // expired
  EXPECT_EQ(r.cached(), 0u);
}

TEST(Router, HandsOverToTheOwnerWithTheAnswer) {
  Router r;
  auto mx = std::make_shared<const dns::MxResult>(answer("b.example", "mx.b.example", 900));
  r.learn_elsewhere("b.example", 3, mx, 900);
  RouteDecision d = r.route("b.example", 10);
  EXPECT_EQ(d.kind, RouteDecision::Kind::kHandOver);
  EXPECT_EQ(d.owner, 3u);
  EXPECT_EQ(d.mx, mx);
}

TEST(Router, UncachedAnswersAreNotRemembered) {
  Router r;
  r.learn_here("c.example", reinterpret_cast<Destination*>(0x1), "", 0);
  EXPECT_EQ(r.route("c.example", 1).kind, RouteDecision::Kind::kLookup);
}

TEST(Router, OneLookupPerDomainWhateverTheNumberOfWaiters) {
  Router r;
  Job a, b, c;
  EXPECT_TRUE(r.wait_for_lookup("d.example", &a));
  EXPECT_FALSE(r.wait_for_lookup("d.example", &b));
  EXPECT_TRUE(r.wait_for_lookup("e.example", &c));
  EXPECT_TRUE(r.lookups_pending());
  std::vector<Job*> got;
  ASSERT_TRUE(r.take_waiting("d.example", got));
  EXPECT_EQ(got.size(), 2u);
  EXPECT_FALSE(r.take_waiting("d.example", got));  // answered (or dropped) already
  std::vector<Job*> rest;
  r.take_all_waiting(rest);
  EXPECT_EQ(rest.size(), 1u);
  EXPECT_FALSE(r.lookups_pending());
}

TEST(ResolveRoute, OwnerIsStableAndIdnDomainsGetTheirALabel) {
  dns::MxResult r = answer("xn--bcher-kva.example", "mx.example", 1);
  ResolvedRoute a = resolve_route(
      "b\xc3\xbc"
      "cher.example",
      r, 0, 4);
  ResolvedRoute b = resolve_route("other.example", r, 0, 4);
  EXPECT_EQ(a.key, b.key);  // one MX set: one destination, one owner
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.owner, owner_of_route(a.key, 4));
  EXPECT_EQ(a.here, a.owner == 0);
  EXPECT_EQ(a.alabel, "xn--bcher-kva.example");
  EXPECT_EQ(b.alabel, "");
  EXPECT_EQ(with_domain("user@b\xc3\xbc"
                        "cher.example",
                        a.alabel),
            "user@xn--bcher-kva.example");
}

}  // namespace
}  // namespace sb
