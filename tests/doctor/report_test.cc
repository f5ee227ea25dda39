// Report formatting, and how the checks treat DNS servers that do not answer.
#include "doctor/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "doctor/canned_dns.h"
#include "doctor/dmarc_check.h"
#include "doctor/mx_check.h"
#include "doctor/rdns_check.h"
#include "doctor/spf_check.h"

namespace sb::doctor {
namespace {

using testing::CannedDns;
using testing::ip;

TEST(Report, TextShowsFixOnlyForWarnAndFail) {
  Report r;
  r.add(Row{"spf", "a.example", Verdict::kPass, "v=spf1 -all", "one record", "unused fix"});
  r.add(Row{"dmarc", "a.example", Verdict::kFail, "none", "v=DMARC1", "line1\nline2"});
  EXPECT_EQ(r.text(),
            "PASS   spf a.example\n"
            "       found:    v=spf1 -all\n"
            "       expected: one record\n"
            "FAIL   dmarc a.example\n"
            "       found:    none\n"
            "       expected: v=DMARC1\n"
            "       fix:      line1\n"
            "         line2\n"
            "1 passed, 0 warnings, 1 failed\n");
  EXPECT_EQ(r.exit_code(), 1);
  auto j = nlohmann::json::parse(r.json());
  EXPECT_EQ(j["fail"], 1);
  EXPECT_EQ(j["rows"][0]["fix"], "");
  EXPECT_EQ(j["rows"][1]["verdict"], "FAIL");
  EXPECT_EQ(j["rows"][1]["fix"], "line1\nline2");
}

TEST(Report, JsonSurvivesInvalidUtf8FromDns) {
  Report r;
  r.add(Row{"dkim", "x", Verdict::kFail, std::string("bad \xff byte"), "", ""});
  EXPECT_NO_THROW(nlohmann::json::parse(r.json()));
  EXPECT_EQ(r.exit_code(), 1);
}

TEST(ZoneTxt, SplitsAt255) {
  std::string v(300, 'a');
  EXPECT_EQ(zone_txt("n.example", v), "n.example. 3600 IN TXT \"" + std::string(255, 'a') +
                                          "\" \"" + std::string(45, 'a') + "\"");
}

TEST(DnsFailures, ServfailIsAFailNamingTheAnswer) {
  CannedDns d;
  d.servfail["example.com"] = 1;
  d.servfail["_dmarc.example.com"] = 1;
  d.servfail["10.2.0.192.in-addr.arpa"] = 1;
  auto spf = check_spf({"a@example.com", "", {ip("192.0.2.10")}}, d);
  ASSERT_EQ(spf.rows.size(), 1u);
  EXPECT_EQ(spf.rows[0].verdict, Verdict::kFail);
  EXPECT_NE(spf.rows[0].evidence.find("SERVFAIL from every server"), std::string::npos);
  auto dm = check_dmarc({"example.com", "example.com", false, {}}, d);
  EXPECT_EQ(dm[0].verdict, Verdict::kFail);
  EXPECT_NE(dm[0].evidence.find("no DNS answer"), std::string::npos);
  EXPECT_EQ(check_accepts_mail("example.com", "From", d).verdict, Verdict::kFail);
  auto rd = check_reverse_dns({ip("192.0.2.10")}, "", d);
  EXPECT_EQ(rd[0].verdict, Verdict::kFail);
  EXPECT_NE(rd[0].evidence.find("no DNS answer for PTR"), std::string::npos);
}

TEST(SpfIpv6, EvaluatedAndFixedWithIp6) {
  CannedDns d;
  d.txt("example.com", "v=spf1 ip6:2001:db8::/64 -all");
  auto ok = check_spf({"a@example.com", "", {ip("2001:db8::25")}}, d);
  EXPECT_TRUE(ok.pass);
  auto bad = check_spf({"a@example.com", "", {ip("2001:db8:1::25")}}, d);
  EXPECT_FALSE(bad.pass);
  EXPECT_EQ(bad.rows.back().fix,
            "example.com. 3600 IN TXT \"v=spf1 ip6:2001:db8:1::25 ip6:2001:db8::/64 -all\"");
}

}  // namespace
}  // namespace sb::doctor
