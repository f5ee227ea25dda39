// Header, line-length and size checks of a rendered message; the recipient list's providers.
#include "doctor/message_check.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "base/text.h"
#include "doctor/dkim_check.h"
#include "doctor/org_domain.h"

namespace sb::doctor {

namespace {

struct Field {
  std::string name;   // lower-case
  std::string value;  // unfolded, trimmed
};

// The header block's fields (any line end); continuation lines are joined with their field.
std::vector<Field> header_fields(const std::string& msg) {
  std::vector<Field> out;
  size_t i = 0;
  while (i < msg.size()) {
    size_t eol = msg.find('\n', i);
    if (eol == std::string::npos) eol = msg.size();
    std::string line = msg.substr(i, eol - i);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    i = eol + 1;
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t') && !out.empty()) {
      out.back().value += " " + std::string(trim_space(line));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    out.push_back({lower_ascii(std::string(trim_space(line.substr(0, colon)))),
                   std::string(trim_space(line.substr(colon + 1)))});
  }
  return out;
}

std::vector<const Field*> fields_named(const std::vector<Field>& fs, const std::string& name) {
  std::vector<const Field*> out;
  for (const Field& f : fs) {
    if (f.name == name) out.push_back(&f);
  }
  return out;
}

}  // namespace

bool valid_address(const std::string& addr) {
  size_t at = addr.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 >= addr.size() || addr.size() > 254) {
    return false;
  }
  std::string domain = addr.substr(at + 1);
  if (domain.find('.') == std::string::npos || domain.front() == '.' || domain.back() == '.') {
    return false;
  }
  for (char c : addr) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '<' || c == '>' || c == ',')
      return false;
  }
  return true;
}

std::vector<std::string> from_addresses(const std::string& value) {
  // Drop quoted strings and comments, then split on commas.
  std::string plain;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (quoted) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '(') ++depth;
      if (c == ')') --depth;
      continue;
    }
    if (c == '"')
      quoted = true;
    else if (c == '(')
      depth = 1;
    else
      plain.push_back(c);
  }
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= plain.size()) {
    size_t comma = plain.find(',', i);
    if (comma == std::string::npos) comma = plain.size();
    std::string part = std::string(trim_space(plain.substr(i, comma - i)));
    i = comma + 1;
    if (part.empty()) continue;
    size_t lt = part.find('<'), gt = part.rfind('>');
    if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
      part = std::string(trim_space(part.substr(lt + 1, gt - lt - 1)));
    }
    out.push_back(part);
  }
  return out;
}

std::vector<Row> check_message(const std::string& rendered, const std::string& template_raw) {
  std::vector<Row> rows;
  auto fields = header_fields(rendered);
  auto tfields = header_fields(template_raw);

  // From: exactly one field with exactly one valid address (RFC 5322 §3.6.2 allows several
  // with a Sender:, but Gmail rejects them: 550 5.7.1 "multiple addresses in From").
  auto froms = fields_named(fields, "from");
  Row from{"from", "From:", Verdict::kPass, "", "one From: field with one address", ""};
  if (froms.empty()) {
    from.verdict = Verdict::kFail;
    from.evidence = "no From: field";
    from.fix = "add From: Name <you@your-domain> to the template (or give --from)";
  } else if (froms.size() > 1) {
    from.verdict = Verdict::kFail;
    from.evidence = std::to_string(froms.size()) + " From: fields";
    from.fix = "keep one From: field in the template";
  } else {
    auto addrs = from_addresses(froms[0]->value);
    from.evidence = froms[0]->value;
    if (addrs.size() != 1) {
      from.verdict = Verdict::kFail;
      from.expected = "a single address (found " + std::to_string(addrs.size()) + ")";
      from.fix = "put one address in From:; others go in Reply-To:";
    } else if (!valid_address(addrs[0])) {
      from.verdict = Verdict::kFail;
      from.expected = "an address local@domain.tld ('" + addrs[0] + "' is not)";
      from.fix = "From: Name <you@your-domain>";
    }
  }
  rows.push_back(from);

  for (const char* name : {"message-id", "date"}) {
    std::string label = std::string(name) == "date" ? "Date:" : "Message-ID:";
    Row r{name, label, Verdict::kPass, "", "present (RFC 5322 §3.6)", ""};
    auto f = fields_named(fields, name);
    if (f.empty()) {
      r.verdict = Verdict::kFail;
      r.evidence = "no " + label + " field";
      r.fix = "add " + label + " to the template";
    } else {
      r.evidence = f[0]->value;
      if (fields_named(tfields, name).empty())
        r.evidence += " (added by smtpblast to each message)";
    }
    rows.push_back(r);
  }

  // RFC 8058 one-click unsubscribe: both fields, and a DKIM signature covering both.
  auto lu = fields_named(fields, "list-unsubscribe");
  auto lup = fields_named(fields, "list-unsubscribe-post");
  Row un{"list-unsubscribe",
         "List-Unsubscribe:",
         Verdict::kPass,
         "",
         "List-Unsubscribe: <https://...> and List-Unsubscribe-Post: List-Unsubscribe=One-Click, "
         "both covered by a DKIM signature (RFC 8058)",
         ""};
  std::string flag_fix =
      "send with --unsubscribe-url 'https://your-domain/unsubscribe/{{token}}' "
      "--unsubscribe-secret-file FILE (smtpblast adds both fields and signs "
      "them)";
  bool https = !lu.empty() && lower_ascii(lu[0]->value).find("<https://") != std::string::npos;
  if (lu.empty()) {
    un.verdict = Verdict::kFail;
    un.evidence = "no List-Unsubscribe: field";
    un.fix = flag_fix;
  } else if (lup.empty() ||
             lower_ascii(lup[0]->value).find("list-unsubscribe=one-click") == std::string::npos ||
             !https) {
    un.verdict = Verdict::kFail;
    un.evidence =
        "List-Unsubscribe: " + lu[0]->value + "; " +
        (lup.empty() ? "no List-Unsubscribe-Post:" : "List-Unsubscribe-Post: " + lup[0]->value);
    un.fix = flag_fix;
  } else {
    un.evidence = "List-Unsubscribe: " + lu[0]->value + "; List-Unsubscribe-Post: " + lup[0]->value;
    bool covered = false;
    for (const Field* sig : fields_named(fields, "dkim-signature")) {
      auto tags = parse_tags(sig->value);
      std::string h = lower_ascii(tags["h"]);
      std::vector<std::string> names;
      size_t i = 0;
      while (i <= h.size()) {
        size_t c = h.find(':', i);
        if (c == std::string::npos) c = h.size();
        std::string n;
        for (char ch : h.substr(i, c - i)) {
          if (!std::isspace(static_cast<unsigned char>(ch))) n.push_back(ch);
        }
        names.push_back(n);
        i = c + 1;
      }
      auto has = [&](const char* n) {
        return std::find(names.begin(), names.end(), n) != names.end();
      };
      if (has("list-unsubscribe") && has("list-unsubscribe-post")) covered = true;
    }
    if (!covered) {
      un.verdict = Verdict::kFail;
      un.evidence += "; no DKIM signature covers both";
      un.fix = "sign with --dkim-key (smtpblast's signature covers both fields)";
    } else {
      un.evidence += "; signed";
    }
  }
  rows.push_back(un);

  // RFC 5322 §2.1.1: at most 998 octets per line, CRLF not counted.
  size_t longest = 0, longest_line = 0, over = 0, line_no = 0;
  size_t i = 0;
  while (i < rendered.size()) {
    size_t eol = rendered.find('\n', i);
    if (eol == std::string::npos) eol = rendered.size();
    size_t len = eol - i;
    if (len > 0 && rendered[eol - 1] == '\r') --len;
    ++line_no;
    if (len > 998) ++over;
    if (len > longest) {
      longest = len;
      longest_line = line_no;
    }
    i = eol + 1;
  }
  Row ll{"line-length",
         "",
         Verdict::kPass,
         "longest line " + std::to_string(longest) + " octets (line " +
             std::to_string(longest_line) + ")",
         "no line over 998 octets (RFC 5322 §2.1.1)",
         ""};
  if (over > 0) {
    ll.verdict = Verdict::kFail;
    ll.evidence = std::to_string(over) + " line(s) over 998 octets; " + ll.evidence;
    ll.fix =
        "wrap the long lines, or give that part Content-Transfer-Encoding: quoted-printable "
        "or base64";
  }
  rows.push_back(ll);

  Row sz{"size",
         "",
         Verdict::kPass,
         std::to_string(rendered.size()) + " octets",
         "under 10 MB (Gmail and Outlook.com refuse messages over 25 MB; Gmail clips message "
         "bodies over 102 KB)",
         ""};
  if (rendered.size() > 25u * 1024 * 1024) {
    sz.verdict = Verdict::kFail;
    sz.fix = "link large files instead of attaching them";
  } else if (rendered.size() > 10u * 1024 * 1024) {
    sz.verdict = Verdict::kWarn;
    sz.fix = "link large files instead of attaching them";
  }
  rows.push_back(sz);
  return rows;
}

size_t ProviderShare::at_providers() const {
  size_t n = 0;
  for (const auto& [k, v] : by_provider) n += v;
  return n;
}

namespace {

const char* provider_by_domain(const std::string& d) {
  static const std::pair<const char*, const char*> kDomains[] = {
      {"gmail.com", "Gmail/Google"}, {"googlemail.com", "Gmail/Google"}, {"yahoo.com", "Yahoo/AOL"},
      {"ymail.com", "Yahoo/AOL"},    {"rocketmail.com", "Yahoo/AOL"},    {"aol.com", "Yahoo/AOL"},
      {"outlook.com", "Microsoft"},  {"hotmail.com", "Microsoft"},       {"live.com", "Microsoft"},
      {"msn.com", "Microsoft"},
  };
  for (const auto& [dom, p] : kDomains) {
    if (d == dom) return p;
  }
  // Country variants: yahoo.co.uk, hotmail.fr, outlook.de, ...
  std::string org = organizational_domain(d);
  std::string label = org.substr(0, org.find('.'));
  if (label == "yahoo") return "Yahoo/AOL";
  if (label == "hotmail" || label == "outlook" || label == "live") return "Microsoft";
  return nullptr;
}

const char* provider_by_mx(const std::string& host) {
  auto ends = [&](const std::string& s) {
    return host == s ||
           (host.size() > s.size() && host.compare(host.size() - s.size(), s.size(), s) == 0 &&
            host[host.size() - s.size() - 1] == '.');
  };
  if (ends("google.com") || ends("googlemail.com")) return "Gmail/Google";
  if (ends("yahoodns.net")) return "Yahoo/AOL";
  if (ends("protection.outlook.com") || ends("outlook.com")) return "Microsoft";
  return nullptr;
}

}  // namespace

void count_recipient(DomainCounts& counts, const std::string& email) {
  std::string d = domain_of(email);
  if (!d.empty()) ++counts[d];
}

std::vector<std::string> domains_by_count(const DomainCounts& counts) {
  std::vector<std::pair<size_t, std::string>> v;
  for (const auto& [d, n] : counts) v.push_back({n, d});
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::string> out;
  for (auto& [n, d] : v) out.push_back(std::move(d));
  return out;
}

Row check_recipients(const DomainCounts& domains, DnsSource& dns, size_t mx_sample,
                     ProviderShare* share_out) {
  ProviderShare share;
  std::map<std::string, size_t> others;
  for (const auto& [d, n] : domains) {
    share.total += n;
    if (const char* p = provider_by_domain(d)) {
      share.by_provider[p] += n;
    } else {
      others[d] = n;
    }
  }
  std::vector<std::pair<size_t, std::string>> common;
  for (const auto& [d, n] : others) common.push_back({n, d});
  std::sort(common.begin(), common.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  size_t sampled = 0;
  for (const auto& [n, d] : common) {
    if (sampled++ >= mx_sample) break;
    auto r = dns.lookup(d, dns::RecordType::kMx);
    if (!r.ok() || r->mx.empty()) continue;
    auto best = std::min_element(r->mx.begin(), r->mx.end(), [](const auto& a, const auto& b) {
      return a.preference < b.preference;
    });
    if (const char* p = provider_by_mx(best->exchange)) share.by_provider[p] += n;
  }
  size_t at = share.at_providers();
  Row row{"recipients", "", Verdict::kPass, "", "", ""};
  double pct = share.total ? 100.0 * static_cast<double>(at) / static_cast<double>(share.total) : 0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f%%", pct);
  row.evidence = std::to_string(at) + " of " + std::to_string(share.total) + " recipients (" + buf +
                 ") at Gmail, Yahoo or Microsoft";
  for (const auto& [p, n] : share.by_provider) row.evidence += "; " + p + " " + std::to_string(n);
  if (sampled > 0) {
    row.evidence += " (the " + std::to_string(std::min(sampled, mx_sample)) +
                    " most common other domains classified by their MX hosts)";
  }
  row.expected =
      "the bulk-sender rules (SPF, DKIM, DMARC, one-click unsubscribe, complaints "
      "under 0.3%) apply from 5,000 messages a day to one provider";
  if (at >= 5000) {
    row.verdict = Verdict::kWarn;
    row.evidence += ": the bulk-sender rules apply to this mailing";
    row.fix =
        "every FAIL above means rejections (550 5.7.26, 550 5.7.515) at these providers; "
        "spread the mailing over days with --daily-limit if warming up";
  }
  if (share_out != nullptr) *share_out = share;
  return row;
}

}  // namespace sb::doctor
