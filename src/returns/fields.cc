// Field-block parsing shared by the DSN, ARF and header readers; pure string work.
#include "returns/fields.h"

#include <cctype>

#include "base/text.h"

namespace sb {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of "c.sss.ddd" at s[i] (1-3 digits each after the class), or 0.
size_t status_len(std::string_view s, size_t i) {
  if (i + 5 > s.size() || (s[i] != '2' && s[i] != '4' && s[i] != '5') || s[i + 1] != '.') {
    return 0;
  }
  size_t k = i + 2;
  for (int part = 0; part < 2; ++part) {
    size_t start = k;
    while (k < s.size() && is_digit(s[k]) && k - start < 3) ++k;
    if (k == start) return 0;
    if (part == 0) {
      if (k >= s.size() || s[k] != '.') return 0;
      ++k;
    }
  }
  if (k < s.size() && (is_digit(s[k]) || s[k] == '.')) return 0;  // "5.1.1234", "5.1.1.2"
  return k - i;
}

}  // namespace

std::vector<FieldGroup> split_field_groups(std::string_view text, size_t max_groups, bool* more) {
  std::vector<FieldGroup> groups;
  FieldGroup cur;
  bool last_was_field = false;
  if (more) *more = false;
  auto flush = [&] {
    if (!cur.empty()) {
      if (groups.size() < max_groups) {
        groups.push_back(std::move(cur));
      } else if (more) {
        *more = true;
      }
    }
    cur.clear();
    last_was_field = false;
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (trim_space(line, " \t\r").empty()) {
      flush();
      continue;
    }
    if ((line.front() == ' ' || line.front() == '\t')) {
      if (last_was_field) {
        std::string& v = cur.back().second;
        v += ' ';
        v += trim_space(line, " \t\r");
      }
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      last_was_field = false;
      continue;
    }
    std::string_view name = trim_space(line.substr(0, colon), " \t\r");
    if (name.find(' ') != std::string_view::npos) {
      last_was_field = false;
      continue;
    }
    cur.emplace_back(lower_ascii(name), std::string(trim_space(line.substr(colon + 1), " \t\r")));
    last_was_field = true;
  }
  flush();
  return groups;
}

std::string_view field(const FieldGroup& g, std::string_view lname) {
  for (const auto& [n, v] : g) {
    if (n == lname) return v;
  }
  return {};
}

std::string_view strip_angles(std::string_view v) {
  v = trim_space(v, " \t\r");
  if (v.size() >= 2 && v.front() == '<') {
    size_t close = v.find('>');
    if (close != std::string_view::npos) v = v.substr(1, close - 1);
  }
  return trim_space(v, " \t\r");
}

std::string_view strip_type(std::string_view v) {
  v = trim_space(v, " \t\r");
  size_t semi = v.find(';');
  if (semi != std::string_view::npos && semi < 16) {
    std::string_view type = v.substr(0, semi);
    bool atom = !type.empty();
    for (char c : type) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) atom = false;
    }
    if (atom) v = v.substr(semi + 1);
  }
  return strip_angles(v);
}

std::string_view leading_status(std::string_view v) {
  v = trim_space(v, " \t\r");
  size_t n = status_len(v, 0);
  return v.substr(0, n);
}

std::string find_status(std::string_view text) {
  for (size_t i = 0; i + 5 <= text.size(); ++i) {
    if (i > 0 && (is_digit(text[i - 1]) || text[i - 1] == '.')) continue;
    size_t n = status_len(text, i);
    if (n) return std::string(text.substr(i, n));
  }
  // A basic reply code at the start of the text or after "said: " style prefixes: the first
  // three-digit 4xx/5xx number standing alone.
  for (size_t i = 0; i + 3 <= text.size(); ++i) {
    if (i > 0 && (is_digit(text[i - 1]) || text[i - 1] == '.' ||
                  std::isalpha(static_cast<unsigned char>(text[i - 1])))) {
      continue;
    }
    if ((text[i] == '4' || text[i] == '5') && is_digit(text[i + 1]) && is_digit(text[i + 2]) &&
        (i + 3 == text.size() || text[i + 3] == ' ' || text[i + 3] == '-' || text[i + 3] == ':')) {
      return std::string(1, text[i]) + ".0.0";
    }
  }
  return {};
}

}  // namespace sb
