// Text helpers written once: ASCII case, the domain of an address, base64, a whole file read.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace sb {

// ASCII only, no locale: protocol keywords, header names, charsets and domains compare the
// same on every machine, and bytes above 0x7F (UTF-8) are never altered.
inline char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
std::string lower_ascii(std::string_view s);
void lower_ascii_in_place(std::string& s);

// RFC 5322 WSP: a space or a horizontal tab.
inline bool is_wsp(char c) { return c == ' ' || c == '\t'; }
// `s` without the leading and trailing bytes that are in `chars` (by default WSP).
std::string_view trim_space(std::string_view s, std::string_view chars = " \t");

// True when every byte is below 0x80.
bool is_ascii(std::string_view s);

// Equal ignoring ASCII letter case (bytes above 0x7F compare as they are).
bool iequals(std::string_view a, std::string_view b);
// `needle` occurs in `hay`, ignoring ASCII letter case (an empty needle always does).
bool icontains(std::string_view hay, std::string_view needle);
// `s` ends with `suffix`, ignoring ASCII letter case (file extensions, domain suffixes).
bool iends_with(std::string_view s, std::string_view suffix);

// The part after the last '@', ASCII lower-cased; "" when there is no '@'. This is what
// routing, worker ownership and per-domain counts key on. No IDNA: callers that need the
// A-label convert it themselves.
std::string domain_of(std::string_view address);

// 0..63 for a base64 (RFC 4648 standard alphabet) character, -1 for any other.
int base64_value(char c);

// Base64 with the standard alphabet and '=' padding (RFC 4648 section 4), no line breaks.
void append_base64(std::string& out, std::string_view in);
std::string base64_encode(std::string_view in);
// Strict decoding: the length is a multiple of 4, padding only at the end, no whitespace, and
// the bits that padding leaves over are zero, so each value has one spelling. A kInput error
// says what is wrong and where.
Result<std::string> base64_decode(std::string_view in);

// The file's bytes, or a kInput error "cannot read PATH: REASON" where the reason is what the
// user can fix: "no such file", "it is a directory, not a file", "permission denied" (with the
// file's owner and mode), or the system's message. For small inputs (templates, keys).
Result<std::string> read_file(const std::string& path);

// A size in octets as a user writes it: "2048", "2k", "1.5m", "1MB" (k = 1024). False when it
// is not one, or not in 1..max.
bool parse_octets(std::string_view s, uint64_t max, uint64_t& out);

}  // namespace sb
