// DMARC record discovery and alignment.
#include "doctor/dmarc_check.h"

#include "doctor/dkim_check.h"
#include "doctor/org_domain.h"

namespace sb::doctor {

namespace {

// The DMARC record among a name's TXT strings, "" when none (or when the answer is an error).
std::string dmarc_record(DnsSource& dns, const std::string& domain, std::string* error) {
  auto r = dns.lookup("_dmarc." + domain, dns::RecordType::kTxt);
  if (!r.ok()) {
    *error = r.error().message;
    return "";
  }
  if (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain) {
    *error = dns::rcode_name(r->rcode);
    return "";
  }
  for (const std::string& t : r->txt) {
    if (t.rfind("v=DMARC1", 0) == 0) return t;
  }
  return "";
}

}  // namespace

std::vector<Row> check_dmarc(const DmarcInput& in, DnsSource& dns) {
  std::vector<Row> rows;
  const std::string& from = in.from_domain;
  std::string org = organizational_domain(from);
  std::string error;
  std::string rec = dmarc_record(dns, from, &error);
  std::string where = from;
  if (rec.empty() && error.empty() && org != from) {
    rec = dmarc_record(dns, org, &error);
    where = org;
  }
  std::string publish =
      zone_txt("_dmarc." + org, "v=DMARC1; p=none; rua=mailto:dmarc-reports@" + org);
  if (!error.empty()) {
    rows.push_back(
        {"dmarc", from, Verdict::kFail, "no DNS answer for _dmarc." + where + ": " + error,
         "a TXT record v=DMARC1 at _dmarc." + from + (org != from ? " or _dmarc." + org : ""),
         "make the name servers answer"});
    return rows;
  }
  if (rec.empty()) {
    std::string looked = "_dmarc." + from + (org != from ? " and _dmarc." + org : "");
    rows.push_back({"dmarc", from, Verdict::kFail, "no DMARC record at " + looked,
                    "v=DMARC1 with a policy (p=none is enough; Gmail, Yahoo and Microsoft "
                    "require a record from bulk senders)",
                    publish});
    return rows;
  }
  auto tags = parse_tags(rec);
  bool inherited = where != from;
  // Subdomains inherit sp= (RFC 7489 §6.3), else p=.
  std::string policy =
      inherited && tags.count("sp") ? tags["sp"] : (tags.count("p") ? tags["p"] : "");
  Row row{"dmarc",
          from,
          Verdict::kPass,
          "_dmarc." + where + ": " + rec +
              (inherited ? " (no record at _dmarc." + from +
                               ": the organizational domain's record applies)"
                         : ""),
          "v=DMARC1 with p=none, quarantine or reject",
          ""};
  if (policy != "none" && policy != "quarantine" && policy != "reject") {
    row.verdict = Verdict::kFail;
    row.expected = "p=none, p=quarantine or p=reject (found '" + policy + "')";
    row.fix = zone_txt("_dmarc." + where, "v=DMARC1; p=none; rua=mailto:dmarc-reports@" + org);
  } else {
    row.evidence += "; policy " + policy;
  }
  rows.push_back(row);

  bool strict_spf = tags.count("aspf") && tags["aspf"] == "s";
  bool strict_dkim = tags.count("adkim") && tags["adkim"] == "s";
  bool spf_ok = in.spf_pass && aligned(in.spf_domain, from, strict_spf);
  std::string dkim_aligned;
  for (const std::string& d : in.dkim_domains) {
    if (aligned(d, from, strict_dkim)) dkim_aligned = d;
  }
  std::string ev = std::string("SPF ") + (in.spf_pass ? "passes" : "does not pass") + " for " +
                   (in.spf_domain.empty() ? "(no envelope domain)" : in.spf_domain) + ", " +
                   (aligned(in.spf_domain, from, strict_spf) ? "aligned" : "not aligned") +
                   " (aspf=" + (strict_spf ? "s" : "r") + "); DKIM ";
  if (in.dkim_domains.empty()) {
    ev += "has no valid signature";
  } else {
    ev += "d=";
    for (size_t i = 0; i < in.dkim_domains.size(); ++i) ev += (i ? "," : "") + in.dkim_domains[i];
    ev += dkim_aligned.empty() ? " not aligned" : " aligned";
  }
  ev += std::string(" (adkim=") + (strict_dkim ? "s" : "r") + ") with From " + from;
  Row al{"dmarc-alignment",
         from,
         Verdict::kPass,
         ev,
         "SPF or DKIM passing and aligned with the From domain (both, for Gmail's bulk rules)",
         ""};
  if (!spf_ok && dkim_aligned.empty()) {
    al.verdict = Verdict::kFail;
    if (strict_dkim && !in.dkim_domains.empty() && aligned(in.dkim_domains[0], from, false)) {
      al.fix = "sign with --dkim-domain " + from +
               " (strict adkim=s wants the exact From domain), "
               "or publish adkim=r:\n" +
               zone_txt("_dmarc." + where, "v=DMARC1; p=" + (tags.count("p") ? tags["p"] : "none") +
                                               "; adkim=r; aspf=r");
    } else {
      al.fix = "sign with --dkim-domain " + from +
               " (and publish its key), or send with an "
               "envelope sender (--from) at " +
               from + " whose SPF record lists the sending IPs";
    }
  } else if (!spf_ok || dkim_aligned.empty()) {
    al.verdict = Verdict::kWarn;
    al.fix = spf_ok ? "sign with --dkim-domain " + from + ": DKIM survives forwarding, SPF does not"
                    : "use an envelope sender (--from) at " + from +
                          " whose SPF record lists the sending IPs";
  }
  rows.push_back(al);
  return rows;
}

}  // namespace sb::doctor
