// LoopDns: the project's resolver on its own loop, against a real dnsmasq on loopback.
#include <gtest/gtest.h>

#include "dns/dns_test_util.h"
#include "doctor/dns_source.h"
#include "doctor/spf_check.h"

namespace sb::doctor {
namespace {

const char kZone[] =
    "local=/test/\n"
    "local=/2.0.192.in-addr.arpa/\n"
    "txt-record=loop.test,\"v=spf1 a:mail.loop.test -all\"\n"
    "host-record=mail.loop.test,192.0.2.10\n"
    "ptr-record=30.2.0.192.in-addr.arpa,other.loop.test\n";

TEST(LoopDns, TxtPtrAndACachedPerQuestion) {
  dns::testing::Dnsmasq server(kZone);
  ASSERT_TRUE(server.running()) << "dnsmasq did not start";
  dns::ResolverConfig cfg;
  cfg.servers = {server.address()};
  auto d = LoopDns::create(cfg);
  ASSERT_TRUE(d.ok()) << d.error().message;
  LoopDns& dns = **d;

  auto txt = dns.lookup("loop.test", dns::RecordType::kTxt);
  ASSERT_TRUE(txt.ok()) << txt.error().message;
  EXPECT_EQ(txt->txt, std::vector<std::string>{"v=spf1 a:mail.loop.test -all"});
  auto ptr = dns.lookup("30.2.0.192.in-addr.arpa", dns::RecordType::kPtr);
  ASSERT_TRUE(ptr.ok()) << ptr.error().message;
  EXPECT_EQ(ptr->ptr, std::vector<std::string>{"other.loop.test"});
  auto nx = dns.lookup("missing.loop.test", dns::RecordType::kTxt);
  ASSERT_TRUE(nx.ok());
  EXPECT_EQ(nx->rcode, dns::Rcode::kNxDomain);

  // libspf2 asks through the same resolver: the a: mechanism resolves mail.loop.test.
  auto spf = check_spf({"x@loop.test", "", {parse_ip("192.0.2.10").value()}}, dns);
  EXPECT_TRUE(spf.pass) << spf.rows.back().evidence;
  size_t asked = dns.queries();
  (void)dns.lookup("loop.test", dns::RecordType::kTxt);
  EXPECT_EQ(dns.queries(), asked);  // answered from the cache
  EXPECT_EQ(server.logged_queries("TXT", "loop.test"), 1);
  EXPECT_EQ(server.logged_queries("A", "mail.loop.test"), 1);
  EXPECT_TRUE(dns.dead().empty());
}

}  // namespace
}  // namespace sb::doctor
