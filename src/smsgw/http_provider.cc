// HTTP SMS provider: field templates filled per message, answers judged by code and JSON path.
#include "smsgw/http_provider.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace sb {

namespace {

std::string fill(const std::string& tpl, const HttpProviderConfig& cfg, const std::string& secret,
                 const SmsFields& sms) {
  std::string out;
  size_t i = 0;
  while (i < tpl.size()) {
    size_t open = tpl.find("{{", i);
    if (open == std::string::npos) break;
    size_t close = tpl.find("}}", open + 2);
    if (close == std::string::npos) break;
    out.append(tpl, i, open - i);
    const std::string name = tpl.substr(open + 2, close - open - 2);
    if (name == "to") {
      out += sms.to;
    } else if (name == "to_digits") {
      out += sms.to.rfind('+', 0) == 0 ? sms.to.substr(1) : sms.to;
    } else if (name == "from") {
      out += sms.from;
    } else if (name == "text") {
      out += sms.text;
    } else if (name == "account") {
      out += cfg.account;
    } else if (name == "secret") {
      out += secret;
    } else {
      out.append(tpl, open, close + 2 - open);  // not ours: kept as written
    }
    i = close + 2;
  }
  out.append(tpl, i, std::string::npos);
  return out;
}

std::string url_escape(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// Printable, one line, at most 200 characters: the provider's text is untrusted.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= 200) break;
    out += (c >= 0x20 && c != 0x7f) || c >= 0x80 ? static_cast<char>(c) : ' ';
  }
  return out;
}

const nlohmann::json* walk(const nlohmann::json& j, const std::string& path) {
  const nlohmann::json* cur = &j;
  size_t i = 0;
  while (i <= path.size()) {
    size_t dot = path.find('.', i);
    if (dot == std::string::npos) dot = path.size();
    const std::string key = path.substr(i, dot - i);
    if (cur->is_object()) {
      auto it = cur->find(key);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array() && !key.empty() &&
               std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      size_t idx = std::stoul(key);
      if (idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    } else {
      return nullptr;
    }
    i = dot + 1;
  }
  return cur;
}

}  // namespace

std::string json_path_text(const std::string& json, const std::string& path, bool* found) {
  *found = false;
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded()) return "";
  const nlohmann::json* v = walk(j, path);
  if (v == nullptr || v->is_null()) return "";
  *found = true;
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

HttpRequest build_http_sms(const HttpProviderConfig& cfg, const std::string& secret,
                           const SmsFields& sms) {
  HttpRequest r;
  r.method = cfg.method;
  r.url = fill(cfg.url, cfg, secret, sms);
  r.timeout_ms = cfg.timeout_ms;
  if (cfg.auth == HttpAuth::kBasic) {
    r.user = cfg.user;
    r.password = secret;
  } else if (cfg.auth == HttpAuth::kBearer) {
    r.bearer = secret;
  }
  if (cfg.body == HttpBody::kJson) {
    nlohmann::json body = nlohmann::json::object();
    for (const auto& [k, v] : cfg.fields) body[k] = fill(v, cfg, secret, sms);
    r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    r.headers.push_back("Content-Type: application/json");
  } else {
    for (const auto& [k, v] : cfg.fields) {
      if (!r.body.empty()) r.body += '&';
      r.body += url_escape(k) + "=" + url_escape(fill(v, cfg, secret, sms));
    }
    r.headers.push_back("Content-Type: application/x-www-form-urlencoded");
  }
  r.headers.push_back("Accept: application/json");
  if (cfg.method == "GET" && !r.body.empty()) {
    r.url += (r.url.find('?') == std::string::npos ? "?" : "&") + r.body;
    r.body.clear();
  }
  return r;
}

HttpSmsOutcome evaluate_http_sms(const HttpProviderConfig& cfg, const HttpResponse& resp) {
  HttpSmsOutcome o;
  if (resp.status == 0) {
    o.verdict = HttpSmsVerdict::kDeferred;
    o.reason = "no answer: " + printable(resp.error);
    return o;
  }
  const std::string head = "HTTP " + std::to_string(resp.status);
  const bool listed = std::find(cfg.success_status.begin(), cfg.success_status.end(),
                                resp.status) != cfg.success_status.end();
  if (!listed) {
    o.reason = head + ": " + printable(resp.body);
    if (resp.status == 429 || resp.status >= 500) {
      o.verdict = HttpSmsVerdict::kDeferred;
      o.throttled = resp.status == 429;
    } else {
      o.verdict = HttpSmsVerdict::kFailed;
      o.fatal = resp.status == 401 || resp.status == 403;
    }
    return o;
  }
  if (!cfg.success_path.empty()) {
    bool found = false;
    std::string v = json_path_text(resp.body, cfg.success_path, &found);
    bool ok = found && (cfg.success_value.empty() ? v != "false" : v == cfg.success_value);
    if (!ok && found && !cfg.throttle_value.empty() && v == cfg.throttle_value) {
      o.verdict = HttpSmsVerdict::kDeferred;
      o.throttled = true;
      o.reason = head + ": " + cfg.success_path + " is \"" + printable(v) +
                 "\" (throttled): " + printable(resp.body);
      return o;
    }
    if (!ok) {
      o.verdict = HttpSmsVerdict::kFailed;
      o.reason = head + ": " + cfg.success_path + " is " +
                 (found ? "\"" + printable(v) + "\"" : std::string("missing")) + ": " +
                 printable(resp.body);
      return o;
    }
  }
  o.verdict = HttpSmsVerdict::kSent;
  if (!cfg.message_id_path.empty()) {
    bool found = false;
    o.message_id = printable(json_path_text(resp.body, cfg.message_id_path, &found));
  }
  o.reason = head + (o.message_id.empty() ? "" : " id " + o.message_id);
  return o;
}

}  // namespace sb
