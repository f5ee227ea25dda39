// Returned-mail fixtures in the formats real servers send: parse, match and classify each.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "returns/classify.h"
#include "returns/fields.h"
#include "returns/report.h"
#include "returns/verp.h"

namespace sb {
namespace {

std::string fixture(const std::string& name) {
  std::ifstream f(std::string(SB_RETURNS_FIXTURES) + "/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The keys the fixtures were written with (VERP MACs computed from these).
const MatchKeys kKeys{"0123456789abcdef", "fixture-verp-key"};

struct Case {
  const char* file;
  ReturnKind kind;
  const char* format;
  const char* recipient;  // first reported recipient ("" for none)
  const char* status;
  BounceClass cls;
  const char* category;
  MatchMethod method;
  int64_t id;
  bool forged;
};

const Case kCases[] = {
    {"postfix_user_unknown.eml", ReturnKind::kDsn, "rfc3464", "alice@example.net", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kVerp, 1, false},
    {"exim_mailbox_full.eml", ReturnKind::kDsn, "rfc3464", "bob@example.org", "5.2.2",
     BounceClass::kSoft, "mailbox-full", MatchMethod::kMessageId, 2, false},
    {"m365_recipient_not_found.eml", ReturnKind::kDsn, "rfc3464", "carol@contoso.com", "5.1.10",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kMessageId, 3, false},
    {"gmail_nonexistent.eml", ReturnKind::kDsn, "rfc3464", "dave@gmail.com", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kVerp, 4, false},
    {"yahoo_no_account.eml", ReturnKind::kDsn, "qmail", "erin@yahoo.com", "5.0.0",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kMessageId, 5, false},
    {"qmail_no_mailbox.eml", ReturnKind::kDsn, "qmail", "frank@example.info", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kVerp, 6, false},
    {"arf_complaint.eml", ReturnKind::kArf, "arf", "grace@example.com", "", BounceClass::kComplaint,
     "abuse", MatchMethod::kMessageId, 7, false},
    {"vacation_autoreply.eml", ReturnKind::kAutoReply, "auto-submitted", "", "",
     BounceClass::kAutoReply, "auto-submitted", MatchMethod::kNone, 0, false},
    {"challenge_response.eml", ReturnKind::kAutoReply, "challenge", "", "", BounceClass::kAutoReply,
     "challenge", MatchMethod::kNone, 0, false},
    {"bad_utf8_diagnostic.eml", ReturnKind::kDsn, "rfc3464", "olga@example.net", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kVerp, 9, false},
    {"dsn_truncated_headers.eml", ReturnKind::kDsn, "rfc3464", "judy@example.net", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kVerp, 10, false},
    {"forged_bad_hmac.eml", ReturnKind::kDsn, "rfc3464", "ken@example.com", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kNone, 0, true},
    {"postfix_delayed.eml", ReturnKind::kDsn, "rfc3464", "leo@example.net", "4.4.1",
     BounceClass::kSoft, "temporary", MatchMethod::kVerp, 12, false},
    {"spam_block.eml", ReturnKind::kDsn, "rfc3464", "mallory@example.org", "5.7.1",
     BounceClass::kBlock, "spam-block", MatchMethod::kMessageId, 13, false},
    {"other_task.eml", ReturnKind::kDsn, "rfc3464", "alice@example.net", "5.1.1",
     BounceClass::kHard, "invalid-recipient", MatchMethod::kNone, 0, false},
};

class Fixtures : public ::testing::TestWithParam<Case> {};

TEST_P(Fixtures, ParsesMatchesAndClassifies) {
  const Case& c = GetParam();
  static const Classifier cl = Classifier::create().value();
  ReturnReport r = parse_return(fixture(c.file));
  EXPECT_EQ(return_kind_name(r.kind), std::string(return_kind_name(c.kind))) << r.problem;
  EXPECT_EQ(r.format, c.format);
  if (*c.recipient) {
    ASSERT_FALSE(r.recipients.empty());
    EXPECT_EQ(r.recipients[0].final_recipient, c.recipient);
    EXPECT_EQ(r.recipients[0].status, c.status);
  } else {
    EXPECT_TRUE(r.recipients.empty());
  }
  Classification k = cl.classify(r, 0);
  EXPECT_EQ(class_name(k.cls), std::string(class_name(c.cls)));
  EXPECT_EQ(k.category, c.category);
  Match m = match_return(r, kKeys);
  EXPECT_EQ(match_method_name(m.method), std::string(match_method_name(c.method))) << m.why;
  EXPECT_EQ(m.id, c.id) << m.why;
  EXPECT_EQ(m.forged, c.forged) << m.why;
  for (const auto& rr : r.recipients) {
    for (char ch : rr.diagnostic) EXPECT_GE(static_cast<unsigned char>(ch), 0x20);
    EXPECT_LE(rr.diagnostic.size(), kMaxFieldText);
  }
}

INSTANTIATE_TEST_SUITE_P(Corpus, Fixtures, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.file;
                           n = n.substr(0, n.find('.'));
                           return n;
                         });

TEST(Returns, KeepsOriginalHeadersAndEnvelopeId) {
  ReturnReport r = parse_return(fixture("postfix_user_unknown.eml"));
  EXPECT_EQ(r.original_message_id, "0123456789abcdef.1@example.com");
  ASSERT_EQ(r.original_x_headers.size(), 2u);
  EXPECT_EQ(r.original_x_headers[0].first, "x-mailer");
  EXPECT_EQ(r.original_x_headers[1].second, "march");
  EXPECT_EQ(r.recipients[0].remote_mta, "mx.example.net");
  EXPECT_NE(r.recipients[0].diagnostic.find("User unknown in virtual mailbox table"),
            std::string::npos);
  EXPECT_FALSE(r.truncated);
  ReturnReport d = parse_return(fixture("postfix_delayed.eml"));
  EXPECT_EQ(d.envelope_id, "0123456789abcdef.12");
  EXPECT_EQ(d.recipients[0].action, "delayed");
}

TEST(Returns, TruncatedOriginalHeadersStillMatch) {
  ReturnReport r = parse_return(fixture("dsn_truncated_headers.eml"));
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.original_message_id, "0123456789abcdef.10@example.com");
}

TEST(Returns, InvalidUtf8InDiagnosticBecomesReplacementCharacters) {
  ReturnReport r = parse_return(fixture("bad_utf8_diagnostic.eml"));
  ASSERT_EQ(r.recipients.size(), 1u);
  const std::string& d = r.recipients[0].diagnostic;
  EXPECT_NE(d.find("Benutzer \xEF\xBF\xBD\xEF\xBF\xBD unbekannt"), std::string::npos) << d;
  EXPECT_EQ(d.find('\x1b'), std::string::npos);
}

TEST(Returns, FiftyMegabyteMessageIsReadFromItsPrefix) {
  std::string m = fixture("postfix_user_unknown.eml");
  // Grow the returned original far past the parse limit.
  std::string pad(50u << 20, 'a');
  for (size_t i = 76; i < pad.size(); i += 78) pad[i] = '\n';
  size_t end = m.rfind("--4F1C01E2D3A");
  m.insert(end, pad + "\n");
  ReturnReport r = parse_return(m);
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.kind, ReturnKind::kDsn);
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0].final_recipient, "alice@example.net");
}

TEST(Returns, DeepMimeNestingIsBounded) {
  // 20,000 nested multiparts: GMime must not blow the stack and we stop at kMaxMimeDepth.
  std::string m = "From: x@example.com\nMIME-Version: 1.0\n";
  const int kDepth = 20000;
  for (int i = 0; i < kDepth; ++i) {
    m += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\n\n--b" +
         std::to_string(i) + "\n";
  }
  m += "Content-Type: text/plain\n\nhi\n";
  ReturnReport r = parse_return(m);
  EXPECT_EQ(r.kind, ReturnKind::kUnknown);
  EXPECT_NE(r.problem.find("nesting"), std::string::npos) << r.problem;
}

TEST(Returns, GarbageIsUnknownWithAReason) {
  for (std::string s : {std::string(), std::string("\0\0\0", 3), std::string("hello"),
                        std::string("Subject: hi\n\nbody\n")}) {
    ReturnReport r = parse_return(s);
    EXPECT_EQ(r.kind, ReturnKind::kUnknown);
    EXPECT_FALSE(r.problem.empty());
  }
}

TEST(Fields, GroupsUnfoldAndTolerateCutLines) {
  auto g = split_field_groups("A: 1\r\n  more\r\nB: 2\r\n\r\nC: 3\nbroken line\nD", 10);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(field(g[0], "a"), "1 more");
  EXPECT_EQ(field(g[1], "c"), "3");
  EXPECT_EQ(strip_type("rfc822; <A@B>"), "A@B");
  EXPECT_EQ(leading_status("5.1.10 (x)"), "5.1.10");
  EXPECT_EQ(leading_status("5.1.1234"), "");
  EXPECT_EQ(find_status("said: 550-5.1.1 The"), "5.1.1");
  EXPECT_EQ(find_status("554: delivery error"), "5.0.0");
  EXPECT_EQ(find_status("host 192.0.2.554 said"), "");
}

TEST(Classifier, UserRulesComeFirstAndBadLinesAreNamed) {
  auto c = Classifier::create("soft greylist 5.1.1 try again\n", "my.rules");
  ASSERT_TRUE(c.ok()) << c.error().message;
  RecipientReport rr;
  rr.action = "failed";
  rr.status = "5.1.1";
  rr.diagnostic = "550 5.1.1 please try again";
  Classification k = c->classify(rr);
  EXPECT_EQ(k.cls, BounceClass::kSoft);
  EXPECT_EQ(k.category, "greylist");
  EXPECT_TRUE(k.user_rule);
  rr.diagnostic = "550 5.1.1 gone";
  EXPECT_EQ(c->classify(rr).cls, BounceClass::kHard);

  auto bad = Classifier::create("# c\nfatal x *\n", "my.rules");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "my.rules line 2: class 'fatal' is not hard, soft or block");
  auto bad2 = Classifier::create("hard x 5.1.1 (unclosed\n", "my.rules");
  ASSERT_FALSE(bad2.ok());
  EXPECT_NE(bad2.error().message.find("my.rules line 1: bad regular expression"),
            std::string::npos);
  auto bad3 = Classifier::create("hard x 6.1\n", "my.rules");
  ASSERT_FALSE(bad3.ok());
}

TEST(Classifier, TemporaryCodeNeverHard) {
  auto c = Classifier::create().value();
  EXPECT_EQ(c.classify_reply(450, "4.1.1 user unknown (directory unavailable)").cls,
            BounceClass::kSoft);
  EXPECT_EQ(c.classify_reply(550, "5.1.1 user unknown").category, "invalid-recipient");
  EXPECT_EQ(c.classify_reply(452, "4.2.2 The email account is over quota").category,
            "mailbox-full");
  EXPECT_EQ(
      c.classify_reply(550, "5.7.26 Unauthenticated email is not accepted due to DMARC").category,
      "authentication");
  // The sender's address is refused: nothing to do with the recipient's.
  EXPECT_EQ(c.classify_reply(550, "5.7.1 Sender address rejected: not owned by user").cls,
            BounceClass::kBlock);
  EXPECT_EQ(c.classify_reply(550, "5.0.0 go away").category, "other");  // generic 5xx: hard
  EXPECT_EQ(c.classify_reply(550, "5.0.0 go away").cls, BounceClass::kHard);
}

TEST(Match, EnvelopeIdWhenNoVerp) {
  ReturnReport r;
  r.envelope_id = "0123456789abcdef.77";
  Match m = match_return(r, MatchKeys{"0123456789abcdef", ""});
  EXPECT_EQ(m.method, MatchMethod::kEnvelopeId);
  EXPECT_EQ(m.id, 77);
  // An envelope id that disagrees with the returned Message-ID is not believed over it.
  r.original_message_id = "0123456789abcdef.78@example.com";
  m = match_return(r, MatchKeys{"0123456789abcdef", ""});
  EXPECT_EQ(m.method, MatchMethod::kMessageId);
  EXPECT_EQ(m.id, 78);
  r.envelope_id = "ffffffffffffffff.77";  // another task's
  r.original_message_id.clear();
  EXPECT_EQ(match_return(r, MatchKeys{"0123456789abcdef", ""}).method, MatchMethod::kNone);
}

TEST(Verp, TokenRoundTripsAndCaseIsIgnored) {
  std::string a = expand_return_path("bounces+{{id}}@b.example", "k", "t", 42);
  ReturnReport r;
  r.delivered_to.push_back(a);
  Match m = match_return(r, MatchKeys{"t", "k"});
  EXPECT_EQ(m.method, MatchMethod::kVerp);
  EXPECT_EQ(m.id, 42);
  EXPECT_TRUE(check_return_path("bounces+{{id}}@b.example").ok());
  EXPECT_FALSE(check_return_path("bounces@b.example").ok());
  EXPECT_FALSE(check_return_path("{{id}}").ok());
  EXPECT_FALSE(check_return_path("a {{id}}@b").ok());
  // Another key: the token does not verify.
  Match f = match_return(r, MatchKeys{"t", "other"});
  EXPECT_TRUE(f.forged);
  EXPECT_EQ(f.method, MatchMethod::kNone);
}

}  // namespace
}  // namespace sb
