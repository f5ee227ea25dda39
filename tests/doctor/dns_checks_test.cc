// Reverse DNS, MX and MTA-STS/TLS-RPT checks on canned answers.
#include <gtest/gtest.h>

#include "doctor/canned_dns.h"
#include "doctor/mta_sts_check.h"
#include "doctor/mx_check.h"
#include "doctor/rdns_check.h"

namespace sb::doctor {
namespace {

using testing::CannedDns;
using testing::ip;

TEST(ReverseName, V4AndV6) {
  EXPECT_EQ(reverse_name(ip("192.0.2.10")), "10.2.0.192.in-addr.arpa");
  EXPECT_EQ(reverse_name(ip("2001:db8::1")),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
}

TEST(ReverseDns, ForwardConfirmedAndHelo) {
  CannedDns d;
  d.ptr("192.0.2.10", "mail.example.com");
  d.a("mail.example.com", "192.0.2.10");
  auto rows = check_reverse_dns({ip("192.0.2.10")}, "mail.example.com", d);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].verdict, Verdict::kPass) << rows[0].evidence;
  EXPECT_EQ(rows[0].evidence, "192.0.2.10 -> PTR mail.example.com -> 192.0.2.10");
  EXPECT_EQ(rows[1].verdict, Verdict::kPass);
}

TEST(ReverseDns, PtrNameResolvesElsewhere) {
  CannedDns d;
  d.ptr("192.0.2.10", "host.example.net");
  d.a("host.example.net", "192.0.2.99");
  d.a("mail.example.com", "192.0.2.10");
  auto rows = check_reverse_dns({ip("192.0.2.10")}, "mail.example.com", d);
  EXPECT_EQ(rows[0].verdict, Verdict::kFail);
  EXPECT_EQ(rows[0].fix.substr(0, rows[0].fix.find('\n')),
            "host.example.net. 3600 IN A 192.0.2.10");
  EXPECT_EQ(rows[1].verdict, Verdict::kPass);
}

TEST(ReverseDns, NoPtrAndHeloMismatch) {
  CannedDns d;
  d.a("mail.example.com", "192.0.2.11");
  auto rows = check_reverse_dns({ip("192.0.2.10")}, "mail.example.com", d);
  EXPECT_EQ(rows[0].verdict, Verdict::kFail);
  EXPECT_EQ(rows[0].fix.substr(0, rows[0].fix.find("  (")),
            "10.2.0.192.in-addr.arpa. 3600 IN PTR mail.example.com.");
  EXPECT_EQ(rows[1].verdict, Verdict::kFail);
  EXPECT_EQ(rows[1].fix, "mail.example.com. 3600 IN A 192.0.2.10");
}

TEST(AcceptsMail, MxImplicitNullAndMissing) {
  CannedDns d;
  d.mx("mx.example", 10, "in.mx.example");
  d.a("implicit.example", "192.0.2.5");
  d.mx("null.example", 0, ".");
  EXPECT_EQ(check_accepts_mail("mx.example", "From", d).verdict, Verdict::kPass);
  Row implicit = check_accepts_mail("implicit.example", "From", d);
  EXPECT_EQ(implicit.verdict, Verdict::kPass);
  EXPECT_NE(implicit.evidence.find("implicit MX"), std::string::npos);
  Row n = check_accepts_mail("null.example", "From", d);
  EXPECT_EQ(n.verdict, Verdict::kFail);
  EXPECT_NE(n.evidence.find("null MX"), std::string::npos);
  EXPECT_EQ(n.fix, "replace the null MX:\nnull.example. 3600 IN MX 10 mail.null.example.");
  EXPECT_EQ(check_accepts_mail("gone.example", "return-path", d).verdict, Verdict::kFail);
}

TEST(MtaSts, PresentAndAbsent) {
  CannedDns d;
  d.txt("_mta-sts.good.example", "v=STSv1; id=2024");
  d.txt("_smtp._tls.good.example", "v=TLSRPTv1; rua=mailto:t@good.example");
  auto good = check_mta_sts("good.example", d);
  ASSERT_EQ(good.size(), 2u);
  EXPECT_EQ(good[0].verdict, Verdict::kPass);
  EXPECT_EQ(good[1].verdict, Verdict::kPass);
  auto bad = check_mta_sts("bad.example", d);
  EXPECT_EQ(bad[0].verdict, Verdict::kWarn);
  EXPECT_EQ(bad[0].fix.substr(0, bad[0].fix.find('\n')),
            "_mta-sts.bad.example. 3600 IN TXT \"v=STSv1; id=20240101000000\"");
  EXPECT_EQ(bad[1].verdict, Verdict::kWarn);
  EXPECT_EQ(
      bad[1].fix,
      "_smtp._tls.bad.example. 3600 IN TXT \"v=TLSRPTv1; rua=mailto:tls-reports@bad.example\"");
}

}  // namespace
}  // namespace sb::doctor
