// Forward-confirmed reverse DNS and the HELO name.
#include "doctor/rdns_check.h"

namespace sb::doctor {

namespace {

// The addresses of `name` of the same family as `ip`; `error` set when there is no answer.
std::vector<dns::IpAddress> addresses(DnsSource& dns, const std::string& name, bool v6,
                                      std::string* error) {
  auto r = dns.lookup(name, v6 ? dns::RecordType::kAaaa : dns::RecordType::kA);
  if (!r.ok()) {
    *error = r.error().message;
    return {};
  }
  if (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain) {
    *error = dns::rcode_name(r->rcode);
  }
  return r->addresses;
}

std::string join(const std::vector<dns::IpAddress>& v) {
  std::string out;
  for (const auto& a : v) out += (out.empty() ? "" : ", ") + a.to_string();
  return out.empty() ? "no address" : out;
}

std::string address_record(const std::string& name, const dns::IpAddress& ip) {
  return name + ". 3600 IN " + (ip.is_v6() ? "AAAA " : "A ") + ip.to_string();
}

}  // namespace

std::vector<Row> check_reverse_dns(const std::vector<dns::IpAddress>& ips, const std::string& helo,
                                   DnsSource& dns) {
  std::vector<Row> rows;
  std::string helo_name = dns::normalise_name(helo);
  for (const dns::IpAddress& ip : ips) {
    std::string rev = reverse_name(ip);
    std::string want_name = helo_name.empty() ? "mail.your-domain" : helo_name;
    Row row{"ptr",
            ip.to_string(),
            Verdict::kPass,
            "",
            "a PTR name that resolves back to " + ip.to_string(),
            ""};
    auto r = dns.lookup(rev, dns::RecordType::kPtr);
    std::string ptr_fix = rev + ". 3600 IN PTR " + want_name +
                          ".  (published by whoever owns the address: ask the hosting provider)";
    if (!r.ok() || (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain)) {
      row.verdict = Verdict::kFail;
      row.evidence = "no DNS answer for PTR " + rev + ": " +
                     (r.ok() ? dns::rcode_name(r->rcode) : r.error().message);
      row.fix = ptr_fix;
    } else if (r->ptr.empty()) {
      row.verdict = Verdict::kFail;
      row.evidence = "no PTR record at " + rev;
      row.fix = ptr_fix;
    } else {
      std::string confirmed;
      std::string ev;
      for (const std::string& name : r->ptr) {
        std::string err;
        auto addrs = addresses(dns, name, ip.is_v6(), &err);
        ev += (ev.empty() ? "" : "; ") + ip.to_string() + " -> PTR " + name + " -> " +
              (err.empty() ? join(addrs) : "no answer: " + err);
        for (const auto& a : addrs) {
          if (a == ip) confirmed = name;
        }
      }
      row.evidence = ev;
      if (confirmed.empty()) {
        row.verdict = Verdict::kFail;
        row.expected = "the PTR name " + r->ptr[0] + " to resolve back to " + ip.to_string() +
                       " (forward-confirmed reverse DNS)";
        row.fix =
            address_record(r->ptr[0], ip) + "\nor point the PTR at a name that has it:\n" + ptr_fix;
      }
    }
    rows.push_back(row);
    if (helo_name.empty()) continue;
    Row h{"helo", helo_name + " for " + ip.to_string(),          Verdict::kPass,
          "",     helo_name + " resolving to " + ip.to_string(), ""};
    std::string err;
    auto addrs = addresses(dns, helo_name, ip.is_v6(), &err);
    h.evidence = helo_name + " -> " + (err.empty() ? join(addrs) : "no answer: " + err);
    bool found = false;
    for (const auto& a : addrs) found |= a == ip;
    if (!found) {
      h.verdict = Verdict::kFail;
      h.fix = address_record(helo_name, ip);
    }
    rows.push_back(h);
  }
  return rows;
}

}  // namespace sb::doctor
