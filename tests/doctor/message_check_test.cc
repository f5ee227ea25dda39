// Message and recipient-list checks on fixed inputs.
#include "doctor/message_check.h"

#include <gtest/gtest.h>

#include "doctor/canned_dns.h"
#include "doctor/starttls_check.h"

namespace sb::doctor {
namespace {

using testing::CannedDns;

const Row& row(const std::vector<Row>& rows, const std::string& check) {
  for (const Row& r : rows) {
    if (r.check == check) return r;
  }
  static Row none{"missing"};
  return none;
}

const char kSigned[] =
    "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1;\r\n"
    "\th=From:To:Subject:Date:Message-ID:List-Unsubscribe:List-Unsubscribe-Post; b=xyz\r\n"
    "From: News <news@example.com>\r\n"
    "To: a@b.example\r\n"
    "Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "List-Unsubscribe: <https://example.com/u/abc>\r\n"
    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    "\r\n"
    "Hello\r\n";

TEST(MessageCheck, SignedOneClickMessagePasses) {
  auto rows = check_message(kSigned, "From: News <news@example.com>\r\n\r\nHello\r\n");
  for (const Row& r : rows) EXPECT_EQ(r.verdict, Verdict::kPass) << r.check << ": " << r.evidence;
  EXPECT_NE(row(rows, "date").evidence.find("added by smtpblast"), std::string::npos);
  EXPECT_NE(row(rows, "list-unsubscribe").evidence.find("signed"), std::string::npos);
}

TEST(MessageCheck, UnsignedUnsubscribeFails) {
  std::string msg = std::string(kSigned).substr(std::string(kSigned).find("From:"));
  auto rows = check_message(msg, msg);
  EXPECT_EQ(row(rows, "list-unsubscribe").verdict, Verdict::kFail);
  EXPECT_NE(row(rows, "list-unsubscribe").fix.find("--dkim-key"), std::string::npos);
}

TEST(MessageCheck, MissingHeadersAndLongLine) {
  std::string msg =
      "From: a@example.com, b@example.com\r\nSubject: x\r\n\r\n" + std::string(1000, 'x') + "\r\n";
  auto rows = check_message(msg, msg);
  EXPECT_EQ(row(rows, "from").verdict, Verdict::kFail);
  EXPECT_EQ(row(rows, "message-id").verdict, Verdict::kFail);
  EXPECT_EQ(row(rows, "date").verdict, Verdict::kFail);
  EXPECT_EQ(row(rows, "list-unsubscribe").verdict, Verdict::kFail);
  EXPECT_NE(row(rows, "list-unsubscribe").fix.find("--unsubscribe-url"), std::string::npos);
  EXPECT_EQ(row(rows, "line-length").verdict, Verdict::kFail);
  EXPECT_NE(row(rows, "line-length").evidence.find("longest line 1000 octets (line 4)"),
            std::string::npos)
      << row(rows, "line-length").evidence;
}

TEST(MessageCheck, FromAddresses) {
  EXPECT_EQ(from_addresses("\"Doe, John\" <j@example.com>"),
            std::vector<std::string>{"j@example.com"});
  EXPECT_EQ(from_addresses("a@x.example (comment, here)").size(), 1u);
  EXPECT_EQ(from_addresses("a@x.example, <b@y.example>").size(), 2u);
  EXPECT_FALSE(valid_address("no-at-sign"));
  EXPECT_FALSE(valid_address("a@localhost"));
  EXPECT_TRUE(valid_address("a@example.com"));
}

TEST(Recipients, ShareByDomainAndByMx) {
  CannedDns d;
  d.mx("corp.example", 1, "corp-example.mail.protection.outlook.com");
  d.mx("small.example", 10, "mx.small.example");
  std::vector<std::string> emails = {"a@gmail.com",    "b@GMAIL.com",     "c@yahoo.co.uk",
                                     "d@corp.example", "e@small.example", "f@hotmail.fr"};
  ProviderShare s;
  DomainCounts counts;
  for (const std::string& e : emails) count_recipient(counts, e);
  count_recipient(counts, "no-domain");
  EXPECT_EQ(domains_by_count(counts).front(), "gmail.com");
  Row r = check_recipients(counts, d, 20, &s);
  EXPECT_EQ(s.total, 6u);
  EXPECT_EQ(s.by_provider["Gmail/Google"], 2u);
  EXPECT_EQ(s.by_provider["Yahoo/AOL"], 1u);
  EXPECT_EQ(s.by_provider["Microsoft"], 2u);
  EXPECT_EQ(r.verdict, Verdict::kPass);
  EXPECT_EQ(r.evidence.substr(0, 35), "5 of 6 recipients (83.3%) at Gmail,");
}

TEST(Starttls, EhloKeywords) {
  auto k =
      ehlo_keywords("250-mx.example Hello\r\n250-PIPELINING\r\n250-starttls\r\n250 SIZE 1000\r\n");
  EXPECT_EQ(k, (std::vector<std::string>{"PIPELINING", "STARTTLS", "SIZE"}));
  Row r = starttls_row("relay", std::string("250-x\r\n250 PIPELINING\r\n"));
  EXPECT_EQ(r.verdict, Verdict::kFail);
  EXPECT_EQ(starttls_row("relay", std::string("250-x\r\n250 STARTTLS\r\n")).verdict,
            Verdict::kPass);
}

}  // namespace
}  // namespace sb::doctor
