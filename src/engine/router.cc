// The --direct route cache and the routing decisions.
#include "engine/router.h"

#include <functional>

#include "engine/job.h"

namespace sb {

size_t owner_of_route(const std::string& route_key, size_t workers) {
  return std::hash<std::string>{}(route_key) % workers;
}

ResolvedRoute resolve_route(const std::string& domain, const dns::MxResult& r, size_t self,
                            size_t workers) {
  ResolvedRoute out;
  out.key = dns::route_key(r);
  out.owner = owner_of_route(out.key, workers);
  out.here = out.owner == self;
  // The RCPT address carries the A-label domain, so an IDN domain needs no SMTPUTF8.
  if (!is_ascii(domain)) out.alabel = r.domain;
  return out;
}

RouteDecision Router::route(const std::string& domain, uint64_t now_ms) {
  RouteDecision d;
  if (auto m = routes_.find(domain); m != routes_.end()) {
    if (m->second.expires_ms > now_ms) {
      if (m->second.dest == nullptr) {
        d.kind = RouteDecision::Kind::kHandOver;
        d.owner = m->second.owner;
        d.mx = m->second.mx;
        return d;
      }
      d.kind = RouteDecision::Kind::kQueueHere;
      d.dest = m->second.dest;
      d.alabel = m->second.alabel.empty() ? nullptr : &m->second.alabel;
      return d;
    }
    routes_.erase(m);
  }
  d.kind = RouteDecision::Kind::kLookup;
  return d;
}

void Router::bound() {
  if (routes_.size() >= 100000) routes_.clear();  // bounded; the resolver keeps its cache
}

void Router::learn_here(const std::string& domain, Destination* d, std::string alabel,
                        uint64_t expires_ms) {
  bound();
  if (expires_ms > 0) routes_[domain] = Route{d, std::move(alabel), expires_ms};
}

void Router::learn_elsewhere(const std::string& domain, size_t owner,
                             std::shared_ptr<const dns::MxResult> mx, uint64_t expires_ms) {
  bound();
  if (expires_ms > 0)
    routes_[domain] = Route{nullptr, std::string(), expires_ms, owner, std::move(mx)};
}

bool Router::wait_for_lookup(const std::string& domain, Job* j) {
  auto [it, first] = lookups_.try_emplace(domain);
  it->second.push_back(j);
  return first;
}

bool Router::take_waiting(const std::string& domain, std::vector<Job*>& out) {
  auto it = lookups_.find(domain);
  if (it == lookups_.end()) return false;
  out = std::move(it->second);
  lookups_.erase(it);
  return true;
}

void Router::take_all_waiting(std::vector<Job*>& out) {
  for (auto& [domain, jobs] : lookups_) out.insert(out.end(), jobs.begin(), jobs.end());
  lookups_.clear();
}

}  // namespace sb
