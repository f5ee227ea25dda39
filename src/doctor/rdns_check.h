// Reverse DNS check: each sending IP's PTR name resolves back to it, and HELO resolves to it.
#pragma once

#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

// Rows "ptr" (forward-confirmed reverse DNS, RFC 8601 §3: PTR -> name -> the same IP) per IP,
// and "helo" per IP when `helo` is given (the name resolves to that IP).
std::vector<Row> check_reverse_dns(const std::vector<dns::IpAddress>& ips, const std::string& helo,
                                   DnsSource& dns);

}  // namespace sb::doctor
