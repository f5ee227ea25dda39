#include "sms/phone.h"

#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumberutil.h>

#include <cctype>

#include "base/display_text.h"
#include "base/text.h"

namespace sb {
namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}

const char* possible_reason(PhoneNumberUtil::ValidationResult r) {
  switch (r) {
    case PhoneNumberUtil::INVALID_COUNTRY_CODE: return "unknown country calling code";
    case PhoneNumberUtil::TOO_SHORT: return "too short";
    case PhoneNumberUtil::INVALID_LENGTH: return "wrong number of digits";
    case PhoneNumberUtil::TOO_LONG: return "too long";
    case PhoneNumberUtil::IS_POSSIBLE_LOCAL_ONLY: return "too short (a local number?)";
    default: return "not a valid number";
  }
}

}  // namespace

bool known_country(std::string_view country) {
  if (country.size() != 2) return false;
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  return util->GetCountryCodeForRegion(upper(country)) != 0;
}

Result<std::string> normalize_e164(std::string_view number, std::string_view default_country) {
  const PhoneNumberUtil* util = PhoneNumberUtil::GetInstance();
  std::string in(number);
  // Trim: a CSV cell often carries spaces around the number.
  size_t b = in.find_first_not_of(" \t");
  size_t e = in.find_last_not_of(" \t");
  in = b == std::string::npos ? std::string() : in.substr(b, e - b + 1);
  if (in.empty()) return make_error(ErrDomain::kInput, "no phone number");
  if (in.size() > 64) return make_error(ErrDomain::kInput, "not a phone number: too long");
  std::string region = default_country.empty() ? std::string("ZZ") : upper(default_country);
  if (!default_country.empty() && !known_country(region)) {
    return make_error(ErrDomain::kConfig, "unknown country '" + std::string(default_country) +
                                              "' (an ISO 3166 code such as GB)");
  }
  PhoneNumber pn;
  switch (util->Parse(in, region, &pn)) {
    case PhoneNumberUtil::NO_PARSING_ERROR: break;
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
      return make_error(ErrDomain::kInput,
                        default_country.empty()
                            ? "no country: a national number without a default country"
                            : "unknown country calling code");
    case PhoneNumberUtil::NOT_A_NUMBER: return make_error(ErrDomain::kInput, "not a phone number");
    case PhoneNumberUtil::TOO_SHORT_AFTER_IDD:
    case PhoneNumberUtil::TOO_SHORT_NSN: return make_error(ErrDomain::kInput, "too short");
    case PhoneNumberUtil::TOO_LONG_NSN: return make_error(ErrDomain::kInput, "too long");
  }
  // The number's own region (not the default country: "+46..." with GB is Swedish); an invalid
  // number has no region, so its calling code names one.
  std::string where;
  util->GetRegionCodeForCountryCode(pn.country_code(), &where);
  if (!util->IsValidNumber(pn)) {
    std::string why = possible_reason(util->IsPossibleNumberWithReason(pn));
    if (!where.empty() && where != "ZZ") why += " for " + where;
    return make_error(ErrDomain::kInput, why);
  }
  std::string out;
  util->Format(pn, PhoneNumberUtil::E164, &out);
  return out;
}

std::string_view e164_digits(std::string_view e164) {
  if (!e164.empty() && e164.front() == '+') e164.remove_prefix(1);
  return e164;
}

Result<std::string> smsc_number_e164(std::string_view addr, std::string_view default_country) {
  if (!addr.empty() && addr[0] == '+') return normalize_e164(addr, "");
  if (!addr.empty() && addr.find_first_not_of("0123456789") == std::string_view::npos &&
      addr[0] != '0') {
    auto intl = normalize_e164("+" + std::string(addr), "");
    if (intl.ok()) return intl;
  }
  return normalize_e164(addr, default_country);
}

Result<std::string> read_phone_list(const std::string& path, std::string_view default_country) {
  auto data = read_file(path);
  if (!data.ok()) return make_error(ErrDomain::kInput, data.error().message);
  std::string_view rest = *data;
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);
  std::string out;
  uint64_t line = 0;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view entry = rest.substr(0, nl);
    while (!entry.empty() && (entry.front() == ' ' || entry.front() == '\t'))
      entry.remove_prefix(1);
    while (!entry.empty() && std::isspace(static_cast<unsigned char>(entry.back()))) {
      entry.remove_suffix(1);  // blanks, and the CR of a CRLF line
    }
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    ++line;
    if (entry.empty() || entry[0] == '#') continue;
    auto e164 = normalize_e164(entry, default_country);
    if (!e164.ok()) {
      return make_error(ErrDomain::kInput, path + " line " + std::to_string(line) + ": '" +
                                               display_escape(entry.substr(0, 80)) +
                                               "' is not a phone number: " + e164.error().message);
    }
    out += *e164;
    out += '\n';
  }
  return out;
}

}  // namespace sb
