// Provider preset table and lookup; limits from the providers' published documentation.
#include "throttle/presets.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include "base/text.h"

namespace sb {
namespace {

const std::vector<Preset>& table() {
  static const std::vector<Preset> kTable = {
      {"office365", "smtp.office365.com", 587, "starttls", "30/min", 10'000,
       "Exchange Online: 30 messages a minute, 10,000 recipients per rolling 24 h per mailbox, "
       "at most 1,000 recipients a message; Basic authentication (a password) for SMTP AUTH "
       "is disabled by default from the end of December 2026: use --oauth-token-cmd "
       "(XOAUTH2); SMTP AUTH must be enabled for the mailbox; --tenant-licences N caps the "
       "daily limit at the tenant's external recipient limit (500 x N^0.7 + 9,500)",
       1'000, 0},
      {"gmail", "smtp.gmail.com", 587, "starttls", "", 2'000,
       "Google Workspace over SMTP: 100 recipients a message, 2,000 messages and 10,000 "
       "recipients per rolling 24 h (one recipient a message: the 2,000 binds; consumer "
       "Gmail: 500); 550 5.4.5 means the day's quota is spent; use --oauth-token-cmd "
       "(XOAUTH2) or an app password",
       100, 2'000},
      {"ses-REGION", "email-smtp.REGION.amazonaws.com", 587, "starttls", "14/s", 0,
       "Amazon SES: the account's maximum send rate (14/s is a common production start; "
       "sandbox accounts get 1/s and 200 a day) — set --rate and --daily-limit to your quota"},
  };
  return kTable;
}

bool valid_region(std::string_view r) {
  // AWS region names: letters, digits and dashes, like us-east-1 or ap-southeast-2.
  if (r.empty() || r.size() > 32 || r.front() == '-' || r.back() == '-') return false;
  return std::all_of(r.begin(), r.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

std::string known_names() {
  std::string out;
  for (const Preset& p : table()) out += (out.empty() ? "" : ", ") + p.name;
  return out;
}

}  // namespace

std::span<const Preset> preset_table() { return table(); }

Result<Preset> find_preset(std::string_view name) {
  const std::string n = lower_ascii(name);
  for (const Preset& p : table()) {
    if (p.name == n) {
      if (p.name == "ses-REGION") break;
      return p;
    }
  }
  constexpr std::string_view kSes = "ses-";
  if (n.substr(0, kSes.size()) == kSes) {
    const std::string region = n.substr(kSes.size());
    if (!valid_region(region) || region == "region") {
      return make_error(
          ErrDomain::kConfig,
          "preset \"" + std::string(name) + "\": expected ses-<aws region>, e.g. ses-us-east-1");
    }
    Preset p = *std::find_if(table().begin(), table().end(),
                             [](const Preset& t) { return t.name == "ses-REGION"; });
    p.name = n;
    p.host = "email-smtp." + region + ".amazonaws.com";
    return p;
  }
  return make_error(ErrDomain::kConfig,
                    "unknown preset \"" + std::string(name) + "\" (known: " + known_names() + ")");
}

void apply_preset(const Preset& p, ThrottleFlags& flags) {
  if (flags.rate.empty()) flags.rate = p.rate;
  if (flags.daily_limit == 0) flags.daily_limit = p.daily_limit;
}

uint64_t office365_tenant_limit(uint64_t licences) {
  if (licences == 0) return 0;
  return static_cast<uint64_t>(500.0 * std::pow(static_cast<double>(licences), 0.7)) + 9'500;
}

}  // namespace sb
