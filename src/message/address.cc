// RFC 5322 addresses for merged headers: parse a mailbox list, check an addr-spec, write a phrase.
#include "message/address.h"

#include "base/text.h"

#include <idn2.h>

#include <array>
#include <cstdint>

namespace sb {
namespace {

// RFC 5322 §3.2.3 atext, as a table: check_addr_spec runs for every merged address.
constexpr std::array<bool, 256> kAtext = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[size_t(c)] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[size_t(c)] = true;
  for (int c = '0'; c <= '9'; ++c) t[size_t(c)] = true;
  for (char c : std::string_view("!#$%&'*+-/=?^_`{|}~")) t[uint8_t(c)] = true;
  return t;
}();

bool is_atext(char c) { return kAtext[uint8_t(c)]; }

std::string describe(char c) {
  if (uint8_t(c) >= 0x20 && uint8_t(c) < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[uint8_t(c) >> 4] + kHex[uint8_t(c) & 15];
}

// Reads a quoted-string starting at v[i] == '"'; appends its content (pairs resolved) to
// `content` and the source text to `src`. Returns false when it is not closed.
bool read_quoted(std::string_view v, size_t& i, std::string& content, std::string* src) {
  size_t start = i++;
  while (i < v.size()) {
    char c = v[i];
    if (c == '\\' && i + 1 < v.size()) {
      content.push_back(v[i + 1]);
      i += 2;
      continue;
    }
    if (c == '"') {
      ++i;
      if (src) src->append(v.substr(start, i - start));
      return true;
    }
    content.push_back(c);
    ++i;
  }
  return false;
}

// Reads a (nested) comment starting at v[i] == '('. Returns false when it is not closed.
bool read_comment(std::string_view v, size_t& i, std::string& content) {
  int depth = 0;
  size_t start = i;
  while (i < v.size()) {
    char c = v[i];
    if (c == '\\' && i + 1 < v.size()) {
      i += 2;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')' && --depth == 0) {
      content.append(trim_space(v.substr(start + 1, i - start - 1)));
      ++i;
      return true;
    }
    ++i;
  }
  return false;
}

bool is_special_stop(char c) {
  return is_wsp(c) || c == '"' || c == '(' || c == ')' || c == '<' || c == '>' || c == ',' ||
         c == ':' || c == ';';
}

}  // namespace

std::string parse_mailbox_list(std::string_view v, std::vector<ParsedMailbox>& out) {
  size_t i = 0;
  while (true) {
    ParsedMailbox m;
    std::string phrase;   // words of the display name, joined by one space
    std::string bare;     // the element's text outside comments and brackets (an addr-spec)
    std::string comment;  // the first comment, a name when there is no other
    bool space = false;   // white space since the last word
    bool any = false;
    bool after_angle = false;
    auto add_word = [&](std::string_view w, std::string_view src) {
      if (after_angle) return false;
      if (!phrase.empty() && space) phrase.push_back(' ');
      phrase.append(w);
      if (!bare.empty() && space) bare.push_back(' ');
      bare.append(src);
      space = false;
      any = true;
      return true;
    };
    for (; i < v.size() && v[i] != ',';) {
      char c = v[i];
      if (is_wsp(c)) {
        space = true;
        ++i;
      } else if (c == '"') {
        std::string content, src;
        if (!read_quoted(v, i, content, &src)) return "a quoted string is not closed";
        if (!add_word(content, src)) return "text after the address in \"<…>\"";
      } else if (c == '(') {
        std::string content;
        if (!read_comment(v, i, content)) return "a comment \"(\" is not closed";
        if (comment.empty()) comment = std::move(content);
        space = true;
      } else if (c == '<') {
        if (after_angle) return "two addresses in \"<…>\" without a comma between them";
        size_t close = i + 1;
        while (close < v.size() && v[close] != '>') {
          if (v[close] == '"') {
            std::string ignored;
            if (!read_quoted(v, close, ignored, nullptr)) return "a quoted string is not closed";
          } else if (v[close] == '<' || v[close] == ',') {
            return std::string("an address in \"<…>\" holds ") + describe(v[close]);
          } else {
            ++close;
          }
        }
        if (close >= v.size()) return "\"<\" is not closed by \">\"";
        m.addr = std::string(trim_space(v.substr(i + 1, close - i - 1)));
        m.angle = true;
        after_angle = true;
        any = true;
        i = close + 1;
      } else if (c == ':' || c == ';') {
        return "a group (\"name: …;\") is not supported here";
      } else if (c == '>' || c == ')') {
        return std::string("a stray ") + describe(c);
      } else {
        size_t start = i;
        while (i < v.size() && !is_special_stop(v[i])) ++i;
        std::string_view w = v.substr(start, i - start);
        if (!add_word(w, w)) return "text after the address in \"<…>\"";
      }
    }
    if (!any) return out.empty() && i >= v.size() ? "no address" : "an empty address in the list";
    if (m.angle) {
      m.name = phrase.empty() ? comment : phrase;
    } else {
      m.addr = bare;
      m.name = comment;
    }
    out.push_back(std::move(m));
    if (i >= v.size()) return "";
    ++i;  // the comma
  }
}

std::string check_addr_spec(std::string_view a, AddrInfo& info) {
  info = AddrInfo{};
  if (a.empty()) return "is empty";
  if (a.size() > 254) return "is longer than 254 octets";
  std::string_view local, domain;
  if (a[0] == '"') {
    size_t i = 1;
    bool closed = false;
    for (; i < a.size(); ++i) {
      auto u = uint8_t(a[i]);
      if (a[i] == '\\' && i + 1 < a.size()) {
        ++i;
        continue;
      }
      if (a[i] == '"') {
        closed = true;
        break;
      }
      if (u < 0x20 && a[i] != '\t') return "has " + describe(a[i]);
      if (u >= 0x80) info.utf8_local = true;
    }
    if (!closed) return "has a quote that is not closed";
    if (i + 1 >= a.size() || a[i + 1] != '@') return "has no '@' after its quoted local part";
    local = a.substr(0, i + 1);
    domain = a.substr(i + 2);
  } else {
    size_t at = a.rfind('@');
    if (at == std::string_view::npos) return "has no '@'";
    local = a.substr(0, at);
    domain = a.substr(at + 1);
    if (local.empty()) return "has nothing before '@'";
    bool prev_dot = true;
    for (char c : local) {
      if (c == '.') {
        if (prev_dot) return "has an empty part between dots before '@'";
        prev_dot = true;
        continue;
      }
      prev_dot = false;
      if (uint8_t(c) >= 0x80) {
        info.utf8_local = true;
      } else if (!is_atext(c)) {
        return "has " + describe(c) + " before '@' (quote the local part, or remove it)";
      }
    }
    if (prev_dot) return "ends with '.' before '@'";
  }
  if (local.size() > 64) return "has more than 64 octets before '@'";
  if (domain.empty()) return "has no domain after '@'";
  if (domain.front() == '[') {
    if (domain.back() != ']' || domain.size() < 3) return "has an address literal without ']'";
    for (char c : domain.substr(1, domain.size() - 2)) {
      auto u = uint8_t(c);
      if (u < 33 || u > 126 || c == '[' || c == ']' || c == '\\') {
        return "has " + describe(c) + " in its address literal";
      }
    }
    return "";
  }
  if (domain.size() > 253) return "has a domain longer than 253 octets";
  size_t label = 0;
  bool label_utf8 = false;
  for (size_t i = 0; i <= domain.size(); ++i) {
    if (i == domain.size() || domain[i] == '.') {
      if (label == 0) return "has an empty label in its domain";
      if (label > 63 && !label_utf8) return "has a domain label longer than 63 octets";
      label = 0;
      label_utf8 = false;
      continue;
    }
    char c = domain[i];
    auto u = uint8_t(c);
    if (u >= 0x80) {
      info.utf8_domain = label_utf8 = true;
    } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_')) {
      return "has " + describe(c) + " in its domain";
    }
    ++label;
  }
  return "";
}

bool domain_to_alabel(std::string_view domain, std::string& out) {
  std::string in(domain);
  char* res = nullptr;
  int rc = idn2_to_ascii_8z(in.c_str(), &res, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
  if (rc != IDN2_OK) return false;
  out.append(res);
  idn2_free(res);
  return true;
}

PhraseForm phrase_form(std::string_view name) {
  bool quoted = false;
  bool prev_space = true;
  size_t run = 0;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    auto u = uint8_t(c);
    if (u >= 0x80 || u == 0x7f || (u < 0x20 && c != '\t')) return PhraseForm::kEncoded;
    if (c == '=' && i + 1 < name.size() && name[i + 1] == '?') return PhraseForm::kEncoded;
    if (is_wsp(c)) {
      if (c == '\t' || prev_space) quoted = true;
      prev_space = true;
      run = 0;
      continue;
    }
    // A word this long would make a line over 998 octets; encoded-words can be folded. (A
    // shorter one only makes a line over 78, which RFC 5322 allows: an ASCII name stays
    // readable, and one encoded-word each side of a fold decodes differently in Python.)
    if (++run > 900) return PhraseForm::kEncoded;
    prev_space = false;
    if (!is_atext(c)) quoted = true;
  }
  if (prev_space) quoted = true;
  return quoted ? PhraseForm::kQuoted : PhraseForm::kAtoms;
}

void append_quoted(std::string& out, std::string_view name) {
  out.push_back('"');
  for (char c : name) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace sb
