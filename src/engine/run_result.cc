// Small helpers of the run's result: UTC times, the account key.
#include "engine/run_result.h"

#include <cctype>
#include <ctime>

namespace sb {

std::string iso_utc(uint64_t wall_ms) {
  time_t t = static_cast<time_t>(wall_ms / 1000);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string account_key(const std::string& user, const std::string& envelope_from,
                        const std::string& relay_host, bool direct) {
  // ASCII case does not make another mailbox (News@Example.com is news@example.com to every
  // provider we know of), so it must not make another quota either.
  std::string key = direct ? envelope_from + " direct"
                           : (user.empty() ? envelope_from : user) + " at " + relay_host;
  for (char& c : key) {
    if (static_cast<unsigned char>(c) < 0x80) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return key;
}

nlohmann::json throttle_json(const ThrottleSnapshot& s) {
  nlohmann::json j;
  j["configured_rate_per_s"] = s.configured_rate_per_s;
  j["adaptive_rate_per_s"] = s.adaptive_rate_per_s;
  j["current_rate_per_s"] = s.current_rate_per_s;
  if (s.next_send_at != 0) {
    j["next_send_at"] = iso_utc(s.next_send_at);
    j["blocked_by"] = limit_name(s.blocked_by);
  } else {
    j["next_send_at"] = nullptr;
    j["blocked_by"] = nullptr;
  }
  j["daily_limit"] = s.daily_limit;
  j["daily_count"] = s.daily_count;
  j["block_size"] = s.block_size;
  j["block_sent"] = s.block_sent;
  j["paused_until"] = s.paused_until != 0 ? nlohmann::json(iso_utc(s.paused_until)) : nullptr;
  j["pushbacks"] = s.pushbacks;
  j["slowdowns"] = s.slowdowns;
  j["quota_replies"] = s.quota_replies;
  j["quota_pauses"] = s.quota_pauses;
  j["rate_cuts"] = s.rate_cuts;
  return j;
}

}  // namespace sb
