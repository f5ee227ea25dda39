// Provider presets (--preset office365|gmail|ses-REGION): relay, TLS and sending limits.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "throttle/throttle.h"

namespace sb {

// Plain data; the CLI turns it into relay and throttle settings. Values a flag or config file
// sets explicitly win over the preset (see apply_preset).
struct Preset {
  std::string name;
  std::string host;
  uint16_t port = 0;
  std::string tls;           // "starttls" | "implicit" | "none", as --tls takes it
  std::string rate;          // --rate form, "" for none
  uint64_t daily_limit = 0;  // recipients per rolling 24 h; 0 = none
  std::string notes;         // shown by `smtpblast presets`
  // Recipients one message may carry over the provider's SMTP (0: no limit of its own).
  // smtpblast sends one recipient a message through a relay; grouping never exceeds this.
  uint32_t max_rcpts_per_msg = 0;
  // Messages per rolling 24 h when the provider counts them apart from recipients (0: none).
  // With one recipient a message, daily_limit (recipients) set to this number enforces both.
  uint64_t daily_messages = 0;
};

// The table, for listing. "ses-REGION" appears once with REGION unexpanded.
std::span<const Preset> preset_table();

// "office365", "gmail", "ses-eu-west-1", ...; case-insensitive. Error names the preset and
// lists the known ones.
Result<Preset> find_preset(std::string_view name);

// Fills the throttle flags the user left unset from the preset.
void apply_preset(const Preset& p, ThrottleFlags& flags);

// Office 365's tenant-wide external recipient limit a day: 500 x licences^0.7 + 9,500
// (rounded down), for --tenant-licences N; 0 for 0 licences.
uint64_t office365_tenant_limit(uint64_t licences);

}  // namespace sb
