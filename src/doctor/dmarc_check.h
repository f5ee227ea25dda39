// DMARC check: the record that applies to the From domain, its policy, and SPF/DKIM alignment.
#pragma once

#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

struct DmarcInput {
  std::string from_domain;
  std::string spf_domain;                 // the envelope (MAIL FROM) domain
  bool spf_pass = false;                  // SPF passed for every sending IP
  std::vector<std::string> dkim_domains;  // d= of signatures whose key record matches
};

// RFC 7489 §6.6.3: _dmarc.<From domain>, else _dmarc.<organizational domain>. Rows: "dmarc"
// (record found, valid, policy) and "dmarc-alignment" (SPF or DKIM aligned, relaxed or strict
// as the record says).
std::vector<Row> check_dmarc(const DmarcInput& in, DnsSource& dns);

}  // namespace sb::doctor
