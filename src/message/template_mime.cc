// The MIME structure of a template's body: its parts and how each one's text is encoded.
#include "message/template_mime.h"

#include <utility>

#include "base/text.h"
#include "message/encode.h"

namespace sb::tmpl {

namespace {

// The boundary parameter of a Content-Type value (RFC 2046 §5.1.1), case kept.
std::string boundary_of(std::string_view ctype) {
  std::string low = lower_ascii(ctype);
  size_t p = 0;
  while ((p = low.find("boundary", p)) != std::string::npos) {
    size_t q = p + 8;
    bool starts = p == 0 || low[p - 1] == ';' || is_wsp(low[p - 1]);
    while (q < low.size() && is_wsp(low[q])) ++q;
    if (!starts || q >= low.size() || low[q] != '=') {
      p = q;
      continue;
    }
    ++q;
    while (q < low.size() && is_wsp(low[q])) ++q;
    if (q < ctype.size() && ctype[q] == '"') {
      size_t e = ctype.find('"', q + 1);
      return e == std::string::npos ? std::string() : std::string(ctype.substr(q + 1, e - q - 1));
    }
    size_t e = q;
    while (e < ctype.size() && ctype[e] != ';' && !is_wsp(ctype[e])) ++e;
    return std::string(ctype.substr(q, e - q));
  }
  return {};
}

}  // namespace

std::string field_value(const std::vector<Line>& lines, size_t begin, size_t end) {
  std::string v(lines[begin].text.substr(lines[begin].text.find(':') + 1));
  for (size_t j = begin + 1; j < end; ++j) v.append(lines[j].text);
  return std::string(trim_space(v));
}

Status map_body(const std::vector<Line>& lines, size_t begin, MimePart top,
                std::string_view top_ctype_raw, BodyMap& m) {
  m.role.assign(lines.size(), Role::kOutside);
  m.owner.assign(lines.size(), -1);
  std::vector<std::pair<std::string, int>> stack;  // open multiparts: boundary, part
  int cur = 0;
  top.leaf = !top.ctype.starts_with("multipart/");
  m.parts.push_back(top);
  if (!top.leaf) {
    std::string b = boundary_of(top_ctype_raw);
    if (b.empty()) {
      return make_error(ErrDomain::kInput,
                        "template: the multipart Content-Type has no boundary parameter");
    }
    stack.emplace_back(std::move(b), 0);
    cur = -1;
  }
  for (size_t i = begin; i < lines.size(); ++i) {
    std::string_view text = lines[i].text;
    int level = -1;
    bool close = false;
    if (!stack.empty() && text.starts_with("--")) {
      for (int k = int(stack.size()) - 1; k >= 0 && level < 0; --k) {
        const std::string& b = stack[size_t(k)].first;
        if (!text.substr(2).starts_with(b)) continue;
        std::string_view after = trim_space(text.substr(2 + b.size()));
        if (after.empty() || after == "--") {
          level = k;
          close = !after.empty();
        }
      }
    }
    if (level >= 0) {
      m.role[i] = Role::kDelimiter;
      stack.resize(size_t(level) + 1);
      if (close) {
        stack.pop_back();
        cur = -1;
        continue;
      }
      MimePart p;
      p.hdr_begin = i + 1;
      size_t j = i + 1;
      while (j < lines.size() && !lines[j].text.empty()) ++j;
      p.hdr_end = j;
      int idx = int(m.parts.size());
      std::string ctype_raw;
      for (size_t k = p.hdr_begin; k < p.hdr_end;) {
        size_t e = k + 1;
        while (e < p.hdr_end && is_continuation(lines[e].text)) ++e;
        size_t n = header_name_length(lines[k].text);
        std::string lname = lower_ascii(lines[k].text.substr(0, n));
        if (lname == "content-type") {
          p.has_ctype = true;
          ctype_raw = field_value(lines, k, e);
          p.ctype = lower_ascii(ctype_raw);
        } else if (lname == "content-transfer-encoding") {
          p.has_cte = true;
          p.cte = lower_ascii(field_value(lines, k, e));
          p.cte_begin = k;
          p.cte_end = e;
        }
        k = e;
      }
      for (size_t k = i + 1; k <= j && k < lines.size(); ++k) {
        m.role[k] = Role::kPartHeader;
        m.owner[k] = idx;
      }
      p.leaf = !p.ctype.starts_with("multipart/");
      if (!p.leaf) {
        std::string b = boundary_of(ctype_raw);
        if (b.empty()) {
          return input_error(lines[i].number + 1,
                             "a multipart part's Content-Type has no boundary parameter");
        }
        stack.emplace_back(std::move(b), idx);
        cur = -1;
      } else {
        cur = idx;
      }
      m.parts.push_back(std::move(p));
      i = j;
      continue;
    }
    bool ph = text.find("{{") != std::string_view::npos;
    if (cur < 0) {
      if (ph) {
        return input_error(lines[i].number,
                           "a placeholder outside every MIME part (in a multipart preamble or "
                           "epilogue)");
      }
      if (has_eight_bit(text)) {
        // Readers never show it, and it would make the body 8-bit (issue 18).
        return input_error(lines[i].number,
                           "non-ASCII text outside every MIME part (in a multipart preamble or "
                           "epilogue): write it in ASCII");
      }
      continue;
    }
    m.role[i] = Role::kContent;
    m.owner[i] = cur;
    MimePart& p = m.parts[size_t(cur)];
    if (ph && !p.placeholders) p.first_placeholder_line = lines[i].number;
    p.placeholders = p.placeholders || ph;
    p.eight_bit = p.eight_bit || has_eight_bit(text);
  }
  for (MimePart& p : m.parts) {
    if (!p.leaf) continue;
    p.html = p.ctype.starts_with("text/html");
    bool qp = p.cte == "quoted-printable";
    bool b64 = p.cte == "base64";
    if (b64 && p.placeholders) {
      return input_error(p.first_placeholder_line,
                         "placeholder in a base64 part (Content-Transfer-Encoding: base64); "
                         "merge fields cannot go into base64 — use quoted-printable or 8bit");
    }
    p.convert = !qp && !b64 && (p.placeholders || p.eight_bit);
  }
  return {};
}

}  // namespace sb::tmpl
