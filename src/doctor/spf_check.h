// SPF check: the envelope domain's record, its DNS-lookup count, and libspf2's verdict per IP.
#pragma once

#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

struct SpfInput {
  std::string envelope_from;        // the MAIL FROM address; its domain is checked
  std::string helo;                 // for libspf2's %{h} macro; may be empty
  std::vector<dns::IpAddress> ips;  // the sending addresses to evaluate
};

struct SpfOutcome {
  std::vector<Row> rows;
  std::string domain;
  bool pass = false;  // a record was found and every (non-loopback) IP passed
};

// The record at the envelope domain (missing, several, +all, ?all), the number of terms that
// cost a DNS lookup with includes and redirects followed (RFC 7208 §4.6.4: at most 10), and for
// each IP libspf2's evaluation (libspf2 asks its questions through `dns` too).
SpfOutcome check_spf(const SpfInput& in, DnsSource& dns);

// The SPF record among a name's TXT strings: {records starting "v=spf1"}.
std::vector<std::string> spf_records(const std::vector<std::string>& txt);

// Terms of `record` and of the records it includes or redirects to that need a DNS lookup
// (include, a, mx, ptr, exists, redirect). Stops counting past `limit`+1. Unresolvable
// includes count once and add a note.
int count_spf_lookups(const std::string& record, DnsSource& dns, std::vector<std::string>& notes,
                      int limit = 10);

// `record` with `mechanism` added after "v=spf1" (the fix for an IP it does not cover).
std::string spf_with(const std::string& record, const std::string& mechanism);

}  // namespace sb::doctor
