// MxResolver: MX, then A/AAAA per exchanger, classified into ok / permanent / temporary.
#include "dns/mx_resolver.h"

#include <idn2.h>
#include <uv.h>

#include <algorithm>
#include <climits>
#include <random>

#include "base/text.h"
#include "loop/worker.h"

namespace sb::dns {

// Addresses of one host (an MX target, or the domain itself for implicit MX).
struct MxResolver::HostEntry {
  enum class State { kOk, kNone, kTemporary };
  State state = State::kNone;
  std::vector<IpAddress> addresses;
  std::string message;             // why there is no address
  std::vector<std::string> notes;  // CNAME followed
  uint32_t ttl_s = 0;
  uint64_t expires_ms = 0;
};

struct MxResolver::HostJob {
  std::vector<std::function<void(const HostEntry&)>> waiters;
  HostEntry entry;
  std::optional<uint32_t> pos_ttl;
  std::optional<uint32_t> neg_ttl;
  bool temporary = false;
  int outstanding = 0;
};

struct MxResolver::Job {
  std::vector<MxCallback> waiters;
  MxResult result;
  std::vector<MailExchanger> candidates;
  std::vector<HostEntry> host_results;
  uint32_t ttl_s = UINT32_MAX;
  size_t outstanding = 0;
};

Result<std::string> normalise_domain(std::string_view domain) {
  auto fail = [&](const std::string& why) {
    return make_error(ErrDomain::kInput,
                      "invalid domain name '" + std::string(domain) + "': " + why);
  };
  std::string_view d = domain;
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.empty()) return fail("empty");
  std::string ascii;
  std::string lower = lower_ascii(d);
  // Plain LDH names skip libidn2: it would reject some legal host names (underscores, "--" in
  // positions 3–4) that are not IDNs at all. "xn--" labels are IDNs and are checked.
  if (is_ascii(lower) && lower.find("xn--") == std::string::npos) {
    ascii = std::move(lower);
  } else {
    std::string in(d);
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(in.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK) return fail(std::string("not a valid IDN (") + idn2_strerror(rc) + ")");
    ascii = out;
    idn2_free(out);
    for (char& c : ascii) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  if (ascii.size() > 253) return fail("longer than 253 octets");
  size_t start = 0;
  while (start <= ascii.size()) {
    size_t dot = ascii.find('.', start);
    size_t end = dot == std::string::npos ? ascii.size() : dot;
    size_t len = end - start;
    if (len == 0) return fail("empty label");
    if (len > 63) return fail("label longer than 63 octets");
    for (size_t i = start; i < end; ++i) {
      char c = ascii[i];
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) return fail("character not allowed in a host name");
    }
    if (ascii[start] == '-' || ascii[end - 1] == '-') return fail("label starts or ends with '-'");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return ascii;
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

MxResolver::MxResolver(uv_loop_s* loop, MxResolverOptions opts)
    : loop_(loop), opts_(std::move(opts)) {
  if (!opts_.random) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    opts_.random = [rng] { return (*rng)(); };
  }
}

Result<std::unique_ptr<MxResolver>> MxResolver::create(uv_loop_s* loop, const ResolverConfig& cfg,
                                                       MxResolverOptions opts) {
  if (opts.ipv4_only && opts.ipv6_only) {
    return make_error(ErrDomain::kConfig, "IPv4-only and IPv6-only exclude each other");
  }
  auto r = Resolver::create(loop, cfg);
  if (!r) return r.error();
  std::unique_ptr<MxResolver> m(new MxResolver(loop, std::move(opts)));
  m->resolver_ = std::move(r).value();
  m->timer_ = new uv_timer_t;
  uv_timer_init(loop, m->timer_);
  m->timer_->data = m.get();
  return m;
}

MxResolver::~MxResolver() { shutdown(); }

uint64_t MxResolver::now() const { return opts_.now_ms ? opts_.now_ms() : loop_now_ms(loop_); }

uint32_t MxResolver::clamp_ttl(std::optional<uint32_t> ttl, bool negative) const {
  uint32_t cap = negative ? opts_.max_negative_ttl_s : opts_.max_ttl_s;
  // No SOA on a negative answer (RFC 2308 says: don't cache): the floor only.
  uint32_t t = ttl.value_or(opts_.min_ttl_s);
  return std::clamp(t, opts_.min_ttl_s, std::max(cap, opts_.min_ttl_s));
}

bool MxResolver::resolve_mx(std::string_view domain_in, MxCallback cb) {
  auto fail_now = [&](MxStatus st, std::string domain, std::string msg) {
    auto r = std::make_shared<MxResult>();
    r->status = st;
    r->domain = std::move(domain);
    r->message = std::move(msg);
    schedule(std::move(cb), std::move(r));
  };
  if (shut_) return false;
  auto norm = normalise_domain(domain_in);
  if (!norm) {
    fail_now(MxStatus::kPermanent, std::string(domain_in), norm.error().message);
    return true;
  }
  const std::string& domain = norm.value();

  if (auto it = cache_.find(domain); it != cache_.end()) {
    if (now() < it->second.expires_ms) {
      schedule(std::move(cb), it->second.result);
      return true;
    }
    cache_.erase(it);
  }
  if (auto it = jobs_.find(domain); it != jobs_.end()) {
    it->second->waiters.push_back(std::move(cb));  // coalesced with the lookup in flight
    return true;
  }
  auto job = std::make_unique<Job>();
  job->waiters.push_back(std::move(cb));
  job->result.domain = domain;
  jobs_.emplace(domain, std::move(job));
  QueryId id = resolver_->query(domain, RecordType::kMx, [this, domain](Result<Answer> r) {
    on_mx_answer(domain, std::move(r));
  });
  if (id == 0) {
    MxResult res;
    res.domain = domain;
    res.status = MxStatus::kTemporary;
    res.message = "resolver shut down";
    finish(domain, std::move(res), 0);
  }
  return true;
}

void MxResolver::on_mx_answer(const std::string& domain, Result<Answer> r) {
  auto it = jobs_.find(domain);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  MxResult& res = job.result;
  auto fail = [&](MxStatus st, std::string msg, uint32_t ttl) {
    MxResult out = std::move(res);
    out.status = st;
    out.message = std::move(msg);
    finish(domain, std::move(out), ttl);
  };
  if (!r) return fail(MxStatus::kTemporary, r.error().message, opts_.temporary_failure_ttl_s);
  const Answer& a = r.value();
  for (size_t i = 0; i < a.cname_chain.size(); ++i) {
    res.notes.push_back((i == 0 ? domain : a.cname_chain[i - 1]) + " is an alias (CNAME) for " +
                        a.cname_chain[i] + "; followed");
  }
  if (a.rcode == Rcode::kNxDomain) {
    return fail(MxStatus::kPermanent, "domain " + domain + " does not exist (NXDOMAIN)",
                clamp_ttl(a.negative_ttl, true));
  }
  if (a.rcode != Rcode::kNoError) {
    return fail(MxStatus::kTemporary, "MX lookup for " + domain + ": " + rcode_name(a.rcode),
                opts_.temporary_failure_ttl_s);
  }

  if (a.mx.empty()) {
    // RFC 5321 §5.1: no MX records → the domain itself is the implicit MX, preference 0.
    res.implicit_mx = true;
    job.candidates.push_back(MailExchanger{a.canonical_name(), 0, {}});
    job.ttl_s = clamp_ttl(a.negative_ttl, true);
  } else {
    bool all_null =
        std::all_of(a.mx.begin(), a.mx.end(), [](const MxRecord& m) { return m.is_null(); });
    if (all_null) {
      return fail(MxStatus::kPermanent, "domain does not accept mail (null MX)",
                  clamp_ttl(a.min_ttl, false));
    }
    job.ttl_s = clamp_ttl(a.min_ttl, false);
    std::vector<MxRecord> mx = a.mx;
    std::sort(mx.begin(), mx.end(), [](const MxRecord& x, const MxRecord& y) {
      return x.preference != y.preference ? x.preference < y.preference : x.exchange < y.exchange;
    });
    for (const auto& m : mx) {
      if (m.is_null()) {
        res.notes.push_back("ignored a null MX (\".\") listed next to real MX records");
        continue;
      }
      bool dup = std::any_of(job.candidates.begin(), job.candidates.end(),
                             [&](const MailExchanger& e) { return e.host == m.exchange; });
      if (dup) continue;  // same host twice: keep its lowest preference
      if (job.candidates.size() >= opts_.max_hosts) {
        res.notes.push_back("more than " + std::to_string(opts_.max_hosts) +
                            " MX hosts; the rest ignored");
        break;
      }
      job.candidates.push_back(MailExchanger{m.exchange, m.preference, {}});
    }
  }
  job.host_results.resize(job.candidates.size());
  job.outstanding = job.candidates.size();
  // Copy the names first: lookup_host may complete synchronously from the host cache and
  // finish (erase) the job.
  std::vector<std::string> hosts;
  for (const auto& c : job.candidates) hosts.push_back(c.host);
  for (size_t i = 0; i < hosts.size(); ++i) {
    lookup_host(hosts[i], [this, domain, i](const HostEntry& e) { on_host_done(domain, i, e); });
  }
}

void MxResolver::lookup_host(const std::string& host, std::function<void(const HostEntry&)> cb) {
  if (auto it = host_cache_.find(host); it != host_cache_.end()) {
    if (now() < it->second->expires_ms) {
      auto keep = it->second;  // the callback may touch the cache
      cb(*keep);
      return;
    }
    host_cache_.erase(it);
  }
  if (auto it = host_jobs_.find(host); it != host_jobs_.end()) {
    it->second->waiters.push_back(std::move(cb));
    return;
  }
  auto hj = std::make_unique<HostJob>();
  hj->waiters.push_back(std::move(cb));
  std::vector<RecordType> types;
  if (!opts_.ipv6_only) types.push_back(RecordType::kA);
  if (!opts_.ipv4_only) types.push_back(RecordType::kAaaa);
  hj->outstanding = static_cast<int>(types.size());
  host_jobs_.emplace(host, std::move(hj));
  for (RecordType t : types) {
    QueryId id = resolver_->query(
        host, t, [this, host](Result<Answer> r) { on_host_answer(host, std::move(r)); });
    if (id == 0) on_host_answer(host, make_error(ErrDomain::kAres, "resolver shut down"));
  }
}

void MxResolver::on_host_answer(const std::string& host, Result<Answer> r) {
  auto it = host_jobs_.find(host);
  if (it == host_jobs_.end()) return;
  HostJob& hj = *it->second;
  HostEntry& e = hj.entry;
  auto add_msg = [&e](const std::string& m) {
    if (!e.message.empty()) e.message += "; ";
    e.message += m;
  };
  if (!r) {
    hj.temporary = true;
    add_msg(r.error().message);
  } else {
    const Answer& a = r.value();
    std::string type = record_type_name(static_cast<RecordType>(a.qtype));
    if (!a.cname_chain.empty() && e.notes.empty()) {
      e.notes.push_back("MX host " + host + " is a CNAME for " + a.canonical_name() +
                        " (RFC 2181 §10.3); followed");
    }
    if (a.rcode == Rcode::kNoError || a.rcode == Rcode::kNxDomain) {
      bool v6 = a.qtype == static_cast<uint16_t>(RecordType::kAaaa);
      for (const auto& ip : a.addresses) {
        if (ip.is_v6() == v6) e.addresses.push_back(ip);
      }
      if (a.addresses.empty()) {
        add_msg(type + " " + host + ": " +
                (a.rcode == Rcode::kNxDomain ? "NXDOMAIN" : "no record"));
        hj.neg_ttl = std::min(hj.neg_ttl.value_or(UINT32_MAX), clamp_ttl(a.negative_ttl, true));
      } else {
        hj.pos_ttl = std::min(hj.pos_ttl.value_or(UINT32_MAX), clamp_ttl(a.min_ttl, false));
      }
    } else {
      hj.temporary = true;
      add_msg(type + " lookup for " + host + ": " + rcode_name(a.rcode));
    }
  }
  if (--hj.outstanding > 0) return;

  // Both families answered: A before AAAA, whatever order the answers came in.
  std::stable_sort(e.addresses.begin(), e.addresses.end(),
                   [](const IpAddress& x, const IpAddress& y) { return !x.is_v6() && y.is_v6(); });
  uint32_t ttl;
  if (!e.addresses.empty()) {
    e.state = HostEntry::State::kOk;
    e.message.clear();
    ttl = std::min(hj.pos_ttl.value_or(UINT32_MAX), hj.neg_ttl.value_or(UINT32_MAX));
  } else if (hj.temporary) {
    e.state = HostEntry::State::kTemporary;
    ttl = opts_.temporary_failure_ttl_s;
  } else {
    e.state = HostEntry::State::kNone;
    ttl = hj.neg_ttl.value_or(opts_.min_ttl_s);
  }
  e.ttl_s = ttl;
  e.expires_ms = now() + uint64_t{ttl} * 1000;
  auto entry = std::make_shared<HostEntry>(std::move(e));
  auto waiters = std::move(hj.waiters);
  host_jobs_.erase(it);
  if (ttl > 0 && !shut_) host_cache_[host] = entry;
  for (auto& w : waiters) w(*entry);
}

void MxResolver::on_host_done(const std::string& domain, size_t index, const HostEntry& e) {
  auto it = jobs_.find(domain);
  if (it == jobs_.end()) return;
  Job& job = *it->second;
  job.host_results[index] = e;
  if (--job.outstanding > 0) return;

  MxResult res = std::move(job.result);
  uint32_t ttl = job.ttl_s;
  bool any_temporary = false;
  std::vector<std::string> why;
  for (size_t i = 0; i < job.candidates.size(); ++i) {
    const HostEntry& h = job.host_results[i];
    for (const auto& n : h.notes) res.notes.push_back(n);
    ttl = std::min(ttl, h.ttl_s);
    if (h.state == HostEntry::State::kOk) {
      MailExchanger mx = job.candidates[i];
      mx.addresses = h.addresses;
      res.hosts.push_back(std::move(mx));
      continue;
    }
    if (h.state == HostEntry::State::kTemporary) any_temporary = true;
    why.push_back(h.message);
    if (!res.implicit_mx) {
      res.notes.push_back("MX host " + job.candidates[i].host + " skipped: " + h.message);
    }
  }
  auto joined = [&why] {
    std::string s;
    for (const auto& w : why) s += (s.empty() ? "" : "; ") + w;
    return s;
  };
  std::string family = opts_.ipv4_only ? " IPv4" : opts_.ipv6_only ? " IPv6" : "n";
  if (!res.hosts.empty()) {
    res.status = MxStatus::kOk;
  } else if (any_temporary) {
    res.status = MxStatus::kTemporary;
    res.message = (res.implicit_mx ? "no MX records, and the address lookup failed: "
                                   : "no MX host could be resolved: ") +
                  joined();
    ttl = opts_.temporary_failure_ttl_s;
  } else if (opts_.ipv4_only || opts_.ipv6_only) {
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
  finish(domain, std::move(res), ttl);
}

void MxResolver::finish(const std::string& domain, MxResult result, uint32_t ttl_s) {
  auto it = jobs_.find(domain);
  if (it == jobs_.end()) return;
  auto waiters = std::move(it->second->waiters);
  jobs_.erase(it);
  if (ttl_s > 0 && !shut_) result.expires_ms = now() + uint64_t{ttl_s} * 1000;
  auto shared = std::make_shared<const MxResult>(std::move(result));
  if (ttl_s > 0 && !shut_) {
    cache_[domain] = CacheEntry{shared, now() + uint64_t{ttl_s} * 1000};
    // Drop expired entries now and then, so a long run over many domains stays bounded.
    if (++inserts_since_sweep_ >= 1024) {
      inserts_since_sweep_ = 0;
      uint64_t t = now();
      std::erase_if(cache_, [t](const auto& kv) { return kv.second.expires_ms <= t; });
      std::erase_if(host_cache_, [t](const auto& kv) { return kv.second->expires_ms <= t; });
    }
  }
  for (auto& w : waiters) schedule(std::move(w), shared);
}

void MxResolver::schedule(MxCallback cb, std::shared_ptr<const MxResult> r) {
  ready_.emplace_back(std::move(cb), std::move(r));
  if (timer_ != nullptr && !shut_) uv_timer_start(timer_, &MxResolver::on_timer, 0, 0);
}

void MxResolver::on_timer(uv_timer_t* t) {
  auto* self = static_cast<MxResolver*>(t->data);
  if (self != nullptr) self->flush_ready();
}

void MxResolver::flush_ready() {
  while (!ready_.empty()) {
    auto batch = std::move(ready_);
    ready_.clear();
    for (auto& [cb, r] : batch) {
      if (r->ok() && r->hosts.size() > 1) {
        // RFC 5321 §5.1: spread load over equal preferences; each caller gets its own order.
        MxResult copy = *r;
        auto& h = copy.hosts;
        for (size_t lo = 0; lo < h.size();) {
          size_t hi = lo;
          while (hi < h.size() && h[hi].preference == h[lo].preference) ++hi;
          for (size_t i = hi - 1; i > lo; --i) {
            size_t j = lo + static_cast<size_t>(opts_.random() % (i - lo + 1));
            std::swap(h[i], h[j]);
          }
          lo = hi;
        }
        cb(copy);
      } else {
        cb(*r);
      }
    }
  }
}

void MxResolver::shutdown() {
  if (shut_) return;
  shut_ = true;
  // The Resolver fails whatever is in flight; those failures finish our jobs (temporary).
  if (resolver_) resolver_->shutdown();
  while (!jobs_.empty()) {  // anything the resolver did not complete (should be none)
    std::string d = jobs_.begin()->first;
    MxResult res;
    res.domain = d;
    res.status = MxStatus::kTemporary;
    res.message = "resolver shut down";
    finish(d, std::move(res), 0);
  }
  host_jobs_.clear();
  if (timer_ != nullptr) {
    uv_timer_stop(timer_);
    timer_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  flush_ready();
  cache_.clear();
  host_cache_.clear();
}

}  // namespace sb::dns
