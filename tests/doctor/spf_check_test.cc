// SPF check on canned answers: libspf2 evaluates through the same canned DNS.
#include "doctor/spf_check.h"

#include <gtest/gtest.h>

#include "doctor/canned_dns.h"

namespace sb::doctor {
namespace {

using testing::CannedDns;
using testing::ip;

const Row* find_row(const std::vector<Row>& rows, const std::string& subject) {
  for (const Row& r : rows) {
    if (r.subject == subject) return &r;
  }
  return nullptr;
}

TEST(SpfCheck, PassesAnIpTheRecordLists) {
  CannedDns d;
  d.txt("example.com", "v=spf1 ip4:192.0.2.10 include:_spf.example.com -all");
  d.txt("_spf.example.com", "v=spf1 ip4:198.51.100.0/24 -all");
  auto out = check_spf(
      {"bounce@example.com", "mail.example.com", {ip("192.0.2.10"), ip("198.51.100.7")}}, d);
  EXPECT_TRUE(out.pass);
  for (const Row& r : out.rows) EXPECT_EQ(r.verdict, Verdict::kPass) << r.subject << r.evidence;
  const Row* rec = find_row(out.rows, "example.com lookups");
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->evidence.substr(0, 2), "1 ");
}

TEST(SpfCheck, IpNotListedFailsWithTheRecordToPublish) {
  CannedDns d;
  d.txt("example.com", "v=spf1 ip4:192.0.2.10 -all");
  auto out = check_spf({"bounce@example.com", "", {ip("203.0.113.5")}}, d);
  EXPECT_FALSE(out.pass);
  const Row* r = find_row(out.rows, "example.com for 203.0.113.5");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kFail);
  EXPECT_NE(r->evidence.find("fail"), std::string::npos) << r->evidence;
  EXPECT_EQ(r->fix, "example.com. 3600 IN TXT \"v=spf1 ip4:203.0.113.5 ip4:192.0.2.10 -all\"");
}

TEST(SpfCheck, MissingRecord) {
  CannedDns d;
  d.txt("example.com", "google-site-verification=abc");
  auto out = check_spf({"bounce@example.com", "", {ip("192.0.2.10")}}, d);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
  EXPECT_EQ(out.rows[0].fix, "example.com. 3600 IN TXT \"v=spf1 ip4:192.0.2.10 -all\"");
}

TEST(SpfCheck, PlusAllFailsQuestionAllWarns) {
  CannedDns d;
  d.txt("open.example", "v=spf1 ip4:192.0.2.10 +all");
  d.txt("neutral.example", "v=spf1 ip4:192.0.2.10 ?all");
  auto open = check_spf({"a@open.example", "", {ip("192.0.2.10")}}, d);
  const Row* r = find_row(open.rows, "open.example record");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kFail);
  EXPECT_EQ(r->fix, "open.example. 3600 IN TXT \"v=spf1 ip4:192.0.2.10 -all\"");
  EXPECT_FALSE(open.pass);
  auto neutral = check_spf({"a@neutral.example", "", {ip("192.0.2.10")}}, d);
  r = find_row(neutral.rows, "neutral.example record");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kWarn);
  EXPECT_EQ(r->fix, "neutral.example. 3600 IN TXT \"v=spf1 ip4:192.0.2.10 ~all\"");
}

TEST(SpfCheck, MoreThanTenLookupsThroughIncludes) {
  CannedDns d;
  std::string top = "v=spf1 ip4:192.0.2.10";
  for (int i = 0; i < 4; ++i) {
    std::string inc = "i" + std::to_string(i) + ".example.com";
    top += " include:" + inc;
    d.txt(inc, "v=spf1 a:x.example.com mx:y.example.com -all");
  }
  d.txt("example.com", top + " -all");
  auto out = check_spf({"bounce@example.com", "", {ip("192.0.2.10")}}, d);
  const Row* r = find_row(out.rows, "example.com lookups");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kFail);
  EXPECT_EQ(r->evidence.substr(0, 11), "11 or more ");
  EXPECT_FALSE(out.pass);
}

TEST(SpfCheck, TooManyLookupsInOneRecordIsLibspf2Permerror) {
  CannedDns d;
  std::string rec = "v=spf1";
  for (int i = 0; i < 11; ++i) rec += " a:h" + std::to_string(i) + ".example.com";
  d.txt("example.com", rec + " ip4:192.0.2.10 -all");
  auto out = check_spf({"bounce@example.com", "", {ip("192.0.2.10")}}, d);
  const Row* r = find_row(out.rows, "example.com for 192.0.2.10");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kFail) << r->evidence;
  EXPECT_NE(r->evidence.find("permerror"), std::string::npos) << r->evidence;
}

TEST(SpfCheck, LoopbackIsNotEvaluated) {
  CannedDns d;
  d.txt("example.com", "v=spf1 -all");
  auto out = check_spf({"bounce@example.com", "", {ip("127.0.0.1")}}, d);
  const Row* r = find_row(out.rows, "example.com for 127.0.0.1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->verdict, Verdict::kWarn);
  EXPECT_FALSE(out.pass);
}

TEST(SpfCheck, MxMechanismResolvedThroughTheCannedDns) {
  CannedDns d;
  d.txt("example.com", "v=spf1 mx -all");
  d.mx("example.com", 10, "mx.example.com");
  d.a("mx.example.com", "192.0.2.20");
  auto out = check_spf({"bounce@example.com", "", {ip("192.0.2.20")}}, d);
  EXPECT_TRUE(out.pass);
}

}  // namespace
}  // namespace sb::doctor
