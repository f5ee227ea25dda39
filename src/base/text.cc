// Text helpers written once: ASCII case, the domain of an address, base64, a whole file read.
#include "base/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace sb {

std::string lower_ascii(std::string_view s) {
  std::string r(s);
  lower_ascii_in_place(r);
  return r;
}

void lower_ascii_in_place(std::string& s) {
  for (char& c : s) c = lower_ascii(c);
}

bool is_ascii(std::string_view s) {
  // Eight octets at a time: every merge value of every message passes here (issue 17).
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    if ((w & 0x8080808080808080ULL) != 0) return false;
  }
  for (; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  }
  return true;
}

std::string_view trim_space(std::string_view s, std::string_view chars) {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(chars) - b + 1);
}

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

bool icontains(std::string_view hay, std::string_view needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [](char a, char b) { return lower_ascii(a) == lower_ascii(b); }) != hay.end();
}

std::string domain_of(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return lower_ascii(address.substr(at + 1));
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

Error b64_error(const std::string& why) {
  return make_error(ErrDomain::kInput, "invalid base64: " + why);
}

}  // namespace

void append_base64(std::string& out, std::string_view in) {
  out.reserve(out.size() + (in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t n = (uint32_t{static_cast<uint8_t>(in[i])} << 16) |
                 (uint32_t{static_cast<uint8_t>(in[i + 1])} << 8) | static_cast<uint8_t>(in[i + 2]);
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(kB64[(n >> 6) & 63]);
    out.push_back(kB64[n & 63]);
  }
  if (i < in.size()) {
    uint32_t n = uint32_t{static_cast<uint8_t>(in[i])} << 16;
    if (i + 1 < in.size()) n |= uint32_t{static_cast<uint8_t>(in[i + 1])} << 8;
    out.push_back(kB64[(n >> 18) & 63]);
    out.push_back(kB64[(n >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kB64[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
}

std::string base64_encode(std::string_view in) {
  std::string out;
  append_base64(out, in);
  return out;
}

Result<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) {
    return b64_error("length " + std::to_string(in.size()) + " is not a multiple of 4");
  }
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    size_t pad = 0;
    if (last && in[i + 3] == '=') pad = in[i + 2] == '=' ? 2 : 1;
    uint32_t n = 0;
    for (size_t k = 0; k < 4; ++k) {
      int v = k < 4 - pad ? base64_value(in[i + k]) : 0;
      if (v < 0) {
        return b64_error("unexpected '" + std::string(1, in[i + k]) + "' at offset " +
                         std::to_string(i + k));
      }
      n = (n << 6) | static_cast<uint32_t>(v);
    }
    // Non-canonical forms ("QR==" for "A") decode to the same bytes as the canonical one;
    // refusing them keeps one spelling per value (RFC 4648 section 3.5).
    if ((pad == 2 && (n & 0xFFFF) != 0) || (pad == 1 && (n & 0xFF) != 0)) {
      return b64_error("non-zero padding bits at offset " + std::to_string(i));
    }
    out.push_back(static_cast<char>((n >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xFF));
  }
  return out;
}

namespace {

Error cannot_read(const std::string& path, std::string why) {
  return make_error(ErrDomain::kInput, "cannot read " + path + ": " + why);
}

std::string reason(const std::string& path, int err) {
  if (err == ENOENT) return "no such file";
  if (err == EISDIR) return "it is a directory, not a file";
  if (err == EACCES) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      char buf[96];
      std::snprintf(buf, sizeof buf,
                    "permission denied (owner uid %u, mode %04o; running as uid %u)",
                    static_cast<unsigned>(st.st_uid), static_cast<unsigned>(st.st_mode & 07777),
                    static_cast<unsigned>(::geteuid()));
      return buf;
    }
    return "permission denied (on the file or a directory above it)";
  }
  return std::strerror(err);
}

}  // namespace

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot_read(path, reason(path, errno));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return cannot_read(path, reason(path, EISDIR));
  }
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return cannot_read(path, reason(path, e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

bool parse_octets(std::string_view s, uint64_t max, uint64_t& out) {
  size_t digits = 0;
  while (digits < s.size() && ((s[digits] >= '0' && s[digits] <= '9') || s[digits] == '.'))
    ++digits;
  if (digits == 0) return false;
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(std::string(s.substr(0, digits)), &used);
    if (used != digits) return false;
  } catch (...) {
    return false;
  }
  std::string unit = lower_ascii(s.substr(digits));
  double mult = unit.empty() || unit == "b"   ? 1
                : unit == "k" || unit == "kb" ? 1024
                : unit == "m" || unit == "mb" ? 1024 * 1024
                : unit == "g" || unit == "gb" ? 1024.0 * 1024 * 1024
                                              : 0;
  if (mult == 0 || !(v * mult >= 1) || v * mult > static_cast<double>(max)) return false;
  out = static_cast<uint64_t>(v * mult);
  return true;
}

}  // namespace sb
