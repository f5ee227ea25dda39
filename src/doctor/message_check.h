// Message checks: the headers bulk-sender rules look at, line lengths and size, on one message
// rendered exactly as send would render it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "doctor/dns_source.h"
#include "doctor/report.h"

namespace sb::doctor {

// `rendered`: the complete message (CRLF line ends, not dot-stuffed, DKIM-Signature fields on
// top when signing). `template_raw`: the template as the user wrote it, to say which headers
// smtpblast adds. Rows: "from", "message-id", "date", "list-unsubscribe", "line-length", "size".
std::vector<Row> check_message(const std::string& rendered, const std::string& template_raw);

// The addresses in a From: field value ("A <a@x>, b@y" -> {"a@x", "b@y"}); quoted strings and
// comments are skipped. An entry that is not local@domain is returned as is, for the message.
std::vector<std::string> from_addresses(const std::string& value);
bool valid_address(const std::string& addr);

// Recipients at the providers whose bulk-sender rules apply: by domain name, and for the most
// common other domains by their MX host names (Google Workspace, Yahoo, Microsoft 365).
struct ProviderShare {
  size_t total = 0;
  std::map<std::string, size_t> by_provider;  // "Gmail/Google", "Yahoo/AOL", "Microsoft"
  size_t at_providers() const;
};
// Recipients per domain (lower-cased, from domain_of): a list of 10^7 addresses is counted as
// it is read, never held.
using DomainCounts = std::map<std::string, size_t>;
void count_recipient(DomainCounts& counts, const std::string& email);
// The domains, most recipients first.
std::vector<std::string> domains_by_count(const DomainCounts& counts);

// `mx_sample`: how many of the most common other domains to look up. Row "recipients".
Row check_recipients(const DomainCounts& domains, DnsSource& dns, size_t mx_sample = 20,
                     ProviderShare* share_out = nullptr);

}  // namespace sb::doctor
