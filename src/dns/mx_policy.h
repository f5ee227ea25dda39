// MX policy without DNS: what an MX answer and its exchangers' addresses mean for delivery.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dns/answer_parser.h"

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
  bool implicit_mx = false;  // no MX records: the domain's own address (RFC 5321 §5.1)
  // Clock ms (MxResolverOptions::clock) until which this answer may be used; 0: not cached.
  uint64_t expires_ms = 0;
  std::vector<std::string> notes;  // CNAMEs followed, hosts skipped (for the log)
  bool ok() const { return status == MxStatus::kOk; }
};

// How long answers are kept.
struct TtlLimits {
  uint32_t min_ttl_s = 5;                // floor for every cached entry
  uint32_t max_ttl_s = 86400;            // cap for positive answers
  uint32_t max_negative_ttl_s = 3600;    // cap for NXDOMAIN/NODATA (RFC 2308 SOA minimum)
  uint32_t temporary_failure_ttl_s = 5;  // SERVFAIL/timeouts; 0 = never cached
};

// An answer's TTL clamped to [min, max] (max_negative for a negative answer). A negative
// answer without an SOA has no TTL (RFC 2308: do not cache): the floor only.
uint32_t clamp_ttl(std::optional<uint32_t> ttl, bool negative, const TtlLimits& limits);

// What an MX answer says: either the exchangers whose addresses to look up next (kOk), or a
// final result (NXDOMAIN, null MX, a server error).
struct MxPlan {
  MxStatus status = MxStatus::kOk;
  std::string message;  // for kPermanent/kTemporary
  uint32_t ttl_s = 0;   // the MX answer's clamped TTL, or how long to keep the failure
  bool implicit_mx = false;
  // Preference ascending, then name; each host once (its lowest preference), at most
  // max_hosts, no null MX. Addresses not filled in.
  std::vector<MailExchanger> candidates;
  std::vector<std::string> notes;  // CNAMEs followed, records ignored
};
MxPlan plan_mx(const Answer& a, const std::string& domain, size_t max_hosts,
               const TtlLimits& limits);

// What the A/AAAA lookups found for one exchanger (or the domain, for implicit MX).
struct HostAddresses {
  enum class State { kOk, kNone, kTemporary };
  State state = State::kNone;
  std::vector<IpAddress> addresses;
  std::string message;             // why there is no address
  std::vector<std::string> notes;  // CNAME followed
  uint32_t ttl_s = 0;
};

enum class AddressFamilies { kBoth, kIpv4Only, kIpv6Only };

// The final result once every candidate's addresses are known (hosts[i] is candidates[i]'s):
// kOk with the hosts that have addresses; otherwise kTemporary when a lookup failed or only
// our own family restriction left nothing, else kPermanent. `res` comes in with its domain,
// implicit_mx and notes. Returns how long the result may be kept.
uint32_t settle_mx(MxResult& res, const std::vector<MailExchanger>& candidates,
                   const std::vector<HostAddresses>& hosts, uint32_t mx_ttl_s,
                   AddressFamilies families, const TtlLimits& limits);

// RFC 5321 §5.1: hosts of equal preference in random order (each caller its own order), so
// load spreads over them. `hosts` is sorted by preference; `random` draws the shuffle.
void shuffle_equal_preferences(std::vector<MailExchanger>& hosts,
                               const std::function<uint64_t()>& random);

// Domains whose results share a route key have identical MX sets and may share one queue:
// "pref:host,pref:host" sorted by preference then name (so independent of the shuffle);
// "implicit:domain" for implicit MX; empty for a failed result.
std::string route_key(const MxResult& r);

}  // namespace sb::dns
