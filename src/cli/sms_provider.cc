// SMS providers from TOML: each key checked (type, range), presets filled in first.
#include "cli/sms_provider.h"

#include <netdb.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/config_file.h"
#include "loop/tls_context.h"
#include "throttle/rate_spec.h"

namespace sb {

namespace {

struct HttpPreset {
  const char* name;
  HttpProviderConfig cfg;
  // The API's published default throughput, the pace without `rate` or --rate, and why.
  const char* rate;
  const char* rate_why;
};

// The real APIs' shapes. Twilio: POST form To/From/Body to the account's Messages.json with
// basic auth (account SID : auth token), 201 and the message's "sid". Vonage (Nexmo) SMS API:
// POST form to /sms/json with api_key/api_secret in the body, 200 and messages[0].status "0"
// on success, messages[0]["message-id"].
std::vector<HttpPreset> make_presets() {
  std::vector<HttpPreset> p;
  {
    HttpProviderConfig c;
    c.preset = "twilio";
    c.url = "https://api.twilio.com/2010-04-01/Accounts/{{account}}/Messages.json";
    c.auth = HttpAuth::kBasic;
    c.body = HttpBody::kForm;
    c.fields = {{"To", "{{to}}"}, {"From", "{{from}}"}, {"Body", "{{text}}"}};
    c.success_status = {200, 201};
    c.message_id_path = "sid";
    // Twilio, "What are the limits on outbound messages per second?" (help.twilio.com): a
    // long code (a local or mobile number) sends 1 message segment per second, per number, to
    // the US and Canada; toll-free 3, other countries 10, short codes 100. A mailing from one
    // long code is the common case and the strictest, so 1/s; `rate` raises it for the others.
    p.push_back({"twilio", c, "1/s",
                 "preset twilio: Twilio sends 1 message segment a second from a long-code "
                 "number"});
  }
  {
    HttpProviderConfig c;
    c.preset = "vonage";
    c.url = "https://rest.nexmo.com/sms/json";
    c.auth = HttpAuth::kNone;
    c.body = HttpBody::kForm;
    c.fields = {{"api_key", "{{account}}"}, {"api_secret", "{{secret}}"}, {"to", "{{to_digits}}"},
                {"from", "{{from}}"},       {"text", "{{text}}"},         {"type", "unicode"}};
    c.success_status = {200};
    c.success_path = "messages.0.status";
    c.success_value = "0";
    c.throttle_value = "1";  // "Throttled": over the key's requests a second
    c.message_id_path = "messages.0.message-id";
    // Vonage, "What is the Throughput Limit for Outbound SMS?" (api.support.vonage.com, article
    // 203993598): "All API keys are set with 30 API requests per second throughput restriction
    // by default"; more is throttled (status 1). One SMS API request is one message.
    p.push_back({"vonage", c, "30/s",
                 "preset vonage: Vonage's default of 30 API requests a second per API key"});
  }
  return p;
}

const std::vector<HttpPreset>& presets() {
  static const std::vector<HttpPreset> p = make_presets();
  return p;
}

class TableReader {
 public:
  TableReader(const toml::table& t, std::string file, std::string section)
      : t_(t), file_(std::move(file)), section_(std::move(section)) {}

  Error error(const toml::node* n, const std::string& key, const std::string& what) const {
    uint32_t line = n != nullptr ? static_cast<uint32_t>(n->source().begin.line)
                                 : static_cast<uint32_t>(t_.source().begin.line);
    return make_error(ErrDomain::kConfig, file_ + ":" + std::to_string(line) + ": key '" + key +
                                              "' in " + section_ + ": " + what);
  }

  // Every key of the table must be one of `allowed`.
  Status only(const std::set<std::string>& allowed) const {
    for (auto&& [k, node] : t_) {
      const std::string key(k.str());
      if (allowed.count(key) == 0) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        return error(&node, key, "unknown key (known: " + list + ")");
      }
    }
    return {};
  }

  Status str(const std::string& key, std::string& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return {};
    auto v = n->value_exact<std::string>();
    if (!v) return error(n, key, "give a string");
    out = *v;
    return {};
  }
  Status boolean(const std::string& key, bool& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return {};
    auto v = n->value_exact<bool>();
    if (!v) return error(n, key, "give true or false");
    out = *v;
    return {};
  }
  Status integer(const std::string& key, int64_t lo, int64_t hi, int64_t& out) const {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return {};
    auto v = n->value_exact<int64_t>();
    if (!v || *v < lo || *v > hi) {
      return error(n, key,
                   "give a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    out = *v;
    return {};
  }
  template <class T>
  Status number(const std::string& key, int64_t lo, int64_t hi, T& out) const {
    int64_t v = static_cast<int64_t>(out);
    if (Status st = integer(key, lo, hi, v); !st.ok()) return st;
    out = static_cast<T>(v);
    return {};
  }
  Status secret(const std::string& prefix, SecretSource& out) const {
    std::string file, env, cmd;
    if (Status st = str(prefix + "_file", file); !st.ok()) return st;
    if (Status st = str(prefix + "_env", env); !st.ok()) return st;
    if (Status st = str(prefix + "_cmd", cmd); !st.ok()) return st;
    if (!file.empty() + !env.empty() + !cmd.empty() > 1) {
      return error(t_.get(prefix + "_file"), prefix + "_file",
                   "give one of " + prefix + "_file, " + prefix + "_env, " + prefix + "_cmd");
    }
    if (file.rfind("~/", 0) == 0) {
      if (const char* home = std::getenv("HOME"); home != nullptr) file = home + file.substr(1);
    }
    if (!file.empty() || !env.empty() || !cmd.empty()) out = SecretSource{file, env, cmd};
    return {};
  }
  const toml::node* get(const std::string& key) const { return t_.get(key); }

 private:
  const toml::table& t_;
  std::string file_;
  std::string section_;
};

Status parse_smpp(const TableReader& r, ProviderConfig& p) {
  static const std::set<std::string> kKeys = {
      "type",         "host",         "port",        "tls",        "system_id",  "password_file",
      "password_env", "password_cmd", "system_type", "source_ton", "source_npi", "window",
      "tps",          "receipts",     "bind",        "from",       "country",    "tls_verify",
      "ca_file",      "tls_host",     "rate"};
  if (Status st = r.only(kKeys); !st.ok()) return st;
  SmppProviderConfig& c = p.smpp;
  if (Status st = r.str("host", c.host); !st.ok()) return st;
  if (c.host.empty()) return r.error(r.get("host"), "host", "required: the SMSC's host name or IP");
  if (Status st = r.number("port", 1, 65535, c.port); !st.ok()) return st;
  if (Status st = r.boolean("tls", c.tls); !st.ok()) return st;
  if (Status st = r.boolean("tls_verify", c.tls_verify); !st.ok()) return st;
  if (Status st = r.str("ca_file", c.ca_file); !st.ok()) return st;
  if (c.ca_file.rfind("~/", 0) == 0) {
    if (const char* home = std::getenv("HOME"); home != nullptr)
      c.ca_file = home + c.ca_file.substr(1);
  }
  if (Status st = r.str("tls_host", c.tls_host); !st.ok()) return st;
  for (const char* k : {"tls_verify", "ca_file", "tls_host"}) {
    if (!c.tls && r.get(k) != nullptr) {
      return r.error(r.get(k), k, "only with tls = true (the SMSC is spoken to in clear)");
    }
  }
  if (Status st = r.str("system_id", c.system_id); !st.ok()) return st;
  if (c.system_id.empty()) {
    return r.error(r.get("system_id"), "system_id", "required: the account the SMSC gave you");
  }
  if (c.system_id.size() > 15) {
    return r.error(r.get("system_id"), "system_id", "SMPP allows at most 15 characters");
  }
  if (Status st = r.secret("password", c.password); !st.ok()) return st;
  if (Status st = r.str("system_type", c.system_type); !st.ok()) return st;
  if (c.system_type.size() > 12) {
    return r.error(r.get("system_type"), "system_type", "SMPP allows at most 12 characters");
  }
  if (Status st = r.number("source_ton", 0, 6, c.source_ton); !st.ok()) return st;
  if (Status st = r.number("source_npi", 0, 18, c.source_npi); !st.ok()) return st;
  if (Status st = r.number("window", 1, 1000, c.window); !st.ok()) return st;
  if (Status st = r.number("tps", 0, 100000, c.tps); !st.ok()) return st;
  if (Status st = r.boolean("receipts", c.receipts); !st.ok()) return st;
  std::string bind = "transceiver";
  if (Status st = r.str("bind", bind); !st.ok()) return st;
  if (bind != "transceiver") {
    return r.error(r.get("bind"), "bind",
                   "only \"transceiver\" (receipts and replies come back on the same bind)");
  }
  return {};
}

Status parse_fields(const TableReader& r, HttpProviderConfig& c) {
  const toml::node* n = r.get("fields");
  if (n == nullptr) return {};
  const toml::table* t = n->as_table();
  if (t == nullptr) {
    return r.error(n, "fields", "give a table of names and templates: { To = \"{{to}}\" }");
  }
  c.fields.clear();
  for (auto&& [k, v] : *t) {
    auto s = v.value_exact<std::string>();
    if (!s) return r.error(&v, "fields." + std::string(k.str()), "give a string template");
    c.fields.emplace_back(std::string(k.str()), *s);
  }
  return {};
}

Status parse_http(const TableReader& r, ProviderConfig& p) {
  static const std::set<std::string> kKeys = {
      "type",           "preset",       "url",           "method",         "auth",
      "user",           "account",      "password_file", "password_env",   "password_cmd",
      "token_file",     "token_env",    "token_cmd",     "body",           "fields",
      "success_status", "success_path", "success_value", "throttle_value", "message_id_path",
      "timeout",        "tps",          "rate",          "from",           "country"};
  if (Status st = r.only(kKeys); !st.ok()) return st;
  HttpProviderConfig& c = p.http;
  std::string preset;
  if (Status st = r.str("preset", preset); !st.ok()) return st;
  if (!preset.empty()) {
    bool found = false;
    for (const HttpPreset& pr : presets()) {
      if (preset == pr.name) {
        c = pr.cfg;
        p.rate = pr.rate;
        p.rate_origin = pr.rate_why;
        found = true;
      }
    }
    if (!found) {
      std::string list;
      for (const auto& nm : http_preset_names()) list += (list.empty() ? "" : ", ") + nm;
      return r.error(r.get("preset"), "preset",
                     "unknown preset '" + preset + "' (known: " + list + ")");
    }
  }
  if (Status st = r.str("url", c.url); !st.ok()) return st;
  if (c.url.empty()) return r.error(r.get("url"), "url", "required (or a preset)");
  if (c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0) {
    return r.error(r.get("url"), "url", "give an http:// or https:// URL");
  }
  if (Status st = r.str("method", c.method); !st.ok()) return st;
  if (c.method != "POST" && c.method != "PUT" && c.method != "GET") {
    return r.error(r.get("method"), "method", "give POST, PUT or GET");
  }
  std::string auth;
  if (Status st = r.str("auth", auth); !st.ok()) return st;
  if (auth == "basic") {
    c.auth = HttpAuth::kBasic;
  } else if (auth == "bearer") {
    c.auth = HttpAuth::kBearer;
  } else if (auth == "none") {
    c.auth = HttpAuth::kNone;
  } else if (!auth.empty()) {
    return r.error(r.get("auth"), "auth", "give \"basic\", \"bearer\" or \"none\"");
  }
  if (Status st = r.str("user", c.user); !st.ok()) return st;
  if (Status st = r.str("account", c.account); !st.ok()) return st;
  if (c.account.empty()) c.account = c.user;
  if (c.user.empty() && c.auth == HttpAuth::kBasic) c.user = c.account;
  SecretSource password, token;
  if (Status st = r.secret("password", password); !st.ok()) return st;
  if (Status st = r.secret("token", token); !st.ok()) return st;
  if (!password.empty() && !token.empty()) {
    return r.error(r.get("token_file"), "token_file",
                   "give a password_* (basic auth, {{secret}}) or a token_* (bearer), not both");
  }
  c.secret = !token.empty() ? token : password;
  if (c.auth == HttpAuth::kBasic && c.user.empty()) {
    return r.error(r.get("user"), "user", "required with auth = \"basic\"");
  }
  if (c.auth != HttpAuth::kNone && c.secret.empty()) {
    const char* key = c.auth == HttpAuth::kBearer ? "token_file" : "password_file";
    return r.error(nullptr, key,
                   std::string("required with auth = \"") +
                       (c.auth == HttpAuth::kBearer ? "bearer" : "basic") +
                       "\" (or the _env / _cmd form)");
  }
  std::string body;
  if (Status st = r.str("body", body); !st.ok()) return st;
  if (body == "json") {
    c.body = HttpBody::kJson;
  } else if (body == "form") {
    c.body = HttpBody::kForm;
  } else if (!body.empty()) {
    return r.error(r.get("body"), "body", "give \"form\" or \"json\"");
  }
  if (Status st = parse_fields(r, c); !st.ok()) return st;
  if (c.fields.empty()) {
    return r.error(r.get("fields"), "fields",
                   "required: the request's fields, e.g. { to = \"{{to}}\", text = \"{{text}}\" }");
  }
  bool has_text = false;
  for (const auto& f : c.fields) has_text |= f.second.find("{{text}}") != std::string::npos;
  if (!has_text) return r.error(r.get("fields"), "fields", "no field carries {{text}}");
  if (const toml::node* n = r.get("success_status")) {
    c.success_status.clear();
    auto add = [&](const toml::node& el) -> Status {
      auto v = el.value_exact<int64_t>();
      if (!v || *v < 100 || *v > 599)
        return r.error(&el, "success_status", "give HTTP status codes (100..599)");
      c.success_status.push_back(static_cast<int>(*v));
      return {};
    };
    if (const toml::array* a = n->as_array()) {
      for (const toml::node& el : *a) {
        if (Status st = add(el); !st.ok()) return st;
      }
    } else if (Status st = add(*n); !st.ok()) {
      return st;
    }
    if (c.success_status.empty()) return r.error(n, "success_status", "give at least one code");
  }
  if (Status st = r.str("success_path", c.success_path); !st.ok()) return st;
  if (Status st = r.str("success_value", c.success_value); !st.ok()) return st;
  if (Status st = r.str("throttle_value", c.throttle_value); !st.ok()) return st;
  if (!c.throttle_value.empty() && c.success_path.empty()) {
    return r.error(r.get("throttle_value"), "throttle_value",
                   "needs success_path: it is a value found there");
  }
  if (Status st = r.str("message_id_path", c.message_id_path); !st.ok()) return st;
  int64_t timeout_s = c.timeout_ms / 1000;
  if (Status st = r.integer("timeout", 1, 600, timeout_s); !st.ok()) return st;
  c.timeout_ms = static_cast<uint32_t>(timeout_s * 1000);
  if (Status st = r.number("tps", 0, 100000, c.tps); !st.ok()) return st;
  if (c.url.find("{{account}}") != std::string::npos && c.account.empty()) {
    return r.error(r.get("account"), "account", "required: the URL holds {{account}}");
  }
  return {};
}

// The provider's pace: `rate` ("1/s", "600/min"), or `tps` (messages a second), over a
// preset's default; both at once would leave the reader guessing which one holds.
Status parse_rate_keys(const TableReader& r, ProviderConfig& p) {
  const uint32_t tps = p.type == "smpp" ? p.smpp.tps : p.http.tps;
  const std::string where = "[provider." + p.name + "]";
  std::string rate;
  if (Status st = r.str("rate", rate); !st.ok()) return st;
  if (r.get("rate") != nullptr) {
    if (r.get("tps") != nullptr)
      return r.error(r.get("rate"), "rate", "give rate or tps, not both");
    auto spec = parse_rate(rate);
    if (!spec.ok()) return r.error(r.get("rate"), "rate", spec.error().message);
    p.rate = spec->describe();
    p.rate_origin = "`rate` in " + where;
  } else if (tps != 0) {
    p.rate = std::to_string(tps) + "/s";
    p.rate_origin = "`tps` in " + where;
  }
  return {};
}

Status parse_provider(const toml::table& t, const std::string& file, const std::string& name,
                      ProviderConfig& p) {
  const std::string section = "[provider." + name + "]";
  TableReader r(t, file, section);
  p.name = name;
  p.source = file + ":" + std::to_string(t.source().begin.line);
  if (Status st = r.str("type", p.type); !st.ok()) return st;
  if (Status st = r.str("from", p.sender); !st.ok()) return st;
  if (Status st = r.str("country", p.country); !st.ok()) return st;
  if (!p.country.empty() &&
      (p.country.size() != 2 || !std::isupper(static_cast<unsigned char>(p.country[0])) ||
       !std::isupper(static_cast<unsigned char>(p.country[1])))) {
    return r.error(r.get("country"), "country", "give a two-letter region code such as \"GB\"");
  }
  Status st;
  if (p.type == "smpp") {
    st = parse_smpp(r, p);
  } else if (p.type == "http") {
    st = parse_http(r, p);
  } else if (p.type.empty()) {
    return r.error(nullptr, "type", "required: \"smpp\" or \"http\"");
  } else {
    return r.error(r.get("type"), "type", "give \"smpp\" or \"http\", not \"" + p.type + "\"");
  }
  if (!st.ok()) return st;
  return parse_rate_keys(r, p);
}

Status parse_doc(const toml::table& doc, const std::string& file,
                 std::map<std::string, ProviderConfig>& out) {
  const toml::node* n = doc.get("provider");
  if (n == nullptr) return {};
  const toml::table* providers = n->as_table();
  if (providers == nullptr) {
    return make_error(ErrDomain::kConfig,
                      file + ":" + std::to_string(n->source().begin.line) +
                          ": key 'provider': providers are [provider.NAME] sections");
  }
  for (auto&& [k, node] : *providers) {
    const std::string name(k.str());
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      return make_error(ErrDomain::kConfig, file + ":" + std::to_string(node.source().begin.line) +
                                                ": provider." + name + ": give a [provider." +
                                                name + "] section");
    }
    ProviderConfig p;
    if (Status st = parse_provider(*t, file, name, p); !st.ok()) return st;
    out[name] = std::move(p);
  }
  return {};
}

}  // namespace

std::vector<std::string> http_preset_names() {
  std::vector<std::string> out;
  for (const HttpPreset& p : presets()) out.emplace_back(p.name);
  return out;
}

Result<std::map<std::string, ProviderConfig>> parse_providers(const std::string& text,
                                                              const std::string& file) {
  std::map<std::string, ProviderConfig> out;
  try {
    toml::table doc = toml::parse(text, file);
    if (Status st = parse_doc(doc, file, out); !st.ok()) return st.error();
  } catch (const toml::parse_error& e) {
    return make_error(ErrDomain::kConfig, file + ":" + std::to_string(e.source().begin.line) +
                                              ": " + std::string(e.description()));
  }
  return out;
}

Result<std::map<std::string, ProviderConfig>> load_providers(
    const std::vector<std::string>& paths) {
  std::map<std::string, ProviderConfig> out;
  for (const std::string& path : paths) {
    if (Status st = check_config_owner(path); !st.ok()) return st.error();
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in && !in.eof()) return make_error(ErrDomain::kConfig, path + ": cannot read");
    auto one = parse_providers(text.str(), path);
    if (!one.ok()) return one.error();
    for (auto& [name, p] : *one) out[name] = std::move(p);
  }
  return out;
}

Result<ProviderConfig> find_provider(const std::string& name, const std::string& provider_config) {
  std::vector<std::string> paths;
  if (!provider_config.empty()) {
    paths.push_back(provider_config);
  } else {
    auto found = config_paths("");
    if (!found.ok()) return found.error();
    paths = *found;
  }
  auto all = load_providers(paths);
  if (!all.ok()) return all.error();
  auto it = all->find(name);
  if (it == all->end()) {
    std::string list;
    for (const auto& [n, p] : *all) list += (list.empty() ? "" : ", ") + n;
    return make_error(ErrDomain::kConfig,
                      "--provider " + name + ": no [provider." + name + "] in " +
                          (paths.empty() ? std::string("any config file") : paths.back()) +
                          (list.empty() ? "" : " (defined: " + list + ")"));
  }
  return it->second;
}

namespace {

// The SMPP settings of a provider, with its password read now.
Result<SmppConfig> smpp_session_config(const ProviderConfig& p, const std::string& sender) {
  SmppConfig c;
  c.system_id = p.smpp.system_id;
  auto pw = read_secret(p.smpp.password, "provider." + p.name + " password");
  if (!pw.ok()) return pw.error();
  c.password = *pw;
  c.system_type = p.smpp.system_type;
  c.source_addr = sender;
  c.source_ton = p.smpp.source_ton;
  c.source_npi = p.smpp.source_npi;
  c.window = p.smpp.window;
  c.request_receipts = p.smpp.receipts;
  if (std::string why = smpp_config_problem(c); !why.empty()) {
    return make_error(ErrDomain::kConfig, "[provider." + p.name + "] " + why);
  }
  return c;
}

// The SMSC's numeric address "IP:PORT" ("[v6]:PORT"); a name is looked up here (a
// command-line verb may block).
Result<std::string> smsc_address(const SmppProviderConfig& s) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(s.port);
  if (int rc = ::getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return make_error(ErrDomain::kConfig, "SMSC host " + s.host + ": " + gai_strerror(rc));
  }
  char host[NI_MAXHOST];
  int rc =
      ::getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  const bool v6 = res->ai_family == AF_INET6;
  ::freeaddrinfo(res);
  if (rc != 0) return make_error(ErrDomain::kConfig, "SMSC host " + s.host + ": no address");
  return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + port;
}

}  // namespace

std::string sms_account_key(const ProviderConfig& p) {
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  if (p.type == "smpp") {
    return "smpp " + p.smpp.system_id + " at " + lower(p.smpp.host) + ":" +
           std::to_string(p.smpp.port);
  }
  const HttpProviderConfig& h = p.http;
  std::string url = h.url;
  for (size_t at; (at = url.find("{{account}}")) != std::string::npos;) {
    url.replace(at, 11, h.account);
  }
  // A query string may carry a key (?api_key=...&api_secret=...): the path names the API.
  url = url.substr(0, url.find_first_of("?#"));
  const size_t host = url.find("://") == std::string::npos ? 0 : url.find("://") + 3;
  const size_t path = std::min(url.find('/', host), url.size());
  if (size_t at = url.rfind('@', path); at != std::string::npos && at >= host) {
    url.erase(host, at + 1 - host);  // user:password@
  }
  const size_t end = std::min(url.find('/', host), url.size());
  url = lower(url.substr(0, end)) + url.substr(end);
  return "http " + (h.account.empty() ? std::string() : h.account + " ") + "at " + url;
}

Result<SmppConnConfig> smpp_conn_config(const ProviderConfig& p, const std::string& sender) {
  SmppConnConfig cc;
  auto cfg = smpp_session_config(p, sender);
  if (!cfg.ok()) return cfg.error();
  cc.session = std::move(cfg).value();
  auto addr = smsc_address(p.smpp);
  if (!addr.ok()) return addr.error();
  cc.address = std::move(addr).value();
  if (p.smpp.tls) {
    TlsClientConfig tc;
    tc.verify = p.smpp.tls_verify;
    tc.ca_file = p.smpp.ca_file;
    tc.sni_host = p.smpp.tls_host.empty() ? p.smpp.host : p.smpp.tls_host;
    auto ctx = TlsContext::create_client(tc);
    if (!ctx.ok()) {
      return make_error(ErrDomain::kConfig,
                        "[provider." + p.name + "] tls: " + ctx.error().message);
    }
    cc.tls = true;
    cc.tls_ctx = std::move(ctx).value();
    cc.tls_host = tc.sni_host;
  }
  return cc;
}

}  // namespace sb
