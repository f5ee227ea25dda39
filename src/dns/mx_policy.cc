// MX policy without DNS: what an MX answer and its exchangers' addresses mean for delivery.
#include "dns/mx_policy.h"

#include <algorithm>
#include <climits>

namespace sb::dns {

uint32_t clamp_ttl(std::optional<uint32_t> ttl, bool negative, const TtlLimits& limits) {
  uint32_t cap = negative ? limits.max_negative_ttl_s : limits.max_ttl_s;
  uint32_t t = ttl.value_or(limits.min_ttl_s);
  return std::clamp(t, limits.min_ttl_s, std::max(cap, limits.min_ttl_s));
}

MxPlan plan_mx(const Answer& a, const std::string& domain, size_t max_hosts,
               const TtlLimits& limits) {
  MxPlan p;
  for (size_t i = 0; i < a.cname_chain.size(); ++i) {
    p.notes.push_back((i == 0 ? domain : a.cname_chain[i - 1]) + " is an alias (CNAME) for " +
                      a.cname_chain[i] + "; followed");
  }
  auto fail = [&](MxStatus st, std::string msg, uint32_t ttl) {
    p.status = st;
    p.message = std::move(msg);
    p.ttl_s = ttl;
    return std::move(p);
  };
  if (a.rcode == Rcode::kNxDomain) {
    return fail(MxStatus::kPermanent, "domain " + domain + " does not exist (NXDOMAIN)",
                clamp_ttl(a.negative_ttl, true, limits));
  }
  if (a.rcode != Rcode::kNoError) {
    return fail(MxStatus::kTemporary, "MX lookup for " + domain + ": " + rcode_name(a.rcode),
                limits.temporary_failure_ttl_s);
  }
  if (a.mx.empty()) {
    // RFC 5321 §5.1: no MX records → the domain itself is the implicit MX, preference 0.
    p.implicit_mx = true;
    p.candidates.push_back(MailExchanger{a.canonical_name(), 0, {}});
    p.ttl_s = clamp_ttl(a.negative_ttl, true, limits);
    return p;
  }
  bool all_null =
      std::all_of(a.mx.begin(), a.mx.end(), [](const MxRecord& m) { return m.is_null(); });
  if (all_null) {
    return fail(MxStatus::kPermanent, "domain does not accept mail (null MX)",
                clamp_ttl(a.min_ttl, false, limits));
  }
  p.ttl_s = clamp_ttl(a.min_ttl, false, limits);
  std::vector<MxRecord> mx = a.mx;
  std::sort(mx.begin(), mx.end(), [](const MxRecord& x, const MxRecord& y) {
    return x.preference != y.preference ? x.preference < y.preference : x.exchange < y.exchange;
  });
  for (const auto& m : mx) {
    if (m.is_null()) {
      p.notes.push_back("ignored a null MX (\".\") listed next to real MX records");
      continue;
    }
    bool dup = std::any_of(p.candidates.begin(), p.candidates.end(),
                           [&](const MailExchanger& e) { return e.host == m.exchange; });
    if (dup) continue;  // same host twice: keep its lowest preference
    if (p.candidates.size() >= max_hosts) {
      p.notes.push_back("more than " + std::to_string(max_hosts) + " MX hosts; the rest ignored");
      break;
    }
    p.candidates.push_back(MailExchanger{m.exchange, m.preference, {}});
  }
  return p;
}

uint32_t settle_mx(MxResult& res, const std::vector<MailExchanger>& candidates,
                   const std::vector<HostAddresses>& hosts, uint32_t mx_ttl_s,
                   AddressFamilies families, const TtlLimits& limits) {
  uint32_t ttl = mx_ttl_s;
  bool any_temporary = false;
  std::vector<std::string> why;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const HostAddresses& h = hosts[i];
    for (const auto& n : h.notes) res.notes.push_back(n);
    ttl = std::min(ttl, h.ttl_s);
    if (h.state == HostAddresses::State::kOk) {
      MailExchanger mx = candidates[i];
      mx.addresses = h.addresses;
      res.hosts.push_back(std::move(mx));
      continue;
    }
    if (h.state == HostAddresses::State::kTemporary) any_temporary = true;
    why.push_back(h.message);
    if (!res.implicit_mx) {
      res.notes.push_back("MX host " + candidates[i].host + " skipped: " + h.message);
    }
  }
  auto joined = [&why] {
    std::string s;
    for (const auto& w : why) s += (s.empty() ? "" : "; ") + w;
    return s;
  };
  bool v4_only = families == AddressFamilies::kIpv4Only;
  bool v6_only = families == AddressFamilies::kIpv6Only;
  std::string family = v4_only ? " IPv4" : v6_only ? " IPv6" : "n";
  if (!res.hosts.empty()) {
    res.status = MxStatus::kOk;
  } else if (any_temporary) {
    res.status = MxStatus::kTemporary;
    res.message = (res.implicit_mx ? "no MX records, and the address lookup failed: "
                                   : "no MX host could be resolved: ") +
                  joined();
    ttl = limits.temporary_failure_ttl_s;
  } else if (v4_only || v6_only) {
    // Only our own family restriction stands between us and the domain: not the recipient's
    // fault, so never a bounce.
    res.status = MxStatus::kTemporary;
    res.message = "no" + family + " address for " +
                  (res.implicit_mx ? "the domain (no MX records)" : "any MX host") + ": " +
                  joined();
  } else {
    // Every host answered authoritatively that it has no address (Postfix: 5.4.4).
    res.status = MxStatus::kPermanent;
    res.message = res.implicit_mx ? "no MX and no address for " + res.domain
                                  : "no MX host of " + res.domain + " has an address: " + joined();
  }
  return ttl;
}

void shuffle_equal_preferences(std::vector<MailExchanger>& hosts,
                               const std::function<uint64_t()>& random) {
  for (size_t lo = 0; lo < hosts.size();) {
    size_t hi = lo;
    while (hi < hosts.size() && hosts[hi].preference == hosts[lo].preference) ++hi;
    for (size_t i = hi - 1; i > lo; --i) {
      size_t j = lo + static_cast<size_t>(random() % (i - lo + 1));
      std::swap(hosts[i], hosts[j]);
    }
    lo = hi;
  }
}

std::string route_key(const MxResult& r) {
  if (!r.ok()) return {};
  if (r.implicit_mx) return "implicit:" + r.domain;
  std::vector<std::pair<uint16_t, std::string>> v;
  for (const auto& h : r.hosts) v.emplace_back(h.preference, h.host);
  std::sort(v.begin(), v.end());
  std::string key;
  for (const auto& [pref, host] : v) {
    if (!key.empty()) key.push_back(',');
    key += std::to_string(pref) + ":" + host;
  }
  return key;
}

}  // namespace sb::dns
