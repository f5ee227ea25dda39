// MxResolver: a recipient domain → its sorted, address-resolved mail exchangers (RFC 5321 §5.1),
// with IDNA, null MX (RFC 7505), caching by TTL and coalescing of concurrent lookups.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dns/answer_parser.h"
#include "dns/resolver.h"
#include "base/result.h"

struct uv_loop_s;
struct uv_timer_s;

namespace sb::dns {

// kPermanent: the domain cannot receive mail (bounce). kTemporary: try later (never a bounce).
enum class MxStatus { kOk, kPermanent, kTemporary };

struct MailExchanger {
  std::string host;  // ASCII, lower case, no trailing dot; for implicit MX, the domain itself
  uint16_t preference = 0;
  std::vector<IpAddress> addresses;  // A records first, then AAAA (per the family flags)
};

struct MxResult {
  MxStatus status = MxStatus::kTemporary;
  std::string domain;   // the A-label (ASCII) form that was looked up
  std::string message;  // for kPermanent/kTemporary: what a user (or a DSN) should read
  // Usable exchangers, preference ascending; equal preferences in random order.
  std::vector<MailExchanger> hosts;
  bool implicit_mx = false;        // no MX records: the domain's own address (RFC 5321 §5.1)
  // Loop ms (MxResolverOptions::now_ms) until which this answer may be used; 0: not cached.
  uint64_t expires_ms = 0;
  std::vector<std::string> notes;  // CNAMEs followed, hosts skipped (for the log)
  bool ok() const { return status == MxStatus::kOk; }
};

struct MxResolverOptions {
  bool ipv4_only = false;                // look up A only
  bool ipv6_only = false;                // look up AAAA only
  uint32_t min_ttl_s = 5;                // floor for every cached entry
  uint32_t max_ttl_s = 86400;            // cap for positive answers
  uint32_t max_negative_ttl_s = 3600;    // cap for NXDOMAIN/NODATA (RFC 2308 SOA minimum)
  uint32_t temporary_failure_ttl_s = 5;  // SERVFAIL/timeouts; 0 = never cached
  size_t max_hosts = 16;                 // MX hosts looked at per domain, lowest preferences
  std::function<uint64_t()> random;      // shuffles equal preferences; default: seeded mt19937_64
  std::function<uint64_t()> now_ms;      // default: the loop's clock
};

using MxCallback = std::function<void(const MxResult&)>;

// One per worker loop; not thread-safe. Callbacks run on the loop, never inside resolve_mx().
class MxResolver {
 public:
  static Result<std::unique_ptr<MxResolver>> create(uv_loop_s* loop, const ResolverConfig& cfg,
                                                    MxResolverOptions opts = {});
  ~MxResolver();  // shutdown(); must not run inside one of this resolver's callbacks
  MxResolver(const MxResolver&) = delete;
  MxResolver& operator=(const MxResolver&) = delete;

  // `domain` may be UTF-8 (IDNA2008 non-transitional → A-labels) and may end in a dot.
  // `cb` runs exactly once, on the loop. Lookups for a domain already in flight are joined.
  // Returns false (and never calls `cb`) only after shutdown().
  bool resolve_mx(std::string_view domain, MxCallback cb);
  // Completes every pending lookup now, inside this call, with kTemporary ("resolver shut
  // down") and closes the handles (freed by the loop's close callbacks).
  void shutdown();

  Resolver& resolver() { return *resolver_; }  // for TXT/TLSA lookups on the same channel
  size_t cached_domains() const { return cache_.size(); }
  size_t in_flight() const { return jobs_.size(); }

 private:
  struct Job;
  struct HostEntry;
  struct HostJob;
  struct CacheEntry {
    std::shared_ptr<const MxResult> result;
    uint64_t expires_ms;
  };
  MxResolver(uv_loop_s* loop, MxResolverOptions opts);
  void on_mx_answer(const std::string& domain, Result<Answer> r);
  void lookup_host(const std::string& host, std::function<void(const HostEntry&)> cb);
  void on_host_answer(const std::string& host, Result<Answer> r);
  void on_host_done(const std::string& domain, size_t index, const HostEntry& e);
  void finish(const std::string& domain, MxResult result, uint32_t ttl_s);
  void schedule(MxCallback cb, std::shared_ptr<const MxResult> r);
  void flush_ready();
  static void on_timer(uv_timer_s* t);
  uint64_t now() const;
  uint32_t clamp_ttl(std::optional<uint32_t> ttl, bool negative) const;

  uv_loop_s* loop_;
  MxResolverOptions opts_;
  std::unique_ptr<Resolver> resolver_;
  uv_timer_s* timer_ = nullptr;
  std::unordered_map<std::string, CacheEntry> cache_;
  std::unordered_map<std::string, std::unique_ptr<Job>> jobs_;
  std::unordered_map<std::string, std::shared_ptr<HostEntry>> host_cache_;
  std::unordered_map<std::string, std::unique_ptr<HostJob>> host_jobs_;
  std::vector<std::pair<MxCallback, std::shared_ptr<const MxResult>>> ready_;
  size_t inserts_since_sweep_ = 0;
  bool shut_ = false;
};

// IDNA2008 (UTS #46 non-transitional, libidn2) to lower-case A-labels, trailing dot dropped,
// lengths checked (RFC 1035: 63 per label, 253 in all). An error's message names the domain.
Result<std::string> normalise_domain(std::string_view domain);

// Domains whose results share a route key have identical MX sets and may share one queue:
// "pref:host,pref:host" sorted by preference then name (so independent of the shuffle);
// "implicit:domain" for implicit MX; empty for a failed result.
std::string route_key(const MxResult& r);

}  // namespace sb::dns
