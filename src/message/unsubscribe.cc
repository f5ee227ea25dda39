// One-click unsubscribe tokens (HMAC-SHA256, truncated) and List-Unsubscribe header builders.
#include "message/unsubscribe.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "base/text.h"

namespace sb {
namespace {

constexpr unsigned char kVersion = 0x01;
constexpr size_t kMacLen = 16;  // 128 bits: forging needs 2^128 tries; keeps URLs short
// Domain separation: the same secret used for something else never yields a valid token.
constexpr std::string_view kLabel = "smtpblast unsubscribe token v1";

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void mac(std::string_view secret, std::string_view payload, unsigned char out[32]) {
  // HMAC(secret, label || 0x00 || payload)
  std::string msg;
  msg.reserve(kLabel.size() + 1 + payload.size());
  msg.append(kLabel).push_back('\0');
  msg.append(payload);
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), int(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
}

}  // namespace

std::string base64url_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  size_t i = 0;
  auto b = [&](size_t k) { return uint32_t(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8) | b(i + 2);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (in.size() - i == 1) {
    uint32_t v = b(i) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    uint32_t v = (b(i) << 16) | (b(i + 1) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

bool base64url_decode(std::string_view in, std::string& out) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);  // tolerate padding
  if (in.size() % 4 == 1) return false;
  out.clear();
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z')
      v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z')
      v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9')
      v = ch - '0' + 52;
    else if (ch == '-')
      v = 62;
    else if (ch == '_')
      v = 63;
    else
      return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xff);
    }
  }
  // Leftover bits must be zero, so each token has exactly one spelling.
  return (acc & ((1u << bits) - 1)) == 0;
}

Result<std::string> load_unsubscribe_secret(const std::string& path) {
  auto read = read_file(path);  // says why: missing, a directory, permission denied
  if (!read.ok()) {
    return make_error(ErrDomain::kConfig, "unsubscribe secret file: " + read.error().message);
  }
  std::string s = std::move(*read);
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  if (s.size() < kMinUnsubscribeSecret) {
    return make_error(ErrDomain::kConfig,
                      "unsubscribe secret file " + path + " holds " + std::to_string(s.size()) +
                          " bytes; it needs at least 16 (e.g. openssl rand -hex 32 > " + path +
                          ")");
  }
  return s;
}

std::string make_token(std::string_view secret, std::string_view task_id,
                       std::string_view recipient) {
  if (recipient.size() > 0xffff) recipient = recipient.substr(0, 0xffff);  // no real address is
  std::string raw;
  raw.reserve(3 + recipient.size() + task_id.size() + kMacLen);
  raw += char(kVersion);
  raw += char((recipient.size() >> 8) & 0xff);
  raw += char(recipient.size() & 0xff);
  raw.append(recipient);
  raw.append(task_id);
  unsigned char m[32];
  mac(secret, raw, m);
  raw.append(reinterpret_cast<const char*>(m), kMacLen);
  return base64url_encode(raw);
}

Result<UnsubToken> verify_token(std::string_view secret, std::string_view token) {
  auto bad = [](const char* why) {
    return make_error(ErrDomain::kInput, std::string("unsubscribe token ") + why);
  };
  std::string raw;
  if (token.size() > 4096 || !base64url_decode(token, raw)) return bad("is not base64url");
  if (raw.size() < 3 + kMacLen) return bad("is too short");
  if (static_cast<unsigned char>(raw[0]) != kVersion) return bad("has an unknown version");
  size_t rlen = (size_t(static_cast<unsigned char>(raw[1])) << 8) |
                size_t(static_cast<unsigned char>(raw[2]));
  if (3 + rlen + kMacLen > raw.size()) return bad("is malformed");
  std::string_view payload(raw.data(), raw.size() - kMacLen);
  unsigned char m[32];
  mac(secret, payload, m);
  if (CRYPTO_memcmp(m, raw.data() + payload.size(), kMacLen) != 0) {
    return bad("does not match its signature (tampered, or made with another secret)");
  }
  UnsubToken t;
  t.recipient.assign(raw.data() + 3, rlen);
  t.task_id.assign(raw.data() + 3 + rlen, payload.size() - 3 - rlen);
  return t;
}

std::string expand_unsubscribe_url(std::string_view url_template, std::string_view token) {
  static constexpr std::string_view kPh = "{{token}}";
  std::string out;
  out.reserve(url_template.size() + token.size());
  for (;;) {
    size_t p = url_template.find(kPh);
    if (p == std::string_view::npos) break;
    out.append(url_template.substr(0, p)).append(token);
    url_template.remove_prefix(p + kPh.size());
  }
  out.append(url_template);
  return out;
}

namespace {

bool url_char_ok(char ch) {
  auto c = uint8_t(ch);
  if (c <= 0x20 || c >= 0x7f) return false;
  return std::string_view("<>\"\\^`|{}").find(ch) == std::string_view::npos;
}

std::string_view trim_ws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Status check_unsubscribe_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return make_error(ErrDomain::kConfig, "--unsubscribe-url " + std::string(url) + ": " + why);
  };
  if (url.size() > 2000) return bad("longer than 2000 octets");
  size_t colon = url.find(':');
  std::string scheme(url.substr(0, colon == std::string_view::npos ? 0 : colon));
  for (char& c : scheme) c = char(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (scheme != "https" || url.substr(colon, 3) != "://") {
    return bad("must be an https:// URL (RFC 8058: one-click unsubscribe is an HTTPS POST; "
               "receivers ignore List-Unsubscribe-Post for other schemes)");
  }
  std::string_view rest = url.substr(colon + 3);
  size_t host_end = rest.find_first_of("/?#");
  if (rest.substr(0, host_end).empty()) return bad("has no host");
  if (rest.substr(0, host_end).find("{{") != std::string_view::npos) {
    return bad("the host cannot be a placeholder");
  }
  for (size_t i = 0; i < url.size(); ++i) {
    if (url.substr(i, 2) == "{{") {
      size_t close = url.find("}}", i + 2);
      if (close == std::string_view::npos) return bad("unterminated \"{{\" (missing \"}}\")");
      std::string_view name = trim_ws(url.substr(i + 2, close - i - 2));
      bool ok = !name.empty();
      for (char c : name) {
        ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.');
      }
      if (!ok) return bad("invalid placeholder \"" + std::string(url.substr(i, close + 2 - i)) + "\"");
      i = close + 1;
      continue;
    }
    if (!url_char_ok(url[i])) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", unsigned(uint8_t(url[i])));
      return bad(std::string("contains ") +
                 (uint8_t(url[i]) > 0x20 && uint8_t(url[i]) < 0x7f
                      ? "'" + std::string(1, url[i]) + "'"
                      : std::string(buf)) +
                 ", which must be percent-encoded in a URL");
    }
  }
  return {};
}

bool unsubscribe_url_has_token(std::string_view url) {
  for (size_t p = url.find("{{"); p != std::string_view::npos; p = url.find("{{", p + 2)) {
    size_t close = url.find("}}", p + 2);
    if (close == std::string_view::npos) return false;
    if (trim_ws(url.substr(p + 2, close - p - 2)) == "token") return true;
  }
  return false;
}

Status check_unsubscribe_mailto(std::string_view mailto) {
  std::string_view a = mailto.substr(0, 7) == "mailto:" ? mailto.substr(7) : mailto;
  size_t at = a.find('@');
  bool ok = at != std::string_view::npos && at > 0 && at + 1 < a.size() && a.size() < 1000;
  for (char c : a) ok = ok && url_char_ok(c) && c != ',';
  if (!ok) {
    return make_error(ErrDomain::kConfig,
                      "--unsubscribe-mailto " + std::string(mailto) +
                          ": not an address (local@domain, optionally ?subject=…; no spaces, "
                          "commas, <, > or placeholders)");
  }
  return {};
}

std::string list_unsubscribe_header(std::string_view https_url, std::string_view mailto) {
  std::string h = "List-Unsubscribe: <";
  h.append(https_url).append(">");
  if (!mailto.empty()) {
    // Folded between the two URIs: the header stays readable, and no URI is ever split.
    h += ",\r\n <";
    if (mailto.substr(0, 7) != "mailto:") h += "mailto:";
    h.append(mailto).append(">");
  }
  h += "\r\n";
  return h;
}

std::string list_unsubscribe_post_header() {
  return "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
}

}  // namespace sb
