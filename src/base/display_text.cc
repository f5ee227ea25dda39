// Stored or server text made safe for a terminal line, and long lists cut short in messages.
#include "base/display_text.h"

#include <cstdint>
#include <cstdio>

#include "base/utf8.h"

namespace sb {
namespace {

// Code points above ASCII that a terminal would act on or that hide or reorder text.
bool is_format_control(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || (cp >= 0x200B && cp <= 0x200F) ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0xFEFF;
}

}  // namespace

void append_display_escaped(std::string& out, std::string_view s) {
  char buf[16];
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      if (c == '\\') out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c == '\r' || c == '\n' || c == '\t') {
      out.push_back('\\');
      out.push_back(c == '\r' ? 'r' : c == '\n' ? 'n' : 't');
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t n = c < 0x80 ? 0 : utf8_seq(s, i, &cp);
    if (n == 0) {  // a C0 control, DEL, or an octet that is not valid UTF-8
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
      ++i;
      continue;
    }
    if (is_format_control(cp)) {
      std::snprintf(buf, sizeof buf, "\\u{%04X}", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
}

std::string display_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_display_escaped(out, s);
  return out;
}

std::string group_thousands(unsigned long long n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string capped_list(const std::vector<std::string>& items, std::string_view quote,
                        size_t max_items, size_t max_octets) {
  std::string out;
  size_t shown = 0;
  for (const std::string& item : items) {
    if (shown == max_items || (shown > 0 && out.size() >= max_octets)) break;
    if (shown > 0) out += ", ";
    out += quote;
    // One item is cut too, so a single 1 MB column name cannot make the line long either.
    constexpr size_t kMaxItem = 80;
    if (item.size() > kMaxItem) {
      size_t cut = kMaxItem;
      while (cut > 0 && (static_cast<unsigned char>(item[cut]) & 0xC0) == 0x80) --cut;
      append_display_escaped(out, std::string_view(item).substr(0, cut));
      out += "…";
    } else {
      append_display_escaped(out, item);
    }
    out += quote;
    ++shown;
  }
  if (shown < items.size()) {
    out += " … and " + group_thousands(items.size() - shown) + " more";
  }
  return out;
}

}  // namespace sb
