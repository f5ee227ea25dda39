// Organizational domains (RFC 7489 §3.2) from the Public Suffix List, and DMARC alignment.
#pragma once

#include <string>
#include <string_view>

namespace sb::doctor {

// The registrable domain of `domain` by libpsl's list: "news.example.co.uk" -> "example.co.uk".
// A name that is itself a public suffix (or unknown to the list and a single label) is its own
// organizational domain. Lower-case, without a final dot.
std::string organizational_domain(std::string_view domain);

// RFC 7489 §3.1: strict alignment wants the same name; relaxed the same organizational domain.
bool aligned(std::string_view a, std::string_view b, bool strict);

// The domain of an address ("" when it has no '@'), lower-cased.
std::string domain_of(std::string_view address);

}  // namespace sb::doctor
