// RFC 822-style field blocks as DSNs and feedback reports use them: unfolding, groups, values.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb {

using FieldGroup = std::vector<std::pair<std::string, std::string>>;  // (lower-case name, value)

// Splits "Name: value" lines into groups separated by blank lines (RFC 3464 §2.1: the
// per-message group, then one group per recipient). Continuation lines (leading space or tab)
// are unfolded into the field before them. Lines without a colon are skipped, so a block cut
// off mid-line (truncated headers) yields the fields before the cut. LF or CRLF. At most
// max_groups groups; *more is set when there were more.
std::vector<FieldGroup> split_field_groups(std::string_view text, size_t max_groups,
                                           bool* more = nullptr);

// The first value of field `lname` (lower case) in a group, or empty.
std::string_view field(const FieldGroup& g, std::string_view lname);

// "rfc822; <a@b>" -> "a@b": drops an RFC 3464 address/diagnostic type prefix ("rfc822;",
// "smtp;", "dns;", "utf-8;") and surrounding angle brackets and spaces.
std::string_view strip_type(std::string_view v);
std::string_view strip_angles(std::string_view v);

// The enhanced status code (RFC 3463 "c.sss.ddd", c in 2/4/5) at the start of v, or empty.
std::string_view leading_status(std::string_view v);
// The first enhanced status code anywhere in text, else one derived from a leading basic SMTP
// code ("550 ..." -> "5.0.0"), else empty.
std::string find_status(std::string_view text);

}  // namespace sb
