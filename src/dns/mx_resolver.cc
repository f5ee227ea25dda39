// MxResolver: MX, then A/AAAA per exchanger, classified into ok / permanent / temporary.
#include "dns/mx_resolver.h"

#include <idn2.h>

#include <algorithm>
#include <climits>
#include <random>

#include "base/text.h"

namespace sb::dns {

// Addresses of one host (an MX target, or the domain itself for implicit MX), as cached.
struct MxResolver::HostEntry : HostAddresses {
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
  std::vector<HostAddresses> host_results;
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

MxResolver::MxResolver(uv_loop_s* loop, MxResolverOptions opts)
    : opts_(std::move(opts)),
      loop_clock_(loop),
      clock_(opts_.clock != nullptr ? *opts_.clock : loop_clock_) {
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
  MxResolver* self = m.get();
  m->timer_ = std::make_unique<Timer>(loop, [self] { self->flush_ready(); });
  return m;
}

MxResolver::~MxResolver() { shutdown(); }

uint64_t MxResolver::now() const { return clock_.mono_ms(); }

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
  if (!r) return fail(MxStatus::kTemporary, r.error().message, opts_.ttl.temporary_failure_ttl_s);
  MxPlan plan = plan_mx(r.value(), domain, opts_.max_hosts, opts_.ttl);
  for (auto& n : plan.notes) res.notes.push_back(std::move(n));
  if (plan.status != MxStatus::kOk) return fail(plan.status, std::move(plan.message), plan.ttl_s);
  res.implicit_mx = plan.implicit_mx;
  job.candidates = std::move(plan.candidates);
  job.ttl_s = plan.ttl_s;
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
        hj.neg_ttl = std::min(hj.neg_ttl.value_or(UINT32_MAX), clamp(a.negative_ttl, true));
      } else {
        hj.pos_ttl = std::min(hj.pos_ttl.value_or(UINT32_MAX), clamp(a.min_ttl, false));
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
    ttl = opts_.ttl.temporary_failure_ttl_s;
  } else {
    e.state = HostEntry::State::kNone;
    ttl = hj.neg_ttl.value_or(opts_.ttl.min_ttl_s);
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
  AddressFamilies families = opts_.ipv4_only   ? AddressFamilies::kIpv4Only
                             : opts_.ipv6_only ? AddressFamilies::kIpv6Only
                                               : AddressFamilies::kBoth;
  uint32_t ttl = settle_mx(res, job.candidates, job.host_results, job.ttl_s, families, opts_.ttl);
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
  if (timer_ != nullptr && !shut_) timer_->again(0);
}

void MxResolver::flush_ready() {
  while (!ready_.empty()) {
    auto batch = std::move(ready_);
    ready_.clear();
    for (auto& [cb, r] : batch) {
      if (r->ok() && r->hosts.size() > 1) {
        MxResult copy = *r;  // each caller gets its own order
        shuffle_equal_preferences(copy.hosts, opts_.random);
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
  timer_.reset();  // closed now, freed by the loop's close callback
  flush_ready();
  cache_.clear();
  host_cache_.clear();
}

}  // namespace sb::dns
