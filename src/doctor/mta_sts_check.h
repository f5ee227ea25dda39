// Transport-security records of the sending domain: MTA-STS (RFC 8461) and TLS-RPT (RFC 8460).
#pragma once

#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

// Rows "mta-sts" (_mta-sts.<domain> TXT v=STSv1; id=...) and "tls-rpt" (_smtp._tls.<domain>
// TXT v=TLSRPTv1; rua=...). Both are recommendations: WARN when absent, never FAIL.
std::vector<Row> check_mta_sts(const std::string& domain, DnsSource& dns);

}  // namespace sb::doctor
