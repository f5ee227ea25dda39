// Encoders for merge values on the render path: dot-stuffing, quoted-printable, RFC 2047, dates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sb {

// Every encoder appends to `out` and never shrinks it; the renderer reserves enough capacity
// first (see value_bound) so appending does not reallocate. `col` is the column of the next
// byte on the current output line, counted without dot-stuffing (stuffing is undone by the
// receiver, so line-length rules apply to the unstuffed text); 0 means "at a line start".

// Upper bound of the bytes any of the value encoders below appends for an n-byte value.
constexpr size_t value_bound(size_t n) { return 5 * n + 96; }

// A body value left as it is (7bit/8bit parts, multipart bodies): CR, LF and CRLF become
// CRLF, NUL bytes are dropped (no SMTP body may carry them), and with dot_stuff a "." at a
// line start gets another "." in front. Sets eight_bit when a byte >= 0x80 is copied.
// Returns the length of the longest line the value ended (the column at each line break it
// wrote, so the first one includes the `col` it started at), 0 when it wrote no line break.
size_t append_body_raw(std::string& out, std::string_view v, bool dot_stuff, size_t& col,
                       bool& eight_bit);

// A body value for a quoted-printable body (RFC 2045 §6.7): line breaks in the value stay hard
// line breaks, other bytes are encoded as needed, soft line breaks keep lines <= 76 octets.
// Returns the longest line it ended (soft breaks count their "="), as append_body_raw does.
size_t append_body_qp(std::string& out, std::string_view v, bool dot_stuff, size_t& col);

// An unstructured header value with non-ASCII bytes, as RFC 2047 "B" encoded-words of at most
// 75 octets each, folded (CRLF SP) between words, never splitting a UTF-8 character.
void append_rfc2047(std::string& out, std::string_view v, size_t& col);

// Encoded-words for a phrase or an unstructured header: `v` as "B" words of UTF-8, one space
// between words (a decoder drops it, so it may be folded), never a UTF-8 sequence split. The
// first word is at most `first_room` octets long (at least one character), the others at most
// 75 (RFC 2047 §2), so a word after a fold fits a 76-octet line with its leading space.
void append_encoded_words(std::string& out, std::string_view v, size_t first_room);

// Text for an HTML part: & < > " ' become entities (OWASP's five). Appends at most 6 octets
// per input octet.
void append_html_escaped(std::string& out, std::string_view v);

// Percent-encoding for a URL component (RFC 3986 §2.1): all but A-Z a-z 0-9 - . _ ~.
void append_percent_encoded(std::string& out, std::string_view v);

// A literal line fragment of the template, quoted-printable encoded at compile time (RFC 2045
// §6.7) as if it began a line: soft breaks keep lines <= 76 octets; white space at the end of
// the fragment is encoded when the line ends there (`line_end`). Before a merge value it is
// left as it is, readable: only an empty value at the line's end leaves it trailing (where a
// decoder may drop it). `col` as above.
void append_literal_qp(std::string& out, std::string_view v, size_t& col, bool line_end);

// True when some byte is >= 0x80.
bool has_eight_bit(std::string_view v);

// RFC 5322 date-time in UTC, e.g. "Thu, 01 Jan 1970 00:00:00 +0000" (31 octets); `t` is
// seconds since the epoch, clamped to years 1970..9999.
void append_rfc5322_date(std::string& out, int64_t t);

// A literal CRLF-normalised text as it goes out in DATA: "." gets another "." after every
// CRLF. The first byte is left alone: whether it starts a line is known only at render time.
void dot_stuff_inner(std::string_view crlf_text, std::string& out);

}  // namespace sb
