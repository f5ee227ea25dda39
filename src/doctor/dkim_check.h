// DKIM check: each signing key's published TXT record against the key, and d= alignment.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

struct DkimKey {
  std::string domain, selector;
  std::string algorithm;        // "rsa-sha256" or "ed25519-sha256"
  std::string expected_record;  // what smtpblast dkim-record prints: "v=DKIM1; k=rsa; p=..."
};

struct DkimOutcome {
  std::vector<Row> rows;
  std::vector<std::string> passing_domains;  // d= of each key whose record matches
};

// Tag=value list of a DKIM or DMARC record (RFC 6376 §3.2): names lower-cased, values with
// surrounding white space removed. A later duplicate does not replace the first.
std::map<std::string, std::string> parse_tags(const std::string& record);

// For each key: the selector's record exists, v= (when given) is DKIM1, p= is not empty and
// is the public half of the key, k= names the key's type, RSA has 2048 bits or more; then
// whether d= aligns (relaxed) with the From domain.
DkimOutcome check_dkim(const std::vector<DkimKey>& keys, const std::string& from_domain,
                       DnsSource& dns);

}  // namespace sb::doctor
