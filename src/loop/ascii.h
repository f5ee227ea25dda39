// ASCII helpers for protocol text (header names, keywords, charsets), written once.
#pragma once

#include <string_view>

namespace sb {

inline char lower_ascii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Equal ignoring ASCII letter case (no locale: bytes above 0x7F compare as they are).
inline bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

}  // namespace sb
