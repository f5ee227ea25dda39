// Recipient address syntax checks done at import and the duplicate-detection key.
#include "store/address.h"

#include "base/display_text.h"
#include "base/text.h"
#include "base/utf8.h"

#include <cstdint>

namespace sb {
namespace {

constexpr size_t kMaxAddress = 254;  // RFC 5321 path limit (256) minus the angle brackets
constexpr size_t kMaxLocal = 64;
constexpr size_t kMaxDomain = 253;
constexpr size_t kMaxLabel = 63;

bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5322 atext, ASCII part.
bool is_atext(unsigned char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~': return true;
    default: return false;
  }
}

std::string char_name(unsigned char c) { return std::string("'") + static_cast<char>(c) + "'"; }

std::string local_problem(std::string_view local) {
  if (local.size() > kMaxLocal) return "local part longer than 64 octets";
  if (local.front() == '.' || local.back() == '.') return "local part starts or ends with '.'";
  for (size_t i = 0; i < local.size();) {
    unsigned char c = static_cast<unsigned char>(local[i]);
    if (c >= 0x80) {
      size_t n = utf8_len(local, i);
      if (n == 0) return "local part is not valid UTF-8";
      i += n;
      continue;
    }
    if (c == '.') {
      if (local[i + 1] == '.') return "local part contains '..'";
    } else if (c == '"') {
      return "quoted local parts are not supported";
    } else if (!is_atext(c)) {
      return "local part contains " + char_name(c);
    }
    ++i;
  }
  return {};
}

std::string domain_problem(std::string_view domain) {
  if (domain.front() == '[') return "address literals ([...]) are not supported";
  if (domain.size() > kMaxDomain) return "domain longer than 253 octets";
  if (domain.find('.') == std::string_view::npos) return "domain has no dot";
  size_t start = 0;
  while (start <= domain.size()) {
    size_t end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    std::string_view label = domain.substr(start, end - start);
    if (label.empty()) return "domain has an empty label";
    if (label.size() > kMaxLabel) return "domain label longer than 63 octets";
    if (label.front() == '-' || label.back() == '-') {
      return "domain label starts or ends with '-'";
    }
    for (size_t i = 0; i < label.size();) {
      unsigned char c = static_cast<unsigned char>(label[i]);
      if (c >= 0x80) {
        size_t n = utf8_len(label, i);
        if (n == 0) return "domain is not valid UTF-8";
        i += n;
        continue;
      }
      if (!is_alnum(c) && c != '-') return "domain contains " + char_name(c);
      ++i;
    }
    start = end + 1;
  }
  return {};
}

}  // namespace

std::string_view trim_ascii(std::string_view s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

std::string address_problem(std::string_view addr) {
  if (addr.empty()) return "empty address";
  for (char ch : addr) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == 0x7F) return "contains a space or control character";
  }
  if (addr.size() > kMaxAddress) return "longer than 254 octets";
  size_t at = addr.find('@');
  if (at == std::string_view::npos) return "no '@'";
  if (addr.find('@', at + 1) != std::string_view::npos) {
    return "more than one '@' (quoted local parts are not supported)";
  }
  if (at == 0) return "empty local part";
  if (at + 1 == addr.size()) return "empty domain";
  std::string p = local_problem(addr.substr(0, at));
  if (!p.empty()) return p;
  return domain_problem(addr.substr(at + 1));
}

void address_key(std::string_view addr, std::string& out) {
  out.assign(addr);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

std::string address_key(std::string_view addr) {
  std::string key;
  address_key(addr, key);
  return key;
}

std::string_view cap_utf8(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  // Back off over continuation bytes so the cut lands on a sequence boundary.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string printable(std::string_view s, size_t max) {
  std::string_view cut = cap_utf8(s, max);
  std::string out;
  out.reserve(cut.size() + 3);
  append_display_escaped(out, cut);  // the one escaping rule of every human-readable output
  if (cut.size() < s.size()) out += "...";
  return out;
}

namespace {

// The country calling code of an E.164 number ("+44" of "+447400123123"). The codes are
// prefix-free (ITU-T E.164): 1 and 7 have one digit; 20, 27, 30-34, 36, 39, 40, 41, 43-49,
// 51-58, 60-66, 81, 82, 84, 86, 90-95 and 98 two; every other code three.
std::string calling_code(std::string_view n) {
  if (n.size() < 2 || n[0] != '+') return "";
  const int a = n[1] - '0';
  if (a == 1 || a == 7) return std::string(n.substr(0, 2));
  if (n.size() < 3) return std::string(n);
  const int b = n[2] - '0';
  bool two = false;
  switch (a) {
    case 2: two = b == 0 || b == 7; break;
    case 3: two = b <= 4 || b == 6 || b == 9; break;
    case 4: two = b != 2; break;
    case 5: two = b >= 1 && b <= 8; break;
    case 6: two = b <= 6; break;
    case 8: two = b == 1 || b == 2 || b == 4 || b == 6; break;
    case 9: two = b <= 5 || b == 8; break;
    default: break;
  }
  return std::string(n.substr(0, two ? 3 : 4));
}

}  // namespace

std::string destination_of(std::string_view key) {
  if (!key.empty() && key[0] == '+' && key.find('@') == std::string_view::npos) {
    return calling_code(key);
  }
  return domain_of(key);
}

}  // namespace sb
