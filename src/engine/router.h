// Router: --direct routing of a recipient's domain: queue here, hand over to the worker owning
// its destination, or look it up first. Returns decisions; never calls back into the worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dns/mx_resolver.h"

namespace sb {

class Destination;
struct Job;

// The worker that owns a destination: every domain of one MX set is queued, and its
// connections counted, on one loop.
size_t owner_of_route(const std::string& route_key, size_t workers);

struct RouteDecision {
  enum class Kind { kQueueHere, kHandOver, kLookup };
  Kind kind = Kind::kLookup;
  Destination* dest = nullptr;              // kQueueHere
  const std::string* alabel = nullptr;      // kQueueHere: the A-label domain for RCPT TO, or null
  size_t owner = 0;                         // kHandOver
  std::shared_ptr<const dns::MxResult> mx;  // kHandOver: the answer, for the owner
};

// Where an MX answer sends a domain's recipients from worker `self` of `workers`.
struct ResolvedRoute {
  std::string key;  // the route key (dns::route_key): one destination per key
  size_t owner = 0;
  bool here = false;   // owner == self
  std::string alabel;  // the A-label domain when the domain is not ASCII (RCPT TO), else ""
};
ResolvedRoute resolve_route(const std::string& domain, const dns::MxResult& r, size_t self,
                            size_t workers);

class Router {
 public:
  // A domain routed before and still within its DNS TTL skips the resolver (a lookup per
  // domain per batch was most of the DNS cost).
  RouteDecision route(const std::string& domain, uint64_t now_ms);
  // Remembers an answer until it expires (expires_ms 0: not cached).
  void learn_here(const std::string& domain, Destination* d, std::string alabel,
                  uint64_t expires_ms);
  void learn_elsewhere(const std::string& domain, size_t owner,
                       std::shared_ptr<const dns::MxResult> mx, uint64_t expires_ms);

  // Recipients waiting for their domain's lookup. True when `j` is the first (the caller
  // starts the lookup; later ones join it).
  bool wait_for_lookup(const std::string& domain, Job* j);
  // The recipients waiting for `domain`; false when none (dropped by a stop).
  bool take_waiting(const std::string& domain, std::vector<Job*>& out);
  // Every waiting recipient (a stop); nothing waits afterwards.
  void take_all_waiting(std::vector<Job*>& out);
  bool lookups_pending() const { return !lookups_.empty(); }
  size_t cached() const { return routes_.size(); }

 private:
  struct Route {
    Destination* dest;   // null: the domain belongs to worker `owner`
    std::string alabel;  // the A-label domain for RCPT TO when the domain is not ASCII
    uint64_t expires_ms;
    size_t owner = 0;
    std::shared_ptr<const dns::MxResult> mx;  // for the owner, when dest is null
  };
  void bound();
  std::unordered_map<std::string, Route> routes_;
  std::unordered_map<std::string, std::vector<Job*>> lookups_;
};

}  // namespace sb
