// What a returned message says: a DSN, a feedback report, an auto-reply, or nothing we know.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sb {

// Numeric values are not stored; the names (return_kind_name) are what the store and JSON hold.
enum class ReturnKind : unsigned char {
  kDsn = 0,        // a delivery status notification: RFC 3464, or a plain-text (qmail-style) one
  kArf = 1,        // an abuse/complaint feedback report, RFC 5965
  kAutoReply = 2,  // vacation notice, out-of-office, challenge-response: never a bounce
  kUnknown = 3,    // none of these (or unreadable): left alone
};
const char* return_kind_name(ReturnKind k);

// One per-recipient field group of a DSN (RFC 3464 §2.3), or one "<address>:" paragraph of
// a text bounce. Every string here is sanitised: printable UTF-8, no control characters,
// capped in length (kMaxFieldText), because it came from an untrusted server.
struct RecipientReport {
  std::string final_recipient;     // the bare address (the "rfc822;" type is dropped)
  std::string original_recipient;  // Original-Recipient, when given
  std::string action;              // failed / delayed / delivered / relayed / expanded, lower case
  std::string status;              // the enhanced status code "5.1.1", or empty
  std::string diagnostic;          // Diagnostic-Code text (type "smtp;" dropped), or the paragraph
  std::string remote_mta;          // Remote-MTA without its "dns;" type
};

struct ReturnReport {
  ReturnKind kind = ReturnKind::kUnknown;
  // "rfc3464", "qmail" (text bounce), "arf", "auto-submitted", "vacation", "challenge", ...:
  // how the kind was recognised, for the user reading a report.
  std::string format;
  std::vector<RecipientReport> recipients;
  // ARF: Feedback-Type (abuse, fraud, ...), and the complainant's address if not redacted.
  std::string feedback_type;
  // From the returned original (message/rfc822, text/rfc822-headers, or the copy after a text
  // bounce): its Message-ID without angle brackets, and its X- headers (name, value).
  std::string original_message_id;
  std::vector<std::pair<std::string, std::string>> original_x_headers;
  // Original-Envelope-Id (RFC 3464) or the ENVID the relay kept.
  std::string envelope_id;
  // The addresses this message was delivered to (Delivered-To, X-Original-To, Envelope-To,
  // To), where a VERP return path shows up; lower-cased, deduplicated, in header order.
  std::vector<std::string> delivered_to;
  std::string subject;
  // True when only a prefix of the message was parsed (kMaxParseBytes), or the returned
  // original headers were cut off; what was found is still reported.
  bool truncated = false;
  // Why a message was reported as kUnknown or only partly read ("not a MIME message",
  // "MIME nesting deeper than 32 levels"); empty when nothing went wrong.
  std::string problem;
};

// Limits on untrusted input (why: a returns mailbox is written by anyone on the Internet).
inline constexpr size_t kMaxParseBytes = 4u << 20;  // a DSN's report is in its first parts
inline constexpr size_t kMaxMimeDepth = 32;
inline constexpr size_t kMaxRecipients = 1000;
inline constexpr size_t kMaxFieldText = 512;
inline constexpr size_t kMaxXHeaders = 64;

// Parses one returned message (RFC 5322 bytes, LF or CRLF). Pure: no I/O, no global state
// the caller can see (GMime is initialised once, thread-safely, on first use). Never fails:
// what it cannot read is kUnknown with `problem` set. Inputs larger than kMaxParseBytes are
// parsed from their prefix only (truncated = true).
ReturnReport parse_return(std::string_view message);

// Untrusted text made safe to store and print: valid UTF-8 (bad octets become U+FFFD),
// controls and tabs as spaces, runs of spaces folded, trimmed, at most `max` octets (cut on
// a character boundary).
std::string clean_text(std::string_view s, size_t max = kMaxFieldText);

}  // namespace sb
