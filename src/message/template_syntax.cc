// The syntax of a template's source: lines, header field names, placeholders, MIME parameters.
#include "message/template_syntax.h"

#include <array>

#include "base/text.h"
#include "message/encode.h"

namespace sb::tmpl {

namespace {

bool valid_placeholder_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

}  // namespace

std::vector<Line> split_lines(std::string_view raw) {
  std::vector<Line> lines;
  size_t start = 0;
  int number = 1;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\r' && raw[i] != '\n') continue;
    lines.push_back({raw.substr(start, i - start), true, number++});
    if (raw[i] == '\r' && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < raw.size()) lines.push_back({raw.substr(start), false, number});
  return lines;
}

// Length of the field name when `line` is "name WSP* : …", else 0 (RFC 5322 §3.6.8 ftext,
// with the obsolete white space before the colon tolerated).
size_t header_name_length(std::string_view line) {
  size_t n = 0;
  while (n < line.size() && uint8_t(line[n]) >= 33 && uint8_t(line[n]) <= 126 && line[n] != ':') {
    ++n;
  }
  if (n == 0) return 0;
  size_t k = n;
  while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
  return k < line.size() && line[k] == ':' ? n : 0;
}

bool is_continuation(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

bool is_raw_header(std::string_view lname) {
  static constexpr std::array<std::string_view, 22> kRaw = {"from",
                                                            "to",
                                                            "cc",
                                                            "bcc",
                                                            "reply-to",
                                                            "sender",
                                                            "resent-from",
                                                            "resent-to",
                                                            "resent-cc",
                                                            "resent-bcc",
                                                            "resent-sender",
                                                            "return-path",
                                                            "message-id",
                                                            "in-reply-to",
                                                            "references",
                                                            "resent-message-id",
                                                            "date",
                                                            "mime-version",
                                                            "content-type",
                                                            "content-transfer-encoding",
                                                            "content-id",
                                                            "disposition-notification-to"};
  if (lname.starts_with("list-") || lname.starts_with("content-")) return true;
  return std::find(kRaw.begin(), kRaw.end(), lname) != kRaw.end();
}

// addr-spec of a From: value: "Name <a@b>" → a@b, "a@b (comment)" → a@b.
std::string addr_spec(std::string_view v) {
  size_t lt = v.rfind('<');
  if (lt != std::string_view::npos) {
    size_t gt = v.find('>', lt);
    if (gt != std::string_view::npos) return std::string(trim_space(v.substr(lt + 1, gt - lt - 1)));
  }
  size_t pos = 0;
  while (pos < v.size()) {
    while (pos < v.size() && (v[pos] == ' ' || v[pos] == '\t' || v[pos] == ',')) ++pos;
    size_t end = pos;
    while (end < v.size() && v[end] != ' ' && v[end] != '\t' && v[end] != ',') ++end;
    std::string_view tok = v.substr(pos, end - pos);
    if (tok.find('@') != std::string_view::npos) return std::string(tok);
    pos = end;
  }
  return std::string(trim_space(v));
}

Error input_error(int line, std::string msg) {
  return make_error(ErrDomain::kInput, "template line " + std::to_string(line) + ": " + msg);
}

Status split_placeholders(const Line& ln, std::vector<Piece>& out) {
  std::string_view t = ln.text;
  while (true) {
    size_t open = t.find("{{");
    if (open == std::string_view::npos) break;
    if (open > 0) out.push_back({false, false, Filter::kNone, t.substr(0, open)});
    bool triple = open + 2 < t.size() && t[open + 2] == '{';
    std::string_view closer = triple ? "}}}" : "}}";
    size_t inner = open + (triple ? 3 : 2);
    size_t close = t.find(closer, inner);
    if (close == std::string_view::npos) {
      return input_error(ln.number, triple ? "unterminated \"{{{\" placeholder (missing \"}}}\")"
                                           : "unterminated \"{{\" placeholder (missing \"}}\")");
    }
    std::string_view whole = t.substr(open, close + closer.size() - open);
    std::string_view name = trim_space(t.substr(inner, close - inner));
    Filter filter = Filter::kNone;
    if (size_t bar = name.find('|'); bar != std::string_view::npos && !triple) {
      std::string_view f = trim_space(name.substr(bar + 1));
      name = trim_space(name.substr(0, bar));
      if (f != "url") {
        return input_error(ln.number, "unknown filter \"" + std::string(f) + "\" in \"" +
                                          std::string(whole) + "\": the one filter is |url");
      }
      filter = Filter::kUrl;
    }
    if (!valid_placeholder_name(name)) {
      return input_error(ln.number, "invalid placeholder \"" + std::string(whole) +
                                        "\": names use letters, digits, '_', '-' and '.'");
    }
    out.push_back({true, triple, filter, name});
    t.remove_prefix(close + closer.size());
  }
  if (!t.empty()) out.push_back({false, false, Filter::kNone, t});
  return {};
}

bool rfc2231_params(std::string_view line, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size()) {
    // A parameter starts after ';' (or the line's white space, on a continuation line).
    size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) break;
    size_t name_end = eq;
    while (name_end > i && is_wsp(line[name_end - 1])) --name_end;
    size_t name_start = name_end;
    while (name_start > i && line[name_start - 1] != ';' && !is_wsp(line[name_start - 1]) &&
           line[name_start - 1] != ':') {
      --name_start;
    }
    size_t v = eq + 1;
    while (v < line.size() && is_wsp(line[v])) ++v;
    size_t v_end;
    std::string_view value;
    if (v < line.size() && line[v] == '"') {
      v_end = line.find('"', v + 1);
      if (v_end == std::string_view::npos) break;
      value = line.substr(v + 1, v_end - v - 1);
      ++v_end;
    } else {
      v_end = v;
      while (v_end < line.size() && line[v_end] != ';' && !is_wsp(line[v_end])) ++v_end;
      value = line.substr(v, v_end - v);
    }
    std::string_view name = line.substr(name_start, name_end - name_start);
    out.append(line.substr(i, name_start - i));
    if (has_eight_bit(value) && !name.empty() && name.back() != '*' && !has_eight_bit(name)) {
      out.append(name);
      out.append("*=utf-8''");
      append_percent_encoded(out, value);
    } else {
      out.append(line.substr(name_start, v_end - name_start));
    }
    i = v_end;
  }
  out.append(line.substr(std::min(i, line.size())));
  return !has_eight_bit(out);
}

}  // namespace sb::tmpl
