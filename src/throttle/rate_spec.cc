// Rate and duration parsing: exact integer arithmetic, errors that quote the user's text.
#include "throttle/rate_spec.h"

#include <cctype>
#include <limits>
#include <numeric>

#include "base/text.h"

namespace sb {
namespace {

constexpr uint64_t kSecond = 1000;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kHour = 60 * kMinute;
constexpr uint64_t kDay = 24 * kHour;
// Bounds keep every product below 2^63 in the limiters (count * period fits easily).
constexpr uint64_t kMaxCount = 1'000'000'000;
constexpr uint64_t kMaxPeriod = 366 * kDay;
constexpr int kMaxFractionDigits = 6;

Error bad(std::string_view text, std::string_view why) {
  return make_error(ErrDomain::kConfig,
                    "bad rate \"" + std::string(text) + "\": " + std::string(why));
}

Error bad_duration(std::string_view text, std::string_view why) {
  return make_error(ErrDomain::kConfig,
                    "bad duration \"" + std::string(text) + "\": " + std::string(why));
}

uint64_t rate_unit_ms(std::string_view u) {
  const std::string s = lower_ascii(u);
  if (s == "s" || s == "sec" || s == "second" || s == "seconds") return kSecond;
  if (s == "m" || s == "min" || s == "minute" || s == "minutes") return kMinute;
  if (s == "h" || s == "hr" || s == "hour" || s == "hours") return kHour;
  if (s == "d" || s == "day" || s == "days") return kDay;
  return 0;
}

uint64_t duration_unit_ms(std::string_view u) {
  const std::string s = lower_ascii(u);
  if (s == "ms") return 1;
  if (s == "s" || s == "sec") return kSecond;
  if (s == "m" || s == "min") return kMinute;
  if (s == "h") return kHour;
  if (s == "d") return kDay;
  return 0;
}

// Reads digits at s[i..]; false on overflow past `cap` or when there are none.
bool read_uint(std::string_view s, size_t& i, uint64_t cap, uint64_t& out) {
  const size_t start = i;
  out = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    out = out * 10 + uint64_t(s[i] - '0');
    if (out > cap) return false;
    ++i;
  }
  return i > start;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string RateSpec::describe() const {
  struct Unit {
    uint64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{kDay, "day"}, {kHour, "h"}, {kMinute, "min"}, {kSecond, "s"}};
  for (const Unit& u : kUnits) {
    if (period_ms % u.ms == 0) {
      const uint64_t k = period_ms / u.ms;
      return std::to_string(count) + "/" + (k == 1 ? "" : std::to_string(k)) + u.name;
    }
  }
  return std::to_string(count) + "/" + std::to_string(period_ms) + "ms";
}

Result<RateSpec> parse_rate(std::string_view text) {
  const std::string_view s = trim(text);
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return bad(text, "expected N/unit, for example 30/min");
  const std::string_view num = trim(s.substr(0, slash));
  const std::string_view per = trim(s.substr(slash + 1));

  // N as an exact fraction mantissa / 10^digits.
  size_t i = 0;
  uint64_t mantissa = 0;
  if (!read_uint(num, i, kMaxCount, mantissa)) {
    return bad(text, "the count must be a number up to 1000000000");
  }
  uint64_t scale = 1;
  if (i < num.size() && num[i] == '.') {
    ++i;
    int digits = 0;
    while (i < num.size() && num[i] >= '0' && num[i] <= '9') {
      if (++digits > kMaxFractionDigits) return bad(text, "too many decimals in the count");
      mantissa = mantissa * 10 + uint64_t(num[i] - '0');
      scale *= 10;
      ++i;
    }
    if (digits == 0) return bad(text, "a decimal point needs digits after it");
  }
  if (i != num.size()) return bad(text, "the count must be a number, like 30 or 1.5");
  if (mantissa == 0) return bad(text, "the count must be above zero");

  size_t j = 0;
  uint64_t multiple = 1;
  if (j < per.size() && per[j] >= '0' && per[j] <= '9') {
    if (!read_uint(per, j, kMaxPeriod, multiple) || multiple == 0) {
      return bad(text, "the period multiple must be a positive whole number");
    }
  }
  const uint64_t unit = rate_unit_ms(trim(per.substr(j)));
  if (unit == 0) return bad(text, "unknown unit, use s, min, h or day");
  if (multiple > kMaxPeriod / unit) return bad(text, "the period is longer than a year");

  // mantissa per (scale * multiple * unit) ms, reduced so counts stay small and exact.
  uint64_t count = mantissa;
  uint64_t period = multiple * unit;
  if (scale > 1) {
    const uint64_t g = std::gcd(count, scale);
    count /= g;
    const uint64_t s2 = scale / g;
    if (period > std::numeric_limits<uint64_t>::max() / s2 || period * s2 > kMaxPeriod * 1000) {
      return bad(text, "the rate is too small to represent");
    }
    period *= s2;
  }
  // Deliberately no further reduction: 30/min must stay "30 in any minute", not become
  // "1 in any 2 s", or a --burst of 10 would have no window to live in.
  if (count > kMaxCount) return bad(text, "the count is too large");
  return RateSpec{count, period};
}

Result<uint64_t> parse_duration_ms(std::string_view text) {
  const std::string_view s = trim(text);
  if (s.empty()) return bad_duration(text, "empty");
  uint64_t total = 0;
  size_t i = 0;
  while (i < s.size()) {
    uint64_t n = 0;
    if (!read_uint(s, i, kMaxPeriod, n)) {
      return bad_duration(text, "expected a whole number followed by ms, s, m, h or d");
    }
    const size_t u0 = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    if (u0 == i) return bad_duration(text, "needs a unit (ms, s, m, h or d), for example 90s");
    const uint64_t unit = duration_unit_ms(s.substr(u0, i - u0));
    if (unit == 0) return bad_duration(text, "unknown unit, use ms, s, m, h or d");
    if (n > (kMaxPeriod - total) / unit) return bad_duration(text, "longer than a year");
    total += n * unit;
  }
  return total;
}

std::string describe_duration(uint64_t ms) {
  if (ms == 0) return "0s";
  if (ms % kSecond != 0) return std::to_string(ms) + "ms";
  std::string out;
  struct Unit {
    uint64_t ms;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{kDay, "d"}, {kHour, "h"}, {kMinute, "m"}, {kSecond, "s"}};
  for (const Unit& u : kUnits) {
    if (ms >= u.ms) {
      out += std::to_string(ms / u.ms) + u.name;
      ms %= u.ms;
    }
  }
  return out;
}

}  // namespace sb
