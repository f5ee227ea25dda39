// Recipient address syntax checks done at import (no DNS) and the key used to find duplicates.
#pragma once

#include <string>
#include <string_view>

namespace sb {

// Checks an address (already trimmed) for the syntax we can send to: one '@', a dot-atom
// local part of at most 64 octets, a domain of LDH or UTF-8 labels with at least one dot,
// no spaces or control characters, at most 254 octets in all. Non-ASCII (RFC 6531) local
// parts and IDN domains pass: they are stored as given and handled when sending.
// Quoted local parts ("a b"@x) and address literals (a@[1.2.3.4]) are not supported.
// Returns an empty string when the address is fine, else the reason ("empty domain").
std::string address_problem(std::string_view addr);

// The duplicate-detection key: the whole address with ASCII letters lower-cased. RFC 5321
// lets a local part be case-sensitive, but no mailbox provider we know of treats A@x and
// a@x as different people, and mailing someone twice is the worse mistake for a bulk sender.
// Non-ASCII characters are compared as given (no Unicode case folding).
std::string address_key(std::string_view addr);
// The same into a reused buffer (the import's hot path).
void address_key(std::string_view addr, std::string& out);

// Drops ASCII spaces and tabs (and CR/LF) at both ends.
std::string_view trim_ascii(std::string_view s);

// A short printable rendering of untrusted text for messages: cut to `max` octets (without
// splitting a UTF-8 sequence) with "...", then escaped as display_escape() does (\r, \n,
// \xNN, ...), so a message line cannot be forged or hidden by what it quotes.
std::string printable(std::string_view s, size_t max);

// Cuts s to at most max octets without splitting a UTF-8 sequence.
std::string_view cap_utf8(std::string_view s, size_t max);

// Where a recipient key goes, for per-destination counts (`report`): an address's domain
// (domain_of), or an SMS task's E.164 number's country calling code ("+44" of "+447400123123").
std::string destination_of(std::string_view key);

}  // namespace sb
