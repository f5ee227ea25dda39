// RFC 5322 addresses for merged headers: parse a mailbox list, check an addr-spec, write a phrase.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sb {

// One mailbox as parsed: the display name decoded (quoted strings unquoted, quoted pairs
// resolved, the words of a phrase joined by one space; a comment stands in for a missing
// name) and the addr-spec as written, white space around it removed.
struct ParsedMailbox {
  std::string name;
  std::string addr;
  bool angle = false;  // the address was written "<addr>"
};

// Parses an address list (RFC 5322 §3.4, without groups). Returns "" on success, else why it
// is not one: an unclosed quote or bracket, a group, text after ">", an empty element.
std::string parse_mailbox_list(std::string_view v, std::vector<ParsedMailbox>& out);

// What check_addr_spec found.
struct AddrInfo {
  bool utf8_local = false;   // the local part is not ASCII: only with SMTPUTF8 (RFC 6531)
  bool utf8_domain = false;  // the domain is a U-label domain
};

// Checks an addr-spec (RFC 5322 §3.4.1, with RFC 6532's UTF-8): a dot-atom or quoted local
// part of at most 64 octets, "@", a dot-atom domain (labels of letters, digits, '-', UTF-8)
// or an address literal, at most 254 octets in all. Returns "" when valid, else the reason.
std::string check_addr_spec(std::string_view a, AddrInfo& info);

// The domain of an addr-spec as A-labels (IDNA2008, libidn2), e.g. for a header of a message
// sent without SMTPUTF8. Returns false (and leaves `out`) when it is not a valid IDN.
bool domain_to_alabel(std::string_view domain, std::string& out);

// How a display name must be written in a header.
enum class PhraseForm { kAtoms, kQuoted, kEncoded };

// kAtoms: atext words separated by single spaces; kQuoted: other printable ASCII (comma,
// quote, "<", ".", "(", "\\", …); kEncoded: non-ASCII, control characters, "=?" (it would be
// decoded) or a word too long for a 998-octet line.
PhraseForm phrase_form(std::string_view name);

// Appends `name` as a quoted-string, '"' and '\\' escaped.
void append_quoted(std::string& out, std::string_view name);

}  // namespace sb
