// STARTTLS check: the relay (or the recipients' mail exchangers) offer TLS after EHLO.
#pragma once

#include <sys/socket.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

// The EHLO reply's keywords ("STARTTLS", "PIPELINING", ...) from a multi-line 250 reply; pure.
std::vector<std::string> ehlo_keywords(const std::string& reply);

// Connects (blocking, bounded by `timeout_ms`), reads the greeting, sends EHLO `helo`, reads the
// reply, sends QUIT. Returns the EHLO reply, or an error naming the step that failed.
Result<std::string> probe_ehlo(const sockaddr_storage& addr, const std::string& helo,
                               int timeout_ms);

// One "starttls" row for a server already probed: PASS when STARTTLS is offered.
Row starttls_row(const std::string& who, const Result<std::string>& ehlo);

// --direct: for up to `sample` recipient domains, the first MX host's first address on
// `port`. Rows "starttls" per host.
std::vector<Row> check_mx_starttls(const std::vector<std::string>& domains, DnsSource& dns,
                                   const std::string& helo, uint16_t port, int timeout_ms,
                                   size_t sample = 5);

}  // namespace sb::doctor
