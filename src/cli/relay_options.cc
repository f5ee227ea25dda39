// Relay options: resolving the relay, the TLS context, and credentials kept off argv and logs.
#include "cli/relay_options.h"

#include <netdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "cli/session_advice.h"
#include "dns/resolver.h"
#include "loop/tls_engine.h"

namespace sb {

namespace {

bool split_host_port(const std::string& spec, std::string& host, std::string& port,
                     std::string* err) {
  host = spec;
  port = "25";
  if (!spec.empty() && spec[0] == '[') {
    size_t e = spec.find(']');
    if (e == std::string::npos) {
      *err = "unbalanced '[' in '" + spec + "'";
      return false;
    }
    host = spec.substr(1, e - 1);
    if (e + 1 < spec.size()) {
      if (spec[e + 1] != ':') {
        *err = "expected ':' after ']' in '" + spec + "'";
        return false;
      }
      port = spec.substr(e + 2);
    }
  } else if (size_t c = spec.rfind(':'); c != std::string::npos && spec.find(':') == c) {
    host = spec.substr(0, c);
    port = spec.substr(c + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (host.empty() || port.empty() || *end != '\0' || p <= 0 || p > 65535) {
    *err = "'" + spec + "' is not HOST:PORT";
    return false;
  }
  return true;
}

// First line of a file, without the line end; the file must not be readable by others.
Result<std::string> read_secret_file(const std::string& path, const char* flag,
                                     std::vector<std::string>* warnings) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error(ErrDomain::kConfig, std::string(flag) + ": cannot read " + path);
  std::string line;
  std::getline(f, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty())
    return make_error(ErrDomain::kConfig, std::string(flag) + ": " + path + " is empty");
  struct stat st {};
  if (warnings != nullptr && ::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    warnings->push_back(std::string(flag) + ": " + path +
                        " is readable by other users; chmod 600 it");
  }
  return line;
}

}  // namespace

bool parse_duration_ms(const std::string& s, uint32_t& out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit(end);
  double mult = unit.empty() || unit == "s" ? 1000
                : unit == "ms"              ? 1
                : unit == "m"               ? 60000
                : unit == "h"               ? 3600000
                                            : -1;
  if (end == s.c_str() || mult < 0 || v < 0) return false;
  out = static_cast<uint32_t>(v * mult);
  return true;
}

void add_relay_options(CLI::App* cmd, RelayOptions& o, bool relay_required) {
  auto* r = cmd->add_option("--relay", o.relay, "relay HOST:PORT");
  if (relay_required) r->required();
  cmd->add_option("--tls", o.tls,
                  "starttls (default), implicit (default for port 465), opportunistic or none")
      ->check(CLI::IsMember({"starttls", "implicit", "opportunistic", "none"}));
  cmd->add_option("--ca-file", o.ca_file, "also trust the CAs in this PEM file")
      ->check(CLI::ExistingFile);
  cmd->add_option("--tls-verify", o.tls_verify,
                  "yes (default) or no: check the relay's certificate")
      ->check(CLI::IsMember({"yes", "no"}));
  cmd->add_flag("--no-tls-resumption", o.no_resumption,
                "do a full TLS handshake on every connection (for measurements)");
  cmd->add_option("--user", o.user, "user name for AUTH");
  cmd->add_option("--password-file", o.password_file, "file whose first line is the password")
      ->check(CLI::ExistingFile);
  cmd->add_option("--oauth-token-file", o.oauth_token_file,
                  "file holding an OAuth 2 bearer token (AUTH XOAUTH2)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--oauth-token-cmd", o.oauth_token_cmd,
                  "command printing an OAuth 2 bearer token; run again when the token expires");
  cmd->add_option("--auth", o.auth, "auto (default), plain, login or xoauth2")
      ->check(CLI::IsMember({"auto", "plain", "login", "xoauth2"}));
  cmd->add_flag("--allow-plaintext-auth", o.allow_plaintext_auth,
                "allow AUTH over an unencrypted connection");
  cmd->add_option("--password", o.password_on_argv,
                  "refused: use --password-file or SMTPBLAST_PASSWORD");
  cmd->add_option("--helo", o.helo, "name sent with EHLO (default: this host's name)");
  cmd->add_option("--connect-timeout", o.connect_timeout, "TCP connect timeout");
  cmd->add_option("--command-timeout", o.command_timeout,
                  "wait at most this long for any SMTP reply, the greeting included (default: "
                  "RFC 5321's, 5 min per command and 10 min after the message)");
  // RFC 5321 §4.5.3.2's timeouts, one setting each (a config file's usual place for them).
  const struct {
    const char* flag;
    std::string RelayOptions::*field;
    const char* help;
  } per_command[] = {
      {"--greeting-timeout", &RelayOptions::greeting_timeout, "wait for the greeting (default 5m)"},
      {"--ehlo-timeout", &RelayOptions::ehlo_timeout,
       "wait for the EHLO, STARTTLS and AUTH replies (default 5m)"},
      {"--mail-timeout", &RelayOptions::mail_timeout,
       "wait for MAIL's (and RSET's, NOOP's) reply (default 5m)"},
      {"--rcpt-timeout", &RelayOptions::rcpt_timeout, "wait for each RCPT's reply (default 5m)"},
      {"--data-timeout", &RelayOptions::data_timeout, "wait for DATA's 354 (default 2m)"},
      {"--dot-timeout", &RelayOptions::dot_timeout,
       "wait for the reply after the message (end of data, each BDAT; default 10m)"},
      {"--quit-timeout", &RelayOptions::quit_timeout, "wait for QUIT's reply (default 1m)"},
  };
  for (const auto& t : per_command) {
    cmd->add_option(t.flag, o.*t.field, t.help)->group("SMTP timeouts");
  }
}

Result<Timeouts> command_timeouts(const RelayOptions& o) {
  Timeouts t;
  const struct {
    const char* flag;
    const std::string& value;
    uint32_t& ms;
  } per_command[] = {
      {"--greeting-timeout", o.greeting_timeout, t.greeting},
      {"--ehlo-timeout", o.ehlo_timeout, t.ehlo},
      {"--mail-timeout", o.mail_timeout, t.mail},
      {"--rcpt-timeout", o.rcpt_timeout, t.rcpt},
      {"--data-timeout", o.data_timeout, t.data},
      {"--dot-timeout", o.dot_timeout, t.dot},
      {"--quit-timeout", o.quit_timeout, t.quit},
  };
  for (const auto& c : per_command) {
    if (c.value.empty()) continue;
    if (!parse_duration_ms(c.value, c.ms) || c.ms == 0) {
      return make_error(ErrDomain::kConfig, std::string(c.flag) + ": '" + c.value +
                                                "' is not a duration (e.g. 30s, 5m)");
    }
  }
  return t;
}

std::string RelayCredentials::secret() const {
  std::lock_guard<std::mutex> g(mu_);
  return secret_;
}

Status RelayCredentials::fetch() {
  if (!token_cmd_.empty()) {
    // The command, not the token, is on our command line; its output stays in memory.
    FILE* p = ::popen(token_cmd_.c_str(), "r");
    if (p == nullptr) return make_error(ErrDomain::kConfig, "--oauth-token-cmd: cannot run it");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < 65536) out.append(buf, n);
    int rc = ::pclose(p);
    size_t nl = out.find_first_of("\r\n");
    if (nl != std::string::npos) out.resize(nl);
    if (rc != 0 || out.empty()) {
      return make_error(ErrDomain::kConfig, "--oauth-token-cmd exited with status " +
                                                std::to_string(WEXITSTATUS(rc)) +
                                                (out.empty() ? " and printed no token" : ""));
    }
    std::lock_guard<std::mutex> g(mu_);
    secret_ = std::move(out);
    return {};
  }
  if (!token_file_.empty()) {
    auto t = read_secret_file(token_file_, "--oauth-token-file", nullptr);
    if (!t.ok()) return t.error();
    std::lock_guard<std::mutex> g(mu_);
    secret_ = std::move(t).value();
  }
  return {};
}

bool RelayCredentials::refresh(std::string* error) {
  if (!oauth_) return false;
  std::string before = secret();
  Status s = fetch();
  if (!s.ok()) {
    *error = s.error().message;
    return false;
  }
  if (secret() == before) {
    *error = "the token source gave the same token again";
    return false;
  }
  return true;
}

Result<std::unique_ptr<RelayCredentials>> RelayCredentials::load(const RelayOptions& o) {
  auto c = std::make_unique<RelayCredentials>();
  c->user_ = o.user;
  int sources =
      (!o.password_file.empty()) + (!o.oauth_token_file.empty()) + (!o.oauth_token_cmd.empty());
  if (sources > 1) {
    return make_error(ErrDomain::kConfig,
                      "give one of --password-file, --oauth-token-file, --oauth-token-cmd");
  }
  if (!o.oauth_token_file.empty() || !o.oauth_token_cmd.empty()) {
    c->oauth_ = true;
    c->token_file_ = o.oauth_token_file;
    c->token_cmd_ = o.oauth_token_cmd;
    if (Status s = c->fetch(); !s.ok()) return s.error();
    return c;
  }
  if (!o.password_file.empty()) {
    auto p = read_secret_file(o.password_file, "--password-file", nullptr);
    if (!p.ok()) return p.error();
    c->secret_ = std::move(p).value();
    return c;
  }
  if (const char* env = std::getenv("SMTPBLAST_PASSWORD"); env != nullptr && *env != '\0') {
    c->secret_ = env;
    // Keep it out of the environment of anything we start (the token command).
    ::unsetenv("SMTPBLAST_PASSWORD");
    return c;
  }
  return make_error(ErrDomain::kConfig,
                    "--user needs a secret: --password-file F, SMTPBLAST_PASSWORD, "
                    "--oauth-token-file F or --oauth-token-cmd CMD");
}

namespace {

// The client TLS context for s.tls (not kNone). Opportunistic TLS checks nothing (RFC 7435):
// it only keeps passive listeners out. `sni_host`: the name to verify and send, "" for none.
Status make_tls_context(const RelayOptions& o, RelaySetup& s, const std::string& sni_host) {
  TlsClientConfig tc;
  tc.verify = o.tls_verify == "yes" && s.tls != TlsMode::kOpportunistic;
  tc.ca_file = o.ca_file;
  tc.sni_host = sni_host;
  tc.allow_resumption = !o.no_resumption;
  tc.describe_failure = &describe_tls_failure;
  auto ctx = TlsContext::create_client(tc);
  if (!ctx.ok()) return make_error(ErrDomain::kConfig, ctx.error().message);
  s.tls_context = std::move(ctx).value();
  return {};
}

Status parse_connect_timeout(const RelayOptions& o, RelaySetup& s) {
  if (!parse_duration_ms(o.connect_timeout, s.connect_timeout_ms) || s.connect_timeout_ms == 0) {
    return make_error(ErrDomain::kConfig,
                      "--connect-timeout: '" + o.connect_timeout + "' is not a duration");
  }
  if (!o.command_timeout.empty() &&
      (!parse_duration_ms(o.command_timeout, s.command_timeout_ms) || s.command_timeout_ms == 0)) {
    return make_error(ErrDomain::kConfig,
                      "--command-timeout: '" + o.command_timeout + "' is not a duration");
  }
  return {};
}

}  // namespace

Result<RelaySetup> prepare_relay(const RelayOptions& o) {
  RelaySetup s;
  if (!o.password_on_argv.empty()) {
    return make_error(ErrDomain::kConfig,
                      "--password: a password on the command line is visible to every user of "
                      "this machine (ps, /proc); use --password-file F or SMTPBLAST_PASSWORD");
  }
  std::string port;
  std::string err;
  if (!split_host_port(o.relay, s.host, port, &err)) {
    return make_error(ErrDomain::kConfig, "--relay: " + err);
  }
  s.name = "relay " + o.relay;
  s.peer = PeerRole::kRelay;
  s.describe_end = &describe_session_end;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(s.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return make_error(ErrDomain::kConfig,
                      "--relay: cannot resolve '" + s.host + "': " + gai_strerror(rc));
  }
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    s.addrs.push_back(ss);
  }
  freeaddrinfo(res);

  std::string mode = o.tls.empty() ? (port == "465" ? "implicit" : "starttls") : o.tls;
  s.tls = mode == "implicit"        ? TlsMode::kImplicit
          : mode == "none"          ? TlsMode::kNone
          : mode == "opportunistic" ? TlsMode::kOpportunistic
                                    : TlsMode::kStartTls;
  if (s.tls != TlsMode::kNone) {
    if (Status st = make_tls_context(o, s, s.host); !st.ok()) return st.error();
    if (o.tls_verify == "no") {
      s.warnings.push_back(
          "--tls-verify no: the relay's certificate is not checked; anyone "
          "between here and the relay can read and change this mailing");
    }
  }
  if (!o.user.empty()) {
    auto c = RelayCredentials::load(o);
    if (!c.ok()) return c.error();
    s.credentials = std::move(c).value();
    if (!o.password_file.empty())
      (void)read_secret_file(o.password_file, "--password-file", &s.warnings);
  } else if (!o.password_file.empty() || !o.oauth_token_file.empty() ||
             !o.oauth_token_cmd.empty()) {
    return make_error(ErrDomain::kConfig, "a password or token was given without --user");
  }
  s.auth = o.auth == "plain"     ? AuthMech::kPlain
           : o.auth == "login"   ? AuthMech::kLogin
           : o.auth == "xoauth2" ? AuthMech::kXoauth2
                                 : AuthMech::kAuto;
  s.allow_plaintext_auth = o.allow_plaintext_auth;
  if (Status st = parse_connect_timeout(o, s); !st.ok()) return st.error();
  if (port == "465" && s.tls != TlsMode::kImplicit) {
    // Port 465 is submission over implicit TLS (RFC 8314): such a server waits silently for
    // our ClientHello and never greets. A plaintext server on 465 greets at once, so waiting
    // as long as a connect may take is enough to tell the two apart: the user hears "use --tls
    // implicit" after the connect timeout, not after RFC 5321's 5-minute greeting timeout.
    s.greeting_timeout_ms = s.connect_timeout_ms;
    s.warnings.push_back("--tls " + mode +
                         " on port 465, which usually speaks TLS at once "
                         "(RFC 8314): if the server does not greet, use --tls implicit");
  }
  s.helo = o.helo;
  if (s.helo.empty()) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    s.helo = host;
  }
  return s;
}

Result<RelaySetup> prepare_direct(const RelayOptions& o) {
  RelaySetup s;
  if (!o.relay.empty()) {
    return make_error(ErrDomain::kConfig,
                      "--direct delivers to each domain's mail exchangers: "
                      "give --direct or --relay, not both");
  }
  if (!o.user.empty() || !o.password_file.empty() || !o.oauth_token_file.empty() ||
      !o.oauth_token_cmd.empty() || !o.password_on_argv.empty()) {
    return make_error(ErrDomain::kConfig,
                      "--direct: mail exchangers take no login; --user, "
                      "passwords and tokens go with --relay");
  }
  if (o.helo.empty()) {
    return make_error(ErrDomain::kConfig,
                      "--direct needs --helo NAME: the fully qualified name of this sending host "
                      "(what its IP address's PTR record says); receivers check it");
  }
  if (o.helo.find('.') == std::string::npos && o.helo.front() != '[') {
    s.warnings.push_back("--helo " + o.helo +
                         " is not a fully qualified domain name; many "
                         "receivers reject or junk mail from such a HELO");
  }
  s.helo = o.helo;
  s.name = "direct delivery";
  s.peer = PeerRole::kMailExchanger;
  s.describe_end = &describe_session_end;
  std::string mode = o.tls.empty() ? "opportunistic" : o.tls;
  if (mode == "implicit") {
    return make_error(ErrDomain::kConfig,
                      "--tls implicit: mail exchangers speak STARTTLS on port "
                      "25; use opportunistic (default), starttls or none");
  }
  s.tls = mode == "none"       ? TlsMode::kNone
          : mode == "starttls" ? TlsMode::kStartTls
                               : TlsMode::kOpportunistic;
  if (s.tls != TlsMode::kNone) {
    if (Status st = make_tls_context(o, s, ""); !st.ok()) return st.error();
  }
  if (Status st = parse_connect_timeout(o, s); !st.ok()) return st.error();
  return s;
}

void add_direct_options(CLI::App* cmd, DirectOptions& o, const std::string& direct_help) {
  cmd->add_flag("--direct", o.direct, direct_help);
  cmd->add_option("--dns-server", o.dns_servers,
                  "--direct: ask this DNS server (IP or IP:PORT, repeatable) instead of "
                  "/etc/resolv.conf");
  cmd->add_option("--dns-timeout", o.dns_timeout,
                  "--direct: wait this long for a DNS answer (the first of 3 tries; each later "
                  "try waits twice as long); default 5s");
  cmd->add_option("--mx-port", o.mx_port,
                  "--direct: the SMTP port of mail exchangers (default 25; for tests)")
      ->check(CLI::Range(1, 65535));
  cmd->add_flag("--ipv4-only", o.ipv4_only, "--direct: connect to IPv4 addresses only");
  cmd->add_flag("--ipv6-only", o.ipv6_only, "--direct: connect to IPv6 addresses only");
}

Result<DirectLookup> prepare_direct_lookup(const DirectOptions& o, const CLI::App& cmd,
                                           const std::vector<std::string>& also) {
  DirectLookup d;
  if (!o.direct) {
    std::vector<std::string> flags = {"--dns-server", "--dns-timeout", "--mx-port", "--ipv4-only",
                                      "--ipv6-only"};
    flags.insert(flags.end(), also.begin(), also.end());
    std::string given;
    std::string all;
    for (size_t i = 0; i < flags.size(); ++i) {
      if (given.empty() && cmd.count(flags[i]) > 0) given = flags[i];
      all += (i == 0 ? "" : i + 1 == flags.size() ? " and " : ", ") + flags[i];
    }
    if (!given.empty()) {
      return make_error(ErrDomain::kConfig,
                        given + " without --direct: " + all + " go with --direct");
    }
    return d;
  }
  if (!parse_duration_ms(o.dns_timeout, d.dns_timeout_ms) || d.dns_timeout_ms == 0 ||
      d.dns_timeout_ms > 60000) {
    return make_error(ErrDomain::kConfig, "--dns-timeout: '" + o.dns_timeout +
                                              "' is not a duration between 1ms and 60s");
  }
  for (const std::string& s : o.dns_servers) {
    if (auto a = dns::parse_server_address(s); !a.ok()) {
      return make_error(ErrDomain::kConfig, "--dns-server: " + a.error().message);
    }
  }
  if (o.ipv4_only && o.ipv6_only) {
    return make_error(ErrDomain::kConfig, "give one of --ipv4-only and --ipv6-only");
  }
  d.dns_servers = o.dns_servers;
  d.mx_port = o.mx_port;
  d.ipv4_only = o.ipv4_only;
  d.ipv6_only = o.ipv6_only;
  return d;
}

}  // namespace sb
