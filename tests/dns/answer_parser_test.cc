// Table-driven tests of the DNS answer parser: packets built with ldns, captured from dnsmasq,
// and cut or corrupted by hand.
#include "dns/answer_parser.h"

#include <cstring>

#include <gtest/gtest.h>

#include "dns/dns_test_util.h"

namespace sb::dns {
namespace {

using testing::build_answer;
using testing::from_hex;

// Real answers captured from dnsmasq 2.90 (name compression, additional section).
const char* kDnsmasqOneMx =
    "123485800001000100000002036f6e65047465737400000f0001c00c000f00010000003c0010000a036d7831"
    "036f6e65047465737400c028000100010000003c00047f000002c028001c00010000003c00100000000000000"
    "0000000000000000002";
const char* kDnsmasqNullMx =
    "123485800001000100000000066e756c6c6d78047465737400000f0001c00c000f0001000000000003000000";
const char* kDnsmasqCnameA =
    "12348580000100020000000005616c69617302636e04746573740000010001c00c0005000100000000000e0472"
    "65616c02636e047465737400c02b000100010000000000047f000004";
const char* kDnsmasqNxdomain = "123481830001000000000000026e78047465737400000f0001";

TEST(AnswerParser, DnsmasqOneMx) {
  auto w = from_hex(kDnsmasqOneMx);
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->qname, "one.test");
  EXPECT_EQ(r->qtype, 15);
  ASSERT_EQ(r->mx.size(), 1u);
  EXPECT_EQ(r->mx[0], (MxRecord{10, "mx1.one.test"}));
  EXPECT_TRUE(r->addresses.empty());  // the additional section is not taken
  EXPECT_EQ(r->min_ttl, 60u);
  EXPECT_FALSE(r->no_data());
}

TEST(AnswerParser, DnsmasqNullMx) {
  auto w = from_hex(kDnsmasqNullMx);
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->mx.size(), 1u);
  EXPECT_TRUE(r->mx[0].is_null());
  EXPECT_EQ(r->mx[0].preference, 0);
}

TEST(AnswerParser, DnsmasqCnameChain) {
  auto w = from_hex(kDnsmasqCnameA);
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cname_chain, std::vector<std::string>{"real.cn.test"});
  EXPECT_EQ(r->canonical_name(), "real.cn.test");
  ASSERT_EQ(r->addresses.size(), 1u);
  EXPECT_EQ(r->addresses[0].to_string(), "127.0.0.4");
  EXPECT_EQ(r->min_ttl, 0u);
}

TEST(AnswerParser, DnsmasqNxdomain) {
  auto w = from_hex(kDnsmasqNxdomain);
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->rcode, Rcode::kNxDomain);
  EXPECT_FALSE(r->min_ttl.has_value());
  EXPECT_FALSE(r->negative_ttl.has_value());
}

struct Case {
  const char* name;
  std::string qname;
  RecordType qtype;
  int rcode;
  std::vector<std::string> answer;
  std::vector<std::string> authority;
  // expectations
  Rcode want_rcode;
  std::vector<MxRecord> want_mx;
  std::vector<std::string> want_addrs;
  std::vector<std::string> want_chain;
  std::vector<std::string> want_txt;
  std::optional<uint32_t> want_min_ttl;
  std::optional<uint32_t> want_neg_ttl;
  bool want_no_data;
};

const char* kSoa =
    "example.com. 900 IN SOA ns.example.com. host.example.com. 1 7200 3600 1209600 300";

std::vector<Case> cases() {
  return {
      {"several_mx",
       "example.com.",
       RecordType::kMx,
       0,
       {"example.com. 300 IN MX 20 b.Example.com.", "example.com. 100 IN MX 10 a.example.com.",
        "example.com. 300 IN MX 10 c.example.com."},
       {},
       Rcode::kNoError,
       {{20, "b.example.com"}, {10, "a.example.com"}, {10, "c.example.com"}},
       {},
       {},
       {},
       100u,
       std::nullopt,
       false},
      {"null_mx",
       "nomail.example.",
       RecordType::kMx,
       0,
       {"nomail.example. 60 IN MX 0 ."},
       {},
       Rcode::kNoError,
       {{0, "."}},
       {},
       {},
       {},
       60u,
       std::nullopt,
       false},
      {"a_and_aaaa",
       "h.example.",
       RecordType::kA,
       0,
       {"h.example. 30 IN A 192.0.2.1", "h.example. 40 IN A 192.0.2.2",
        "h.example. 10 IN AAAA 2001:db8::1"},
       {},
       Rcode::kNoError,
       {},
       {"192.0.2.1", "192.0.2.2", "2001:db8::1"},
       {},
       {},
       10u,
       std::nullopt,
       false},
      {"cname_chain_to_mx",
       "alias.example.",
       RecordType::kMx,
       0,
       {"alias.example. 50 IN CNAME mid.example.", "mid.example. 40 IN CNAME real.example.",
        "real.example. 300 IN MX 5 mx.real.example."},
       {},
       Rcode::kNoError,
       {{5, "mx.real.example"}},
       {},
       {"mid.example", "real.example"},
       {},
       40u,
       std::nullopt,
       false},
      {"stray_records_ignored",
       "a.example.",
       RecordType::kA,
       0,
       {"a.example. 60 IN A 192.0.2.9", "evil.example. 5 IN A 203.0.113.66",
        "a.example. 60 IN MX 1 x.example."},
       {},
       Rcode::kNoError,
       {{1, "x.example"}},
       {"192.0.2.9"},
       {},
       {},
       60u,
       std::nullopt,
       false},
      {"nxdomain_with_soa",
       "gone.example.com.",
       RecordType::kMx,
       3,
       {},
       {kSoa},
       Rcode::kNxDomain,
       {},
       {},
       {},
       {},
       std::nullopt,
       300u,
       false},
      {"nodata_with_soa_ttl_smaller",
       "example.com.",
       RecordType::kMx,
       0,
       {},
       {"example.com. 120 IN SOA ns.example.com. h.example.com. 1 7200 3600 1209600 300"},
       Rcode::kNoError,
       {},
       {},
       {},
       {},
       std::nullopt,
       120u,
       true},
      {"servfail",
       "x.example.",
       RecordType::kMx,
       2,
       {},
       {},
       Rcode::kServFail,
       {},
       {},
       {},
       {},
       std::nullopt,
       std::nullopt,
       false},
      {"refused",
       "x.example.",
       RecordType::kA,
       5,
       {},
       {},
       Rcode::kRefused,
       {},
       {},
       {},
       {},
       std::nullopt,
       std::nullopt,
       false},
      {"txt_joined",
       "t.example.",
       RecordType::kTxt,
       0,
       {"t.example. 60 IN TXT \"v=spf1 \" \"-all\"", "t.example. 60 IN TXT \"second\""},
       {},
       Rcode::kNoError,
       {},
       {},
       {},
       {"v=spf1 -all", "second"},
       60u,
       std::nullopt,
       false},
      {"ttl_top_bit_is_zero",
       "h.example.",
       RecordType::kA,
       0,
       {"h.example. 2147483648 IN A 192.0.2.1"},
       {},
       Rcode::kNoError,
       {},
       {"192.0.2.1"},
       {},
       {},
       0u,
       std::nullopt,
       false},
  };
}

class AnswerParserTable : public ::testing::TestWithParam<Case> {};

TEST_P(AnswerParserTable, Parses) {
  const Case& c = GetParam();
  auto w = build_answer(c.qname, static_cast<uint16_t>(c.qtype), c.rcode, c.answer, c.authority);
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok()) << r.error().describe();
  EXPECT_EQ(r->rcode, c.want_rcode);
  EXPECT_EQ(r->qname, normalise_name(c.qname));
  EXPECT_EQ(r->mx, c.want_mx);
  std::vector<std::string> addrs;
  for (const auto& a : r->addresses) addrs.push_back(a.to_string());
  EXPECT_EQ(addrs, c.want_addrs);
  EXPECT_EQ(r->cname_chain, c.want_chain);
  EXPECT_EQ(r->txt, c.want_txt);
  EXPECT_EQ(r->min_ttl, c.want_min_ttl);
  EXPECT_EQ(r->negative_ttl, c.want_neg_ttl);
  EXPECT_EQ(r->no_data(), c.want_no_data);
}

INSTANTIATE_TEST_SUITE_P(Table, AnswerParserTable, ::testing::ValuesIn(cases()),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(AnswerParser, Tlsa) {
  auto w = build_answer("_25._tcp.mx.example.", 52, 0,
                        {"_25._tcp.mx.example. 300 IN TLSA 3 1 1 "
                         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"});
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->tlsa.size(), 1u);
  EXPECT_EQ(r->tlsa[0].usage, 3);
  EXPECT_EQ(r->tlsa[0].selector, 1);
  EXPECT_EQ(r->tlsa[0].matching_type, 1);
  ASSERT_EQ(r->tlsa[0].data.size(), 32u);
  EXPECT_EQ(r->tlsa[0].data[0], 0x01);
  EXPECT_EQ(r->tlsa[0].data[31], 0xef);
}

TEST(AnswerParser, Ptr) {
  auto w = build_answer("10.2.0.192.in-addr.arpa.", 12, 0,
                        {"10.2.0.192.in-addr.arpa. 300 IN PTR Mail.Example.COM."});
  auto r = parse_answer(w.data(), w.size());
  ASSERT_TRUE(r.ok()) << r.error().describe();
  ASSERT_EQ(r->ptr.size(), 1u);
  EXPECT_EQ(r->ptr[0], "mail.example.com");
  EXPECT_FALSE(r->no_data());
}

TEST(AnswerParser, CnameLoopIsAnError) {
  auto w = build_answer("a.example.", 1, 0,
                        {"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."});
  auto r = parse_answer(w.data(), w.size());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("CNAME loop"), std::string::npos);
}

TEST(AnswerParser, QueryIsNotAnAnswer) {
  auto w = build_answer("a.example.", 1, 0, {});
  w[2] &= 0x7f;  // clear QR
  EXPECT_FALSE(parse_answer(w.data(), w.size()).ok());
}

// Every prefix of a real answer that is shorter than the whole must fail cleanly.
TEST(AnswerParser, EveryTruncationFails) {
  auto w = from_hex(kDnsmasqOneMx);
  size_t ok_prefixes = 0;
  for (size_t n = 0; n < w.size(); ++n) {
    auto r = parse_answer(w.data(), n);
    ok_prefixes += r.ok();
  }
  EXPECT_EQ(ok_prefixes, 0u);
  EXPECT_FALSE(parse_answer(nullptr, 0).ok());
}

struct Malformed {
  const char* name;
  std::string hex;
};

class AnswerParserMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(AnswerParserMalformed, IsAnError) {
  auto w = from_hex(GetParam().hex);
  auto r = parse_answer(w.data(), w.size());
  EXPECT_FALSE(r.ok());
}

INSTANTIATE_TEST_SUITE_P(
    Table, AnswerParserMalformed,
    ::testing::Values(
        // Header says one answer, none follows.
        Malformed{"missing_answer", "1234818000010001000000000161047465737400000f0001"},
        // Compression pointer to itself (loop).
        Malformed{"pointer_loop", "123481800001000100000000c00c000f0001c00c000f000100000000000400"},
        // MX rdata shorter than its rdlength claims.
        Malformed{"mx_rdlength_too_long",
                  "12348180000100010000000001610474657374000"
                  "00f0001c00c000f00010000003c0010000a"},
        // A record with rdlength 3.
        Malformed{"a_record_three_bytes",
                  "12348180000100010000000001610474657374000"
                  "0010001c00c000100010000003c00037f0000"},
        // Label length 0x40 (reserved label type).
        Malformed{"bad_label_type", "1234818000010000000000004061000f0001"},
        // No question.
        Malformed{"no_question", "123481800000000000000000"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(AnswerParser, NormaliseName) {
  EXPECT_EQ(normalise_name("MX.Example.COM."), "mx.example.com");
  EXPECT_EQ(normalise_name("."), ".");
  EXPECT_EQ(normalise_name(""), ".");
}

}  // namespace
}  // namespace sb::dns

namespace sb::dns {
namespace {

TEST(IpAddressTest, ToSockaddrKeepsFamilyAddressAndPort) {
  const uint8_t v4[4] = {127, 0, 0, 2};
  sockaddr_storage ss{};
  IpAddress::v4(v4).to_sockaddr(2525, ss);
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  ASSERT_EQ(a->sin_family, AF_INET);
  EXPECT_EQ(ntohs(a->sin_port), 2525);
  EXPECT_EQ(std::memcmp(&a->sin_addr, v4, 4), 0);

  uint8_t v6[16] = {};
  v6[15] = 1;  // ::1
  IpAddress::v6(v6).to_sockaddr(25, ss);
  const auto* b = reinterpret_cast<const sockaddr_in6*>(&ss);
  ASSERT_EQ(b->sin6_family, AF_INET6);
  EXPECT_EQ(ntohs(b->sin6_port), 25);
  EXPECT_EQ(std::memcmp(&b->sin6_addr, v6, 16), 0);
}

}  // namespace
}  // namespace sb::dns
