// VERP tokens and Message-ID correlation; HMAC from OpenSSL, constant-time comparison.
#include "returns/verp.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>

namespace sb {
namespace {

constexpr size_t kMacHex = 10;

std::string mac_hex(std::string_view key, std::string_view task_key, int64_t id) {
  std::string data = std::string(task_key) + "." + std::to_string(id);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < kMacHex / 2; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

bool parse_id(std::string_view s, int64_t* id) {
  if (s.empty() || s.size() > 18) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *id);
  return ec == std::errc() && p == s.data() + s.size() && *id > 0;
}

bool is_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string verp_token(std::string_view key, std::string_view task_key, int64_t id) {
  return std::to_string(id) + "-" + mac_hex(key, task_key, id);
}

Status check_return_path(std::string_view tmpl) {
  size_t first = tmpl.find("{{id}}");
  if (first == std::string_view::npos || tmpl.find("{{id}}", first + 1) != std::string_view::npos) {
    return make_error(ErrDomain::kConfig, "--return-path '" + clean_text(tmpl, 100) +
                                              "' must contain {{id}} exactly once");
  }
  size_t at = tmpl.rfind('@');
  if (at == std::string_view::npos || at < first || at + 1 >= tmpl.size()) {
    return make_error(ErrDomain::kConfig, "--return-path '" + clean_text(tmpl, 100) +
                                              "' must be local@domain with {{id}} in the local "
                                              "part, e.g. bounces+{{id}}@bounce.example.com");
  }
  for (char c : tmpl) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '<' || c == '>' || c == '"' || c == ',') {
      return make_error(ErrDomain::kConfig, "--return-path '" + clean_text(tmpl, 100) +
                                                "' has a character not allowed in an address");
    }
  }
  return {};
}

std::string expand_return_path(std::string_view tmpl, std::string_view key,
                               std::string_view task_key, int64_t id) {
  std::string out(tmpl);
  size_t p = out.find("{{id}}");
  if (p != std::string::npos) out.replace(p, 6, verp_token(key, task_key, id));
  return out;
}

const char* match_method_name(MatchMethod m) {
  switch (m) {
    case MatchMethod::kNone:
      return "none";
    case MatchMethod::kVerp:
      return "verp";
    case MatchMethod::kMessageId:
      return "message-id";
    case MatchMethod::kEnvelopeId:
      return "envelope-id";
  }
  return "none";
}

Match match_return(const ReturnReport& r, const MatchKeys& keys) {
  Match m;
  if (!keys.verp_key.empty()) {
    for (const std::string& addr : r.delivered_to) {
      size_t at = addr.rfind('@');
      std::string_view local = std::string_view(addr).substr(0, at);
      size_t plus = local.rfind('+');
      if (plus == std::string_view::npos) continue;
      std::string_view tok = local.substr(plus + 1);
      size_t dash = tok.rfind('-');
      if (dash == std::string_view::npos) continue;
      int64_t id = 0;
      std::string_view mac = tok.substr(dash + 1);
      if (!parse_id(tok.substr(0, dash), &id) || mac.size() != kMacHex || !is_hex(mac)) continue;
      std::string want = mac_hex(keys.verp_key, keys.task_key, id);
      std::string got(mac);
      for (char& c : got) c = static_cast<char>(c | 0x20);  // MTAs may change the case
      if (CRYPTO_memcmp(want.data(), got.data(), kMacHex) != 0) {
        m.forged = true;
        m.why = "the VERP address " + addr + " does not verify (forged, or another task's)";
        return m;
      }
      m.method = MatchMethod::kVerp;
      m.id = id;
      m.why = "VERP address " + addr;
      return m;
    }
  }
  if (!keys.task_key.empty() && r.envelope_id.size() > keys.task_key.size() + 1 &&
      r.envelope_id.compare(0, keys.task_key.size(), keys.task_key) == 0 &&
      r.envelope_id[keys.task_key.size()] == '.') {
    int64_t id = 0;
    if (parse_id(std::string_view(r.envelope_id).substr(keys.task_key.size() + 1), &id) &&
        (r.original_message_id.empty() ||
         r.original_message_id.rfind(keys.task_key + "." + std::to_string(id) + "@", 0) == 0)) {
      m.method = MatchMethod::kEnvelopeId;
      m.id = id;
      m.why = "envelope id " + r.envelope_id;
      return m;
    }
  }
  if (!keys.task_key.empty() && !r.original_message_id.empty()) {
    std::string_view mid = r.original_message_id;
    size_t at = mid.find('@');
    std::string_view left = mid.substr(0, at);
    size_t dot = left.rfind('.');
    int64_t id = 0;
    if (dot != std::string_view::npos && left.substr(0, dot) == keys.task_key &&
        parse_id(left.substr(dot + 1), &id)) {
      m.method = MatchMethod::kMessageId;
      m.id = id;
      m.why = "original Message-ID <" + std::string(mid) + ">";
      return m;
    }
    m.why = "the original Message-ID <" + std::string(mid) + "> is not this task's";
    return m;
  }
  m.why = r.original_message_id.empty() ? "no VERP address and no original Message-ID"
                                        : "no task key to match against";
  return m;
}

}  // namespace sb
