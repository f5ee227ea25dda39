// DKIM and DMARC checks on canned answers.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "doctor/canned_dns.h"
#include "doctor/dkim_check.h"
#include "doctor/dmarc_check.h"
#include "doctor/org_domain.h"

namespace sb::doctor {
namespace {

using testing::CannedDns;

const Row* find_row(const std::vector<Row>& rows, const std::string& check) {
  for (const Row& r : rows) {
    if (r.check == check) return &r;
  }
  return nullptr;
}

std::string rsa_public_b64(int bits) {
  EVP_PKEY* k = EVP_RSA_gen(static_cast<unsigned>(bits));
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(k, &der);
  std::string b64(4 * ((n + 2) / 3) + 1, '\0');
  int m = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), der, n);
  b64.resize(static_cast<size_t>(m));
  OPENSSL_free(der);
  EVP_PKEY_free(k);
  return b64;
}

DkimKey key(const std::string& domain, const std::string& p, const std::string& k = "rsa") {
  return {domain, "s1", k == "rsa" ? "rsa-sha256" : "ed25519-sha256",
          "v=DKIM1; k=" + k + "; p=" + p};
}

TEST(OrgDomain, PublicSuffixList) {
  EXPECT_EQ(organizational_domain("news.example.co.uk"), "example.co.uk");
  EXPECT_EQ(organizational_domain("a.b.example.com."), "example.com");
  EXPECT_EQ(organizational_domain("news.orgonly.test"), "orgonly.test");
  EXPECT_TRUE(aligned("bounce.example.com", "example.com", false));
  EXPECT_FALSE(aligned("bounce.example.com", "example.com", true));
  EXPECT_FALSE(aligned("example.net", "example.com", false));
}

TEST(DkimCheck, MatchingKeyPassesAndAligns) {
  CannedDns d;
  d.txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=AAAABBBB CCCC");
  auto out = check_dkim({key("example.com", "AAAABBBBCCCC")}, "example.com", d);
  ASSERT_EQ(out.rows.size(), 2u);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kPass) << out.rows[0].expected;
  EXPECT_EQ(out.rows[1].verdict, Verdict::kPass);
  EXPECT_EQ(out.passing_domains, std::vector<std::string>{"example.com"});
}

TEST(DkimCheck, MissingRecordGivesTheRecordToPublish) {
  CannedDns d;
  auto out = check_dkim({key("example.com", "AAAA")}, "example.com", d);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
  EXPECT_EQ(out.rows[0].fix, "s1._domainkey.example.com. 3600 IN TXT \"v=DKIM1; k=rsa; p=AAAA\"");
  EXPECT_TRUE(out.passing_domains.empty());
}

TEST(DkimCheck, KeyMismatch) {
  CannedDns d;
  d.txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=OTHERKEY");
  auto out = check_dkim({key("example.com", "AAAA")}, "example.com", d);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
  EXPECT_NE(out.rows[0].expected.find("different one"), std::string::npos);
}

TEST(DkimCheck, WrongKeyType) {
  CannedDns d;
  d.txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=AAAA");
  auto out = check_dkim({key("example.com", "AAAA", "ed25519")}, "example.com", d);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
  EXPECT_NE(out.rows[0].expected.find("k=ed25519"), std::string::npos) << out.rows[0].expected;
}

TEST(DkimCheck, RevokedKey) {
  CannedDns d;
  d.txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=");
  auto out = check_dkim({key("example.com", "AAAA")}, "example.com", d);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
  EXPECT_NE(out.rows[0].expected.find("revoked"), std::string::npos);
}

TEST(DkimCheck, ShortRsaKeyWarns) {
  std::string p = rsa_public_b64(1024);
  CannedDns d;
  d.txt("s1._domainkey.example.com", "v=DKIM1; k=rsa; p=" + p);
  auto out = check_dkim({key("example.com", p)}, "example.com", d);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kWarn);
  EXPECT_NE(out.rows[0].expected.find("has 1024"), std::string::npos) << out.rows[0].expected;
}

TEST(DkimCheck, MisalignedDomainFails) {
  CannedDns d;
  d.txt("s1._domainkey.esp.example", "v=DKIM1; k=rsa; p=AAAA");
  auto out = check_dkim({key("esp.example", "AAAA")}, "example.com", d);
  const Row* al = find_row(out.rows, "dkim-alignment");
  ASSERT_NE(al, nullptr);
  EXPECT_EQ(al->verdict, Verdict::kFail);
  EXPECT_NE(al->fix.find("--dkim-domain example.com"), std::string::npos);
}

TEST(DkimCheck, NoKeyFails) {
  CannedDns d;
  auto out = check_dkim({}, "example.com", d);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0].verdict, Verdict::kFail);
}

TEST(DmarcCheck, RecordAtFromDomainAligned) {
  CannedDns d;
  d.txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:r@example.com");
  auto rows = check_dmarc({"example.com", "example.com", true, {"example.com"}}, d);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].verdict, Verdict::kPass);
  EXPECT_NE(rows[0].evidence.find("policy none"), std::string::npos);
  EXPECT_EQ(rows[1].verdict, Verdict::kPass);
}

TEST(DmarcCheck, MissingRecordFailsWithTheRecordToPublish) {
  CannedDns d;
  auto rows = check_dmarc({"news.example.com", "example.com", true, {"example.com"}}, d);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].verdict, Verdict::kFail);
  EXPECT_EQ(rows[0].fix,
            "_dmarc.example.com. 3600 IN TXT \"v=DMARC1; p=none; "
            "rua=mailto:dmarc-reports@example.com\"");
  EXPECT_NE(d.asked.end(), std::find(d.asked.begin(), d.asked.end(), "_dmarc.example.com/TXT"));
}

TEST(DmarcCheck, OrganizationalDomainRecordAppliesWithStrictAlignment) {
  CannedDns d;
  d.txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s");
  auto rows = check_dmarc({"news.example.com", "example.com", true, {"example.com"}}, d);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].verdict, Verdict::kPass);
  EXPECT_NE(rows[0].evidence.find("organizational domain's record applies"), std::string::npos);
  EXPECT_NE(rows[0].evidence.find("policy quarantine"), std::string::npos) << rows[0].evidence;
  EXPECT_EQ(rows[1].verdict, Verdict::kFail);
  EXPECT_NE(rows[1].fix.find("adkim=r"), std::string::npos) << rows[1].fix;
}

TEST(DmarcCheck, RelaxedAlignmentAcceptsSubdomains) {
  CannedDns d;
  d.txt("_dmarc.example.com", "v=DMARC1; p=quarantine");
  auto rows = check_dmarc({"news.example.com", "bounce.example.com", true, {"example.com"}}, d);
  EXPECT_EQ(rows[1].verdict, Verdict::kPass);
}

TEST(DmarcCheck, OnlySpfAlignedWarns) {
  CannedDns d;
  d.txt("_dmarc.example.com", "v=DMARC1; p=none");
  auto rows = check_dmarc({"example.com", "example.com", true, {"esp.example"}}, d);
  EXPECT_EQ(rows[1].verdict, Verdict::kWarn);
}

TEST(DmarcCheck, InvalidPolicyFails) {
  CannedDns d;
  d.txt("_dmarc.example.com", "v=DMARC1; p=maybe");
  auto rows = check_dmarc({"example.com", "example.com", true, {"example.com"}}, d);
  EXPECT_EQ(rows[0].verdict, Verdict::kFail);
}

}  // namespace
}  // namespace sb::doctor
