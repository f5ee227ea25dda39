// RunShared: the account allowance and the statistics workers add up.
#include "engine/run_shared.h"

#include "engine/channel.h"

namespace sb {

bool RunShared::take_allowance(uint64_t n, uint64_t* resume_at) {
  int64_t have = allowance_.load(std::memory_order_acquire);
  while (have >= static_cast<int64_t>(n)) {
    if (allowance_.compare_exchange_weak(have, have - static_cast<int64_t>(n))) return true;
  }
  *resume_at = account_resume_at_.load(std::memory_order_acquire);
  if (*resume_at == 0 && !topup_wanted_.exchange(true)) inbox_.wake();
  return false;
}

void RunShared::add_pushback_stats(const ThrottleSnapshot& s) {
  std::lock_guard<std::mutex> g(mu_);
  ++pushed_dests_;
  dest_push_.pushbacks += s.pushbacks;
  dest_push_.slowdowns += s.slowdowns;
  dest_push_.quota_replies += s.quota_replies;
  dest_push_.quota_pauses += s.quota_pauses;
  dest_push_.rate_cuts += s.rate_cuts;
}

void RunShared::add_dns_stats(const DnsStats& s) {
  std::lock_guard<std::mutex> g(mu_);
  dns_.lookups += s.lookups;
  dns_.queries += s.queries;
  dns_.cpu_ns += s.cpu_ns;
  dns_.domains += s.domains;
  dns_.handed_over += s.handed_over;
}

ThrottleSnapshot RunShared::pushback() const {
  std::lock_guard<std::mutex> g(mu_);
  return dest_push_;
}

uint64_t RunShared::pushed_dests() const {
  std::lock_guard<std::mutex> g(mu_);
  return pushed_dests_;
}

DnsStats RunShared::dns() const {
  std::lock_guard<std::mutex> g(mu_);
  return dns_;
}

}  // namespace sb
