// The MIME structure of a template's body: its parts and how each one's text is encoded.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "message/template_syntax.h"

namespace sb::tmpl {

// A MIME entity of the template: the message itself (parts[0]) or a body part.
struct MimePart {
  size_t hdr_begin = 0, hdr_end = 0;  // its header lines (none for the message itself)
  size_t cte_begin = 0, cte_end = 0;  // its Content-Transfer-Encoding field's lines
  bool has_ctype = false;
  bool has_cte = false;
  std::string ctype;  // lower case
  std::string cte;    // lower case, trimmed
  bool leaf = true;
  bool placeholders = false;
  bool eight_bit = false;
  int first_placeholder_line = 0;
  // Sent as quoted-printable though the template's text is not: 8-bit text or merge values
  // (which may be 8-bit) never go out as an 8-bit body, whatever the server offers.
  bool convert = false;
  bool html = false;
};

// What each body line is: a delimiter, a part's header line (or the blank line after them),
// a line of a leaf part's content, or text outside every part (preamble, epilogue).
enum class Role : uint8_t { kDelimiter, kPartHeader, kContent, kOutside };

struct BodyMap {
  std::vector<MimePart> parts;
  std::vector<Role> role;  // per line index (only body lines are set)
  std::vector<int> owner;  // per line index: the part of a header or content line
};

// The unfolded value of the field on lines [begin, end).
std::string field_value(const std::vector<Line>& lines, size_t begin, size_t end);

// Walks the body's MIME structure (nested multiparts by their boundaries) and decides, per
// leaf part, how its text and merge values are encoded.
Status map_body(const std::vector<Line>& lines, size_t begin, MimePart top,
                std::string_view top_ctype_raw, BodyMap& m);

}  // namespace sb::tmpl
