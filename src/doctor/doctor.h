// smtpblast doctor: every pre-flight check of a sending set-up, in one report.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "doctor/dkim_check.h"
#include "doctor/dns_source.h"
#include "doctor/message_check.h"
#include "doctor/report.h"

namespace sb::doctor {

// Everything the checks need, already loaded and validated by the command line.
struct DoctorInput {
  std::string template_raw;   // the template as written
  std::string rendered;       // one message as send renders it (unstuffed); "" if it could not be
  std::string render_error;   // why it could not be rendered
  std::string from_address;   // the From: header's address
  std::string envelope_from;  // MAIL FROM (--return-path, --from, or the From: address)
  std::string helo;           // "" when not given
  std::vector<dns::IpAddress> ips;  // sending addresses (--ip, or the relay's)
  bool ips_from_relay = false;      // the relay is the sender: its HELO is not ours to check
  std::vector<DkimKey> dkim;
  DomainCounts recipient_domains;  // recipients per domain, for the provider share; may be empty
  // STARTTLS: the relay's addresses (probe the first), or --direct: the recipients' MX hosts.
  std::vector<sockaddr_storage> relay_addrs;
  std::string relay_name;
  bool relay_implicit_tls = false;
  bool direct = false;
  uint16_t mx_port = 25;
  int timeout_ms = 10000;
};

// Runs every check family, in the order a reader fixes things: authentication (SPF, DKIM,
// DMARC), the sending hosts (reverse DNS, HELO), the domains (MX, MTA-STS, TLS-RPT), transport
// (STARTTLS), then the message and the list.
Report run_checks(const DoctorInput& in, DnsSource& dns);

}  // namespace sb::doctor
