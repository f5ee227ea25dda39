// MxResolver: a recipient domain → its sorted, address-resolved mail exchangers (RFC 5321 §5.1):
// the lookups, IDNA, caching by TTL and coalescing; what the answers mean is dns/mx_policy.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "dns/answer_parser.h"
#include "dns/mx_policy.h"
#include "dns/resolver.h"
#include "loop/loop_clock.h"
#include "loop/timer.h"

struct uv_loop_s;

namespace sb::dns {

struct MxResolverOptions {
  bool ipv4_only = false;                // look up A only
  bool ipv6_only = false;                // look up AAAA only
  TtlLimits ttl;
  size_t max_hosts = 16;                 // MX hosts looked at per domain, lowest preferences
  std::function<uint64_t()> random;      // shuffles equal preferences; default: seeded mt19937_64
  const Clock* clock = nullptr;          // mono_ms for TTLs; default: the loop's (LoopClock)
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
  uint64_t now() const;
  uint32_t clamp(std::optional<uint32_t> ttl, bool negative) const {
    return clamp_ttl(ttl, negative, opts_.ttl);
  }

  MxResolverOptions opts_;
  LoopClock loop_clock_;
  const Clock& clock_;  // opts_.clock or loop_clock_
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<Timer> timer_;  // null once shut down
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

}  // namespace sb::dns
