// MTA-STS and TLS-RPT discovery records.
#include "doctor/mta_sts_check.h"

#include "doctor/dkim_check.h"

namespace sb::doctor {

namespace {

std::string find_record(DnsSource& dns, const std::string& name, const std::string& version) {
  auto r = dns.lookup(name, dns::RecordType::kTxt);
  if (!r.ok()) return "";
  for (const std::string& t : r->txt) {
    auto tags = parse_tags(t);
    if (tags.count("v") && tags["v"] == version) return t;
  }
  return "";
}

}  // namespace

std::vector<Row> check_mta_sts(const std::string& domain, DnsSource& dns) {
  std::vector<Row> rows;
  std::string sts_name = "_mta-sts." + domain;
  std::string sts = find_record(dns, sts_name, "STSv1");
  Row s{"mta-sts",
        domain,
        Verdict::kPass,
        sts.empty() ? "no TXT v=STSv1 at " + sts_name : sts,
        "an MTA-STS record (and its policy at https://mta-sts." + domain +
            "/.well-known/mta-sts.txt)",
        ""};
  if (sts.empty()) {
    s.verdict = Verdict::kWarn;
    s.fix = zone_txt(sts_name, "v=STSv1; id=20240101000000") +
            "\nand serve the policy at https://mta-sts." + domain +
            "/.well-known/mta-sts.txt (version: STSv1, mode: testing, mx: ..., max_age: 86400)";
  } else if (parse_tags(sts)["id"].empty()) {
    s.verdict = Verdict::kWarn;
    s.expected = "an id= tag (RFC 8461 §3.1)";
    s.fix = zone_txt(sts_name, "v=STSv1; id=20240101000000");
  }
  rows.push_back(s);
  std::string rpt_name = "_smtp._tls." + domain;
  std::string rpt = find_record(dns, rpt_name, "TLSRPTv1");
  Row t{"tls-rpt",
        domain,
        Verdict::kPass,
        rpt.empty() ? "no TXT v=TLSRPTv1 at " + rpt_name : rpt,
        "a TLS-RPT record naming where TLS failure reports go",
        ""};
  if (rpt.empty() || parse_tags(rpt)["rua"].empty()) {
    t.verdict = Verdict::kWarn;
    t.fix = zone_txt(rpt_name, "v=TLSRPTv1; rua=mailto:tls-reports@" + domain);
  }
  rows.push_back(t);
  return rows;
}

}  // namespace sb::doctor
