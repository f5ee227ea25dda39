// Rate and duration text ("30/min", "1.5/s", "90s", "1h30m") parsed into exact integer forms.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb {

// "count messages per period_ms", kept as two integers so the limiters can be exact: 1.5/s is
// stored as 3 per 2000 ms, not as a double, so "at most N in any window" has no rounding.
struct RateSpec {
  uint64_t count = 0;
  uint64_t period_ms = 0;

  double per_second() const { return period_ms ? double(count) * 1000.0 / double(period_ms) : 0; }
  // Minimal form for logs and status: "30/min", "3/2s".
  std::string describe() const;
  bool operator==(const RateSpec&) const = default;
};

// Accepts N/unit and N/Kunit: N a positive decimal with up to 6 fraction digits, K a positive
// integer, unit s|sec|second(s), m|min|minute(s), h|hr|hour(s), d|day(s). Errors name the text.
Result<RateSpec> parse_rate(std::string_view text);

// Accepts one or more <integer><unit> terms: "500ms", "90s", "2m", "1h30m", "1d"; units ms, s,
// m|min, h, d. A bare number is refused: "120" could mean seconds or minutes.
Result<uint64_t> parse_duration_ms(std::string_view text);

// "2m", "1h30m", "1500ms": the shortest exact form, for messages.
std::string describe_duration(uint64_t ms);

}  // namespace sb
