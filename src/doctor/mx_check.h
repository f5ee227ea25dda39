// Mail-acceptance check: the From and return-path domains can receive replies and bounces.
#pragma once

#include <string>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

// One "mx" row for `domain` (`role` says which address it is, e.g. "From"): MX records
// (PASS), no MX but an address (implicit MX, RFC 5321 §5.1: PASS, noted), null MX
// (RFC 7505: FAIL, receivers reject mail from a domain that takes none), no such domain (FAIL).
Row check_accepts_mail(const std::string& domain, const std::string& role, DnsSource& dns);

}  // namespace sb::doctor
