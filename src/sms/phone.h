// Phone numbers: E.164 normalisation with libphonenumber and a default country.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace sb {

// "+447700900123" from "07700 900123" with default country "GB", "+44 7700 900123" or
// "00447700900123" with any; an input that is not a valid number is an error whose message
// names why ("too short for GB", "not a valid number for DE", "no country: ... without a
// default country"). `default_country`: an ISO 3166-1 alpha-2 code ("GB", case-insensitive)
// or "" (then the number must be international).
Result<std::string> normalize_e164(std::string_view number, std::string_view default_country);

// True when `country` is a region libphonenumber knows ("GB", "no"); for config checks.
bool known_country(std::string_view country);

// A list of numbers to never send to (`sms send --suppress FILE`): one number a line in any
// form normalize_e164 reads with `default_country`; blank lines and lines starting with '#'
// are skipped, a BOM and CRLF are fine. Returns the E.164 forms, one a line ("+44...\n"). A
// line that is not a number fails the whole file, naming it and the line:
//   "stop.txt line 3: 'abc' is not a phone number: ..."
Result<std::string> read_phone_list(const std::string& path, std::string_view default_country);

// The SMPP destination_addr for an E.164 number: its digits without '+'.
std::string_view e164_digits(std::string_view e164);

// The E.164 form of a number an SMSC gave (a mobile-originated message's source_addr): "+..."
// as is; digits are tried as international first (SMSCs send TON 1 numbers without '+'), then
// as national with `default_country`. An address that is neither (an alphanumeric sender) is
// an error.
Result<std::string> smsc_number_e164(std::string_view addr, std::string_view default_country);

}  // namespace sb
