// Encoders for merge values on the render path: dot-stuffing, quoted-printable, RFC 2047, dates.
#include "message/encode.h"

#include <algorithm>

#include "base/text.h"

namespace sb {
namespace {

constexpr char kHex[] = "0123456789ABCDEF";

// "=?UTF-8?B?" + "?=" is 12 octets; 75 - 12 leaves 63, so 60 base64 chars = 45 input bytes.
constexpr size_t kWordBytes = 45;
// Quoted-printable lines are at most 76 octets including the "=" of a soft line break.
constexpr size_t kQpMaxCol = 75;

void put_line_byte(std::string& out, char c, bool dot_stuff, size_t& col) {
  if (col == 0 && dot_stuff && c == '.') out.push_back('.');
  out.push_back(c);
  ++col;
}

void put_crlf(std::string& out, size_t& col) {
  out.append("\r\n", 2);
  col = 0;
}

void append_2digits(std::string& out, unsigned v) {
  out.push_back(char('0' + v / 10 % 10));
  out.push_back(char('0' + v % 10));
}

}  // namespace

bool has_eight_bit(std::string_view v) {
  return std::any_of(v.begin(), v.end(), [](char c) { return uint8_t(c) >= 0x80; });
}

size_t append_body_raw(std::string& out, std::string_view v, bool dot_stuff, size_t& col,
                       bool& eight_bit) {
  size_t longest = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < v.size() && v[i + 1] == '\n') ++i;
      longest = std::max(longest, col);
      put_crlf(out, col);
    } else if (c == '\0') {
      continue;
    } else {
      if (uint8_t(c) >= 0x80) eight_bit = true;
      put_line_byte(out, c, dot_stuff, col);
    }
  }
  return longest;
}

size_t append_body_qp(std::string& out, std::string_view v, bool dot_stuff, size_t& col) {
  size_t longest = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t c = uint8_t(v[i]);
    if (c == '\r' || c == '\n') {
      if (c == '\r' && i + 1 < v.size() && v[i + 1] == '\n') ++i;
      longest = std::max(longest, col);
      put_crlf(out, col);
      continue;
    }
    // Trailing white space before a line break would be stripped in transit (RFC 2045 rule
    // 3); the value's end may be followed by one, so white space ending the value is encoded.
    bool ws_at_end =
        (c == ' ' || c == '\t') && (i + 1 == v.size() || v[i + 1] == '\r' || v[i + 1] == '\n');
    bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !ws_at_end);
    size_t width = literal ? 1 : 3;
    if (col + width > kQpMaxCol) {
      out.push_back('=');
      longest = std::max(longest, col + 1);
      put_crlf(out, col);
    }
    if (literal) {
      put_line_byte(out, char(c), dot_stuff, col);
      // The common case, plain text: copy the run of octets that stay as they are and fit on
      // this line at once. (White space ends a run: it may be the value's last octet.)
      size_t j = i + 1;
      size_t end = std::min(v.size(), i + 1 + (kQpMaxCol - col));
      while (j < end) {
        auto d = uint8_t(v[j]);
        if (d < 33 || d > 126 || d == '=') break;
        ++j;
      }
      out.append(v.data() + i + 1, j - i - 1);
      col += j - i - 1;
      i = j - 1;
    } else {
      out.push_back('=');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
      col += 3;
    }
  }
  return longest;
}

void append_rfc2047(std::string& out, std::string_view v, size_t& col) {
  bool first = true;
  while (!v.empty()) {
    size_t n = std::min(kWordBytes, v.size());
    // Each encoded-word must hold whole characters (RFC 2047 §5): back off from a UTF-8
    // continuation byte. Invalid UTF-8 with no boundary in reach is cut where it falls.
    if (n < v.size()) {
      size_t k = n;
      while (k > 0 && (uint8_t(v[k]) & 0xC0) == 0x80 && n - k < 3) --k;
      if (k > 0 && (uint8_t(v[k]) & 0xC0) != 0x80) n = k;
    }
    if (!first) {
      // Folding white space between encoded-words is dropped by decoders.
      put_crlf(out, col);
      out.push_back(' ');
      col = 1;
    }
    size_t start = out.size();
    out.append("=?UTF-8?B?", 10);
    append_base64(out, v.substr(0, n));
    out.append("?=", 2);
    col += out.size() - start;
    v.remove_prefix(n);
    first = false;
  }
}

void append_encoded_words(std::string& out, std::string_view v, size_t first_room) {
  constexpr size_t kOverhead = 12;  // "=?UTF-8?B?" + "?="
  auto boundary = [&](size_t k) { return k >= v.size() || (uint8_t(v[k]) & 0xC0) != 0x80; };
  size_t room = first_room;
  bool first = true;
  while (!v.empty()) {
    size_t fit = room > kOverhead + 4 ? (room - kOverhead) / 4 * 3 : 0;
    size_t n = 0;
    bool q = false;
    if (v.size() <= fit) {
      n = v.size();  // the last word: base64 padding is fine here
    } else {
      // Every other "B" word holds a multiple of 3 octets, so its base64 has no padding:
      // GMime joins adjacent words of one charset before decoding and stops at a "=". And
      // each word holds whole characters (RFC 2047 §5), which Python's parser needs.
      for (size_t k = fit / 3 * 3; k > 0 && n == 0; k -= 3) {
        if (boundary(k)) n = k;
      }
      if (n == 0) {
        // No such cut in reach (say "a" and then 3-octet characters): one character as a
        // "Q" word realigns the rest.
        q = true;
        n = 1;
        while (n < v.size() && n < 4 && !boundary(n)) ++n;
      }
    }
    if (!first) out.push_back(' ');
    if (q) {
      out.append("=?UTF-8?Q?", 10);
      for (char ch : v.substr(0, n)) {
        auto c = uint8_t(ch);
        // RFC 2047 §5 (3): the characters a "Q" word may hold as they are, even in a phrase.
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '!' || c == '*' || c == '+' || c == '-' || c == '/') {
          out.push_back(ch);
        } else if (c == ' ') {
          out.push_back('_');
        } else {
          out.push_back('=');
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
        }
      }
    } else {
      out.append("=?UTF-8?B?", 10);
      append_base64(out, v.substr(0, n));
    }
    out.append("?=", 2);
    v.remove_prefix(n);
    first = false;
    room = 75;
  }
}

void append_html_escaped(std::string& out, std::string_view v) {
  size_t run = 0;  // start of the stretch copied as is
  for (size_t i = 0; i < v.size(); ++i) {
    std::string_view ent;
    switch (v[i]) {
      case '&': ent = "&amp;"; break;
      case '<': ent = "&lt;"; break;
      case '>': ent = "&gt;"; break;
      case '"': ent = "&quot;"; break;
      case '\'': ent = "&#39;"; break;
      default: continue;
    }
    out.append(v.data() + run, i - run);
    out.append(ent);
    run = i + 1;
  }
  out.append(v.data() + run, v.size() - run);
}

void append_percent_encoded(std::string& out, std::string_view v) {
  for (char ch : v) {
    auto c = uint8_t(ch);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

void append_literal_qp(std::string& out, std::string_view v, size_t& col, bool line_end) {
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t c = uint8_t(v[i]);
    bool ws_at_end = (c == ' ' || c == '\t') && i + 1 == v.size() && line_end;
    bool literal = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !ws_at_end);
    size_t width = literal ? 1 : 3;
    if (col + width > kQpMaxCol) {
      out.append("=\r\n", 3);
      col = 0;
    }
    if (literal) {
      out.push_back(char(c));
    } else {
      out.push_back('=');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
    col += width;
  }
}

void append_rfc5322_date(std::string& out, int64_t t) {
  static constexpr const char* kDays[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  t = std::clamp<int64_t>(t, 0, 253402300799);  // 9999-12-31T23:59:59Z keeps 4-digit years
  int64_t days = t / 86400;
  int64_t secs = t % 86400;
  // civil_from_days (H. Hinnant): no gmtime, no locale, no time zone database.
  int64_t z = days + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;

  out.append(kDays[days % 7], 3);
  out.append(", ", 2);
  append_2digits(out, unsigned(d));
  out.push_back(' ');
  out.append(kMonths[m - 1], 3);
  out.push_back(' ');
  append_2digits(out, unsigned(y / 100));
  append_2digits(out, unsigned(y % 100));
  out.push_back(' ');
  append_2digits(out, unsigned(secs / 3600));
  out.push_back(':');
  append_2digits(out, unsigned(secs / 60 % 60));
  out.push_back(':');
  append_2digits(out, unsigned(secs % 60));
  out.append(" +0000", 6);
}

void dot_stuff_inner(std::string_view crlf_text, std::string& out) {
  for (size_t i = 0; i < crlf_text.size(); ++i) {
    out.push_back(crlf_text[i]);
    if (crlf_text[i] == '\n' && i + 1 < crlf_text.size() && crlf_text[i + 1] == '.') {
      out.push_back('.');
    }
  }
}

}  // namespace sb
