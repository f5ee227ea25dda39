// UTF-8 validation for untrusted text (addresses, replies, file names, terminal output) in one
// place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sb {

// Length of the valid UTF-8 sequence at s[i] and its code point; 0 when invalid (overlong
// forms, surrogates and code points above U+10FFFF are invalid, so later IDNA/SMTPUTF8 code
// and terminals get clean input).
inline size_t utf8_seq(std::string_view s, size_t i, uint32_t* cp_out) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n;
  uint32_t cp;
  if (c < 0x80) {
    *cp_out = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  *cp_out = cp;
  return n;
}

// Length of the valid UTF-8 sequence at s[i]; 0 when invalid.
inline size_t utf8_len(std::string_view s, size_t i) {
  uint32_t cp;
  return utf8_seq(s, i, &cp);
}

}  // namespace sb
