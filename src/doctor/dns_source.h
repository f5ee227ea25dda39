// Blocking DNS lookups for the doctor's checks: the project's resolver on a loop of its own.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "base/result.h"
#include "dns/answer_parser.h"
#include "dns/resolver.h"

namespace sb {
class Worker;
}

namespace sb::doctor {

// The checks see DNS only through this interface, so each is a function of the answers it
// gets: the tests feed canned answers, the command the resolver's.
class DnsSource {
 public:
  virtual ~DnsSource() = default;
  // An answer (NXDOMAIN and NODATA are answers), or an error when none came (timeout,
  // SERVFAIL). `name` is absolute, with or without the final dot.
  virtual Result<dns::Answer> lookup(const std::string& name, dns::RecordType type) = 0;
};

// c-ares on a libuv loop of its own thread (the Resolver send uses, pointed at the same
// --dns-server), waited for by the calling thread. The doctor's checks, libspf2's among them,
// run on the calling thread and block there; no worker loop of a mailing is ever blocked.
// Answers are cached for the life of the object: SPF and DMARC ask for the same names.
class LoopDns : public DnsSource {
 public:
  static Result<std::unique_ptr<LoopDns>> create(const dns::ResolverConfig& cfg);
  ~LoopDns() override;
  Result<dns::Answer> lookup(const std::string& name, dns::RecordType type) override;
  size_t queries() const { return queries_; }
  // Why the server is taken for dead ("" while it answers): the report's DNS rows then say
  // nothing about the records, only that DNS failed.
  const std::string& dead() const { return dead_; }

 private:
  LoopDns();
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<dns::Resolver> resolver_;  // lives and dies on the worker's loop
  std::map<std::pair<std::string, uint16_t>, Result<dns::Answer>> cache_;
  size_t queries_ = 0;
  // Set when the server did not answer at all (timeout, unreachable): every later lookup fails
  // at once with this reason instead of waiting out its own timeouts, so a dead --dns-server
  // costs one timeout, not one per question.
  std::string dead_;
};

// "192.0.2.1" -> "1.2.0.192.in-addr.arpa"; IPv6 -> the nibble form under ip6.arpa.
std::string reverse_name(const dns::IpAddress& ip);
// Parses a literal IPv4 or IPv6 address.
Result<dns::IpAddress> parse_ip(const std::string& text);

}  // namespace sb::doctor
