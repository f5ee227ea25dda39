// MX, implicit MX and null MX of the sender's domains.
#include "doctor/mx_check.h"

namespace sb::doctor {

Row check_accepts_mail(const std::string& domain, const std::string& role, DnsSource& dns) {
  Row row{"mx",
          domain + " (" + role + ")",
          Verdict::kPass,
          "",
          "MX records (or an address) so that replies and bounces can be delivered",
          ""};
  std::string fix = domain + ". 3600 IN MX 10 mail." + domain + ".";
  auto r = dns.lookup(domain, dns::RecordType::kMx);
  if (!r.ok() || (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain)) {
    row.verdict = Verdict::kFail;
    row.evidence = "no DNS answer for MX " + domain + ": " +
                   (r.ok() ? dns::rcode_name(r->rcode) : r.error().message);
    row.fix = "make the name servers of " + domain + " answer";
    return row;
  }
  if (r->rcode == dns::Rcode::kNxDomain) {
    row.verdict = Verdict::kFail;
    row.evidence = domain + " does not exist (NXDOMAIN)";
    row.fix = "send from a domain that exists and receives mail, e.g.\n" + fix;
    return row;
  }
  for (const dns::MxRecord& m : r->mx) {
    if (m.is_null()) {
      row.verdict = Verdict::kFail;
      row.evidence = "null MX (" + domain + ". IN MX 0 .): the domain says it accepts no mail";
      row.expected =
          "a domain that accepts replies and bounces; receivers reject mail from a "
          "null-MX domain (RFC 7505 §4.2)";
      row.fix = "replace the null MX:\n" + fix;
      return row;
    }
  }
  if (!r->mx.empty()) {
    for (const dns::MxRecord& m : r->mx) {
      row.evidence +=
          (row.evidence.empty() ? "MX " : ", ") + std::to_string(m.preference) + " " + m.exchange;
    }
    return row;
  }
  // No MX: the domain's own address is its mail exchanger (RFC 5321 §5.1).
  auto a = dns.lookup(domain, dns::RecordType::kA);
  auto aaaa = dns.lookup(domain, dns::RecordType::kAaaa);
  bool has = (a.ok() && !a->addresses.empty()) || (aaaa.ok() && !aaaa->addresses.empty());
  if (has) {
    // The rule and RFC 5321's: implicit MX accepts mail, so replies and bounces arrive.
    row.evidence = "no MX; the domain's address serves as implicit MX (RFC 5321 §5.1)";
  } else {
    row.verdict = Verdict::kFail;
    row.evidence = "neither MX nor address records: mail to " + domain + " cannot be delivered";
    row.fix = fix;
  }
  return row;
}

}  // namespace sb::doctor
