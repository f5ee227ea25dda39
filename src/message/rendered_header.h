// One header field of a rendered message, unfolded and decoded, for names made from it.
#pragma once

#include <string>
#include <string_view>

namespace sb {

// The value of the first `name` field (case-insensitive) in the header block of `message`
// (CRLF or LF line ends), unfolded, with surrounding white space trimmed and RFC 2047 encoded
// words in UTF-8, US-ASCII or ISO-8859-1 decoded to UTF-8 (white space between two adjacent
// encoded words dropped, as RFC 2047 section 6.2 says). Encoded words in other charsets, or
// malformed ones, stay as they are. "" when there is no such field. Used where a rendered
// value (the Subject of this recipient's message) names a file: never the template's
// placeholders.
std::string rendered_header(std::string_view message, std::string_view name);

}  // namespace sb
