// SPF through libspf2, whose DNS layer is replaced by one that asks our DnsSource.
#include "doctor/spf_check.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

#include "base/text.h"
#include "doctor/org_domain.h"

#define HAVE_NS_TYPE 1
extern "C" {
#include <spf2/spf.h>
#include <spf2/spf_dns.h>
}

namespace sb::doctor {

namespace {

std::vector<std::string> terms_of(const std::string& record) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < record.size()) {
    while (i < record.size() && record[i] == ' ') ++i;
    size_t j = record.find(' ', i);
    if (j == std::string::npos) j = record.size();
    if (j > i) out.push_back(record.substr(i, j - i));
    i = j;
  }
  return out;
}

// libspf2 asks its questions here; the answers come from the DnsSource in `hook`.
SPF_dns_rr_t* spf_lookup(SPF_dns_server_t* server, const char* domain, ns_type type, int) {
  auto* src = static_cast<DnsSource*>(server->hook);
  dns::RecordType t;
  switch (type) {
    case ns_t_a:
      t = dns::RecordType::kA;
      break;
    case ns_t_aaaa:
      t = dns::RecordType::kAaaa;
      break;
    case ns_t_mx:
      t = dns::RecordType::kMx;
      break;
    case ns_t_txt:
      t = dns::RecordType::kTxt;
      break;
    case ns_t_ptr:
      t = dns::RecordType::kPtr;
      break;
    default:  // the SPF RR type (99) is obsolete (RFC 7208 §3.1): never published
      return SPF_dns_rr_new_init(server, domain, type, 0, NO_DATA);
  }
  auto r = src->lookup(domain, t);
  if (!r.ok()) return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
  if (r->rcode == dns::Rcode::kNxDomain) return SPF_dns_rr_new_nxdomain(server, domain);
  if (r->rcode != dns::Rcode::kNoError)
    return SPF_dns_rr_new_init(server, domain, type, 0, TRY_AGAIN);
  SPF_dns_rr_t* rr =
      SPF_dns_rr_new_init(server, domain, type, r->min_ttl.value_or(0), NETDB_SUCCESS);
  if (rr == nullptr) return nullptr;
  int n = 0;
  auto add_bytes = [&](const void* p, size_t len) {
    if (SPF_dns_rr_buf_realloc(rr, n, len) != SPF_E_SUCCESS) return;
    std::memcpy(rr->rr[n], p, len);
    ++n;
  };
  auto add_string = [&](const std::string& s) { add_bytes(s.c_str(), s.size() + 1); };
  switch (t) {
    case dns::RecordType::kA:
    case dns::RecordType::kAaaa:
      for (const dns::IpAddress& ip : r->addresses) {
        if (ip.is_v6() != (t == dns::RecordType::kAaaa)) continue;
        add_bytes(ip.bytes.data(), ip.is_v6() ? 16 : 4);
      }
      break;
    case dns::RecordType::kMx:
      for (const dns::MxRecord& m : r->mx) {
        if (!m.is_null()) add_string(m.exchange);
      }
      break;
    case dns::RecordType::kTxt:
      for (const std::string& s : r->txt) add_string(s);
      break;
    case dns::RecordType::kPtr:
      for (const std::string& s : r->ptr) add_string(s);
      break;
    default:
      break;
  }
  rr->num_rr = n;
  if (n == 0) rr->herrno = NO_DATA;
  return rr;
}

// libspf2 prints warnings on stderr by default; the doctor reports through its rows instead.
void quiet(const char*, int, const char*) {}

struct SpfVerdict {
  SPF_result_t result = SPF_RESULT_INVALID;
  bool too_many_lookups = false;
  std::string comment;  // libspf2's explanation and error messages
};

SpfVerdict evaluate(DnsSource& src, const dns::IpAddress& ip, const std::string& sender,
                    const std::string& helo) {
  SpfVerdict v;
  SPF_warning_handler = quiet;
  SPF_info_handler = quiet;
  SPF_dns_server_t layer{};
  layer.destroy = nullptr;  // ours, on the stack: libspf2 must not free it
  layer.lookup = spf_lookup;
  layer.name = "smtpblast";
  layer.hook = &src;
  SPF_server_t* server = SPF_server_new_dns(&layer, 0);
  if (server == nullptr) {
    v.comment = "libspf2 could not start";
    return v;
  }
  SPF_request_t* req = SPF_request_new(server);
  std::string addr = ip.to_string();
  if (ip.is_v6()) {
    SPF_request_set_ipv6_str(req, addr.c_str());
  } else {
    SPF_request_set_ipv4_str(req, addr.c_str());
  }
  if (!helo.empty()) SPF_request_set_helo_dom(req, helo.c_str());
  SPF_request_set_env_from(req, sender.c_str());
  SPF_response_t* resp = nullptr;
  SPF_request_query_mailfrom(req, &resp);
  if (resp != nullptr) {
    v.result = SPF_response_result(resp);
    if (SPF_response_errcode(resp) == SPF_E_BIG_DNS) v.too_many_lookups = true;
    for (int i = 0; i < SPF_response_messages(resp); ++i) {
      SPF_error_t* e = SPF_response_message(resp, i);
      if (SPF_error_code(e) == SPF_E_BIG_DNS) v.too_many_lookups = true;
      const char* m = SPF_error_message(e);
      if (m != nullptr && *m != '\0') v.comment += std::string(v.comment.empty() ? "" : "; ") + m;
    }
    const char* c = SPF_response_get_header_comment(resp);
    if (v.comment.empty() && c != nullptr) v.comment = c;
    SPF_response_free(resp);
  }
  SPF_request_free(req);
  SPF_server_free(server);
  return v;
}

std::string mechanism_for(const dns::IpAddress& ip) {
  return (ip.is_v6() ? "ip6:" : "ip4:") + ip.to_string();
}

bool is_loopback(const dns::IpAddress& ip) {
  if (!ip.is_v6()) return ip.bytes[0] == 127;
  for (int i = 0; i < 15; ++i) {
    if (ip.bytes[i] != 0) return false;
  }
  return ip.bytes[15] == 1;
}

}  // namespace

std::vector<std::string> spf_records(const std::vector<std::string>& txt) {
  std::vector<std::string> out;
  for (const std::string& t : txt) {
    std::string l = lower_ascii(t.substr(0, 7));
    if (l == "v=spf1" || l == "v=spf1 ") out.push_back(t);
  }
  return out;
}

std::string spf_with(const std::string& record, const std::string& mechanism) {
  return record.size() <= 6 ? "v=spf1 " + mechanism
                            : record.substr(0, 6) + " " + mechanism + record.substr(6);
}

namespace {

int count_inner(const std::string& record, DnsSource& dns, std::vector<std::string>& notes,
                int limit, int depth, int count) {
  for (const std::string& term : terms_of(record)) {
    if (count > limit) return count;
    std::string t = lower_ascii(term);
    if (!t.empty() && (t[0] == '+' || t[0] == '-' || t[0] == '~' || t[0] == '?')) t.erase(0, 1);
    std::string target;
    bool follow = false;
    if (t.rfind("include:", 0) == 0) {
      target = term.substr(term.find(':') + 1);
      follow = true;
    } else if (t.rfind("redirect=", 0) == 0) {
      target = term.substr(term.find('=') + 1);
      follow = true;
    } else if (!(t == "a" || t == "mx" || t == "ptr" || t.rfind("a:", 0) == 0 ||
                 t.rfind("a/", 0) == 0 || t.rfind("mx:", 0) == 0 || t.rfind("mx/", 0) == 0 ||
                 t.rfind("ptr:", 0) == 0 || t.rfind("exists:", 0) == 0)) {
      continue;
    }
    ++count;
    if (!follow || depth >= 10) continue;
    if (target.find('%') != std::string::npos) continue;  // a macro: depends on the sender
    auto r = dns.lookup(target, dns::RecordType::kTxt);
    std::vector<std::string> recs = r.ok() ? spf_records(r->txt) : std::vector<std::string>{};
    if (recs.size() != 1) {
      notes.push_back(target + " has " + (recs.empty() ? "no" : "more than one") + " SPF record");
      continue;
    }
    count = count_inner(recs[0], dns, notes, limit, depth + 1, count);
  }
  return count;
}

}  // namespace

int count_spf_lookups(const std::string& record, DnsSource& dns, std::vector<std::string>& notes,
                      int limit) {
  return count_inner(record, dns, notes, limit, 0, 0);
}

SpfOutcome check_spf(const SpfInput& in, DnsSource& dns) {
  SpfOutcome out;
  out.domain = domain_of(in.envelope_from);
  const std::string& d = out.domain;
  std::string mechs;
  for (const dns::IpAddress& ip : in.ips) mechs += mechanism_for(ip) + " ";
  if (mechs.empty()) mechs = "ip4:<your sending IP> ";
  if (d.empty()) {
    out.rows.push_back({"spf", in.envelope_from, Verdict::kFail,
                        "the envelope sender has no @domain", "an address user@domain",
                        "give --from user@your-domain"});
    return out;
  }
  auto r = dns.lookup(d, dns::RecordType::kTxt);
  if (!r.ok() || (r->rcode != dns::Rcode::kNoError && r->rcode != dns::Rcode::kNxDomain)) {
    out.rows.push_back({"spf", d, Verdict::kFail,
                        "no DNS answer for TXT " + d + ": " +
                            (r.ok() ? dns::rcode_name(r->rcode) : r.error().message),
                        "a TXT record v=spf1 ...", "make " + d + "'s name servers answer"});
    return out;
  }
  std::vector<std::string> recs = spf_records(r->txt);
  if (recs.empty()) {
    out.rows.push_back({"spf", d, Verdict::kFail,
                        r->rcode == dns::Rcode::kNxDomain ? d + " does not exist (NXDOMAIN)"
                                                          : "no SPF record (no TXT v=spf1)",
                        "one TXT record v=spf1 ... listing every sending IP",
                        zone_txt(d, "v=spf1 " + mechs + "-all")});
    return out;
  }
  if (recs.size() > 1) {
    std::string all;
    for (const std::string& s : recs) all += (all.empty() ? "" : " | ") + s;
    out.rows.push_back({"spf", d, Verdict::kFail,
                        std::to_string(recs.size()) + " SPF records: " + all,
                        "exactly one (RFC 7208 §4.5: several are a permanent error)",
                        "merge them into one TXT record and delete the others"});
    return out;
  }
  const std::string& rec = recs[0];
  // The "all" at the end of the record: what happens to an IP nothing else matched.
  std::string all_term;
  bool redirect = false;
  for (const std::string& term : terms_of(rec)) {
    std::string t = lower_ascii(term);
    if (t == "all" || t == "+all" || t == "-all" || t == "~all" || t == "?all") all_term = t;
    if (t.rfind("redirect=", 0) == 0) redirect = true;
  }
  Row rec_row{"spf", d + " record", Verdict::kPass, rec, "one record ending in -all or ~all", ""};
  auto replace_all = [&](const std::string& with) {
    std::string fixed;
    for (const std::string& term : terms_of(rec)) {
      std::string t = lower_ascii(term);
      bool is_all = t == "all" || t == "+all" || t == "-all" || t == "~all" || t == "?all";
      fixed += (fixed.empty() ? "" : " ") + (is_all ? with : term);
    }
    return zone_txt(d, fixed);
  };
  if (all_term == "all" || all_term == "+all") {
    rec_row.verdict = Verdict::kFail;
    rec_row.expected = "-all or ~all: '" + all_term + "' lets every IP on the Internet pass";
    rec_row.fix = replace_all("-all");
  } else if (all_term == "?all") {
    rec_row.verdict = Verdict::kWarn;
    rec_row.expected = "-all or ~all: '?all' makes every other IP neutral, which proves nothing";
    rec_row.fix = replace_all("~all");
  } else if (all_term.empty() && !redirect) {
    rec_row.verdict = Verdict::kWarn;
    rec_row.expected = "a final -all or ~all: without it other IPs are neutral";
    rec_row.fix = zone_txt(d, rec + " ~all");
  }
  out.rows.push_back(rec_row);

  std::vector<std::string> notes;
  int lookups = count_spf_lookups(rec, dns, notes);
  Row count_row{"spf",
                d + " lookups",
                Verdict::kPass,
                std::to_string(lookups > 10 ? 11 : lookups) + (lookups > 10 ? " or more" : "") +
                    " terms that need a DNS lookup (include, a, mx, ptr, exists, redirect; "
                    "includes followed)",
                "at most 10 (RFC 7208 §4.6.4; more is a permanent error)",
                ""};
  for (const std::string& n : notes) count_row.evidence += "; " + n;
  if (lookups > 10) {
    count_row.verdict = Verdict::kFail;
    count_row.fix =
        "flatten the record: replace include:, a and mx terms by the ip4:/ip6: "
        "ranges they stand for, e.g.\n" +
        zone_txt(d, "v=spf1 " + mechs + "-all");
  }
  out.rows.push_back(count_row);

  bool all_pass = rec_row.verdict != Verdict::kFail && lookups <= 10;
  bool any_evaluated = false;
  for (const dns::IpAddress& ip : in.ips) {
    std::string subject = d + " for " + ip.to_string();
    if (is_loopback(ip)) {
      out.rows.push_back({"spf", subject, Verdict::kWarn,
                          "a loopback address: SPF gives it a free pass, receivers never see it",
                          "the public address mail leaves from", "give --ip PUBLIC-ADDRESS"});
      continue;
    }
    any_evaluated = true;
    SpfVerdict v = evaluate(dns, ip, in.envelope_from, in.helo);
    Row row{"spf", subject, Verdict::kPass, "", "pass", ""};
    const char* name = SPF_strresult(v.result);
    row.evidence = std::string("libspf2: ") + (name ? name : "?");
    if (!v.comment.empty()) row.evidence += " (" + v.comment + ")";
    if (v.result == SPF_RESULT_PASS) {
      out.rows.push_back(row);
      continue;
    }
    all_pass = false;
    row.verdict = Verdict::kFail;
    if (v.too_many_lookups) {
      row.evidence += "; more than 10 DNS lookups";
      row.fix = "flatten the record to at most 10 lookups (see the lookups row)";
    } else if (v.result == SPF_RESULT_TEMPERROR) {
      row.fix = "make the name servers of " + d + " (and of its includes) answer";
    } else if (v.result == SPF_RESULT_PERMERROR) {
      row.fix =
          "correct the record's syntax, e.g.\n" + zone_txt(d, spf_with(rec, mechanism_for(ip)));
    } else {
      row.fix = zone_txt(d, spf_with(rec, mechanism_for(ip)));
    }
    out.rows.push_back(row);
  }
  if (in.ips.empty()) {
    out.rows.push_back({"spf", d, Verdict::kWarn, "no sending IP to evaluate",
                        "the addresses mail leaves from",
                        "give --ip ADDR for each public address that sends (with --direct, this "
                        "machine's)"});
  }
  out.pass = all_pass && any_evaluated;
  return out;
}

}  // namespace sb::doctor
