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
  std::string notes;         // shown by `smtpblast send --preset list`
};

// The table, for listing. "ses-REGION" appears once with REGION unexpanded.
std::span<const Preset> preset_table();

// "office365", "gmail", "ses-eu-west-1", ...; case-insensitive. Error names the preset and
// lists the known ones.
Result<Preset> find_preset(std::string_view name);

// Fills the throttle flags the user left unset from the preset.
void apply_preset(const Preset& p, ThrottleFlags& flags);

}  // namespace sb
