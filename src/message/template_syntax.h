// The syntax of a template's source: lines, header field names, placeholders, MIME parameters.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/text.h"
#include "message/template_impl.h"

namespace sb::tmpl {

// One stretch of a template line: literal text, or a placeholder's name and filter.
struct Piece {
  bool placeholder = false;
  bool triple = false;  // {{{name}}}: inserted as it is, never HTML-escaped
  Filter filter = Filter::kNone;
  std::string_view text;  // the literal text, or the placeholder's name
};

struct Line {
  std::string_view text;  // without its line end
  bool terminated;        // had CR, LF or CRLF after it
  int number;             // 1-based, for error messages
};

inline bool has_line_break_or_nul(std::string_view v) {
  // (A plain loop: find_first_of calls memchr once per octet of the value.)
  return std::any_of(v.begin(), v.end(),
                     [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

// Splits raw bytes on CRLF, bare LF and bare CR. A final line without a line end is kept
// (and marked) so a body lacking its last newline still renders ending in CRLF.
std::vector<Line> split_lines(std::string_view raw);

// Length of the field name when `line` is "name WSP* : …", else 0 (RFC 5322 §3.6.8 ftext,
// with the obsolete white space before the colon tolerated).
size_t header_name_length(std::string_view line);

bool is_continuation(std::string_view line);

// Headers whose syntax forbids RFC 2047 words (addresses, ids, MIME parameters): a non-ASCII
// value goes in raw, which needs SMTPUTF8 (RFC 6532) and shows up as eight_bit.
bool is_raw_header(std::string_view lname);

// addr-spec of a From: value: "Name <a@b>" → a@b, "a@b (comment)" → a@b.
std::string addr_spec(std::string_view v);

// "template line N: msg", an input error.
Error input_error(int line, std::string msg);

// Splits a line into literal text and placeholders: {{name}}, {{{name}}} (raw, as in
// Mustache) and {{name|url}} (percent-encoded).
Status split_placeholders(const Line& ln, std::vector<Piece>& out);

// A MIME parameter value that is not ASCII (name="März.pdf", filename=…) rewritten as an
// RFC 2231 extended parameter: filename*=utf-8''M%C3%A4rz.pdf. Returns false when 8-bit text
// is left elsewhere on the line (it cannot be encoded there).
bool rfc2231_params(std::string_view line, std::string& out);

}  // namespace sb::tmpl
