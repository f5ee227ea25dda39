// Finds, unfolds and decodes one header field of a rendered message (RFC 5322, RFC 2047).
#include "message/rendered_header.h"

#include <cctype>
#include <optional>

#include "base/text.h"

namespace sb {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The decoded text of one encoded word "=?charset?enc?text?=", or nullopt when it is not one
// this function decodes.
std::optional<std::string> decode_word(std::string_view w) {
  if (w.size() < 8 || w.substr(0, 2) != "=?" || w.substr(w.size() - 2) != "?=") return {};
  std::string_view inner = w.substr(2, w.size() - 4);
  size_t q1 = inner.find('?');
  if (q1 == std::string_view::npos || q1 + 2 >= inner.size() || inner[q1 + 2] != '?') return {};
  std::string_view charset = inner.substr(0, q1);
  if (size_t star = charset.find('*'); star != std::string_view::npos) {
    charset = charset.substr(0, star);  // RFC 2231 language suffix
  }
  char enc = static_cast<char>(std::toupper(static_cast<unsigned char>(inner[q1 + 1])));
  std::string_view text = inner.substr(q1 + 3);
  bool latin1 = iequals(charset, "iso-8859-1") || iequals(charset, "latin1");
  if (!latin1 && !iequals(charset, "utf-8") && !iequals(charset, "us-ascii")) return {};
  std::string bytes;
  if (enc == 'B') {
    uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
      if (c == '=') break;
      int v = base64_value(c);
      if (v < 0) return {};
      acc = (acc << 6) | static_cast<uint32_t>(v);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes.push_back(static_cast<char>((acc >> bits) & 0xFF));
      }
    }
  } else if (enc == 'Q') {
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '_') {
        bytes.push_back(' ');
      } else if (text[i] == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                 hex_value(text[i + 2]) >= 0) {
        bytes.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
        i += 2;
      } else {
        bytes.push_back(text[i]);
      }
    }
  } else {
    return {};
  }
  if (!latin1) return bytes;
  std::string utf8;
  for (unsigned char c : bytes) {
    if (c < 0x80) {
      utf8.push_back(static_cast<char>(c));
    } else {
      utf8.push_back(static_cast<char>(0xC0 | (c >> 6)));
      utf8.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return utf8;
}

std::string decode_words(std::string_view v) {
  std::string out;
  size_t i = 0;
  bool last_was_word = false;
  std::string pending_space;  // white space after an encoded word, kept unless another follows
  while (i < v.size()) {
    if (v.substr(i, 2) == "=?") {
      // An encoded word ends at the "?=" after its charset and encoding fields.
      size_t q1 = v.find('?', i + 2);
      size_t q2 = q1 == std::string_view::npos ? q1 : v.find('?', q1 + 1);
      size_t end = q2 == std::string_view::npos ? q2 : v.find("?=", q2 + 1);
      if (end != std::string_view::npos) {
        if (auto d = decode_word(v.substr(i, end + 2 - i))) {
          if (!last_was_word) out += pending_space;
          pending_space.clear();
          out += *d;
          i = end + 2;
          last_was_word = true;
          continue;
        }
      }
    }
    if (v[i] == ' ' || v[i] == '\t') {
      pending_space.push_back(v[i]);
      ++i;
      continue;
    }
    out += pending_space;
    pending_space.clear();
    out.push_back(v[i]);
    last_was_word = false;
    ++i;
  }
  out += pending_space;
  return out;
}

}  // namespace

std::string rendered_header(std::string_view message, std::string_view name) {
  size_t pos = 0;
  while (pos < message.size()) {
    size_t eol = message.find('\n', pos);
    std::string_view line =
        message.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return "";  // end of the header block
    size_t colon = line.find(':');
    pos = eol == std::string_view::npos ? message.size() : eol + 1;
    if (colon == std::string_view::npos || line[0] == ' ' || line[0] == '\t' ||
        !iequals(line.substr(0, colon), name)) {
      continue;
    }
    std::string value(line.substr(colon + 1));
    // Continuation lines: unfolding removes the CRLF, keeps the white space.
    while (pos < message.size() && (message[pos] == ' ' || message[pos] == '\t')) {
      size_t e = message.find('\n', pos);
      std::string_view cont =
          message.substr(pos, e == std::string_view::npos ? std::string_view::npos : e - pos);
      if (!cont.empty() && cont.back() == '\r') cont.remove_suffix(1);
      value += cont;
      pos = e == std::string_view::npos ? message.size() : e + 1;
    }
    std::string decoded = decode_words(value);
    size_t b = decoded.find_first_not_of(" \t");
    size_t e = decoded.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : decoded.substr(b, e - b + 1);
  }
  return "";
}

}  // namespace sb
