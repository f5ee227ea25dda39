// DKIM and one-click unsubscribe flags: groups checked, keys and secret loaded once.
#include "cli/dkim_options.h"

#include <sys/stat.h>

#include <cstdio>
#include <set>

#include "message/dkim.h"
#include "message/template.h"
#include "message/unsubscribe.h"

namespace sb {

namespace {

Error config(std::string m) { return make_error(ErrDomain::kConfig, std::move(m)); }

// A flag given once applies to every key; given more often, it needs one value per key.
Result<std::string> nth(const std::vector<std::string>& v, size_t i, size_t keys, const char* flag,
                        const std::string& fallback, bool required) {
  if (v.empty()) {
    if (required) {
      return config(std::string("--dkim-key ") + "needs " + flag + " (the " + flag +
                    " goes with the key: give it once for all keys, or once per --dkim-key in "
                    "the same order)");
    }
    return fallback;
  }
  if (v.size() == 1) return v[0];
  if (v.size() != keys) {
    return config(std::string(flag) + " is given " + std::to_string(v.size()) + " times for " +
                  std::to_string(keys) + " --dkim-key: give it once for all keys, or once per key "
                  "in the same order");
  }
  return v[i];
}

}  // namespace

void add_dkim_key_options(CLI::App* cmd, MessageOptions& o) {
  cmd->add_option("--dkim-key", o.dkim_keys,
                  "DKIM private key (PEM, RSA >= 1024 bits or Ed25519); repeat to sign with "
                  "several keys (e.g. RSA and Ed25519, RFC 8463)");
  cmd->add_option("--dkim-domain", o.dkim_domains,
                  "DKIM signing domain d= (the From: domain or a parent, for DMARC); once, or "
                  "once per --dkim-key");
  cmd->add_option("--dkim-selector", o.dkim_selectors,
                  "DKIM selector s=: the key's TXT record is at SELECTOR._domainkey.DOMAIN; one "
                  "per --dkim-key");
  cmd->add_option("--dkim-algorithm", o.dkim_algorithms,
                  "rsa-sha256 or ed25519-sha256 (default: what the key is); once, or once per "
                  "--dkim-key");
}

void add_message_options(CLI::App* cmd, MessageOptions& o) {
  add_dkim_key_options(cmd, o);
  cmd->add_option("--dkim-canon", o.dkim_canons,
                  "header/body canonicalization: relaxed/relaxed (default), simple/simple, "
                  "relaxed/simple or simple/relaxed; once, or once per --dkim-key");
  cmd->add_option("--unsubscribe-url", o.unsubscribe_url,
                  "add List-Unsubscribe: <URL> and List-Unsubscribe-Post (RFC 8058 one-click); "
                  "an https:// URL, {{token}} is a signed per-recipient token and {{field}} a "
                  "merge field (percent-encoded), e.g. https://example.com/u?t={{token}}");
  cmd->add_option("--unsubscribe-mailto", o.unsubscribe_mailto,
                  "also list <mailto:ADDR> in List-Unsubscribe");
  cmd->add_option("--unsubscribe-secret-file", o.unsubscribe_secret_file,
                  "file holding the secret that signs {{token}} (at least 16 bytes, e.g. "
                  "openssl rand -hex 32 > FILE); the web service verifies tokens with it");
  cmd->add_option("--unsubscribe-secret", o.secret_on_argv,
                  "refused: secrets do not go on the command line; use --unsubscribe-secret-file");
}

Result<MessageSetup> prepare_message_options(const MessageOptions& o) {
  MessageSetup s;
  if (!o.secret_on_argv.empty()) {
    return config("--unsubscribe-secret: a secret on the command line is visible to every user "
                  "(ps, /proc); put it in a file and give --unsubscribe-secret-file");
  }
  const size_t n = o.dkim_keys.size();
  if (n == 0) {
    for (const auto* v : {&o.dkim_domains, &o.dkim_selectors, &o.dkim_algorithms, &o.dkim_canons}) {
      if (!v->empty()) {
        const char* flag = v == &o.dkim_domains      ? "--dkim-domain"
                           : v == &o.dkim_selectors  ? "--dkim-selector"
                           : v == &o.dkim_algorithms ? "--dkim-algorithm"
                                                     : "--dkim-canon";
        return config(std::string(flag) + " is given without --dkim-key");
      }
    }
  }
  if (n > 0 && o.dkim_selectors.size() != n) {
    if (o.dkim_selectors.size() < n) {
      return config("--dkim-key " + o.dkim_keys[o.dkim_selectors.size()] +
                    " has no --dkim-selector: give one --dkim-selector per --dkim-key, in the "
                    "same order");
    }
    return config("--dkim-selector is given " + std::to_string(o.dkim_selectors.size()) +
                  " times for " + std::to_string(n) + " --dkim-key");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < n; ++i) {
    DkimKeyConfig kc;
    kc.key_file = o.dkim_keys[i];
    kc.selector = o.dkim_selectors[i];
    auto d = nth(o.dkim_domains, i, n, "--dkim-domain", "", true);
    if (!d.ok()) return d.error();
    kc.domain = *d;
    auto a = nth(o.dkim_algorithms, i, n, "--dkim-algorithm", "", false);
    if (!a.ok()) return a.error();
    kc.algorithm = *a;
    auto c = nth(o.dkim_canons, i, n, "--dkim-canon", "relaxed/relaxed", false);
    if (!c.ok()) return c.error();
    size_t slash = c->find('/');
    kc.header_canon = c->substr(0, slash);
    kc.body_canon = slash == std::string::npos ? "simple" : c->substr(slash + 1);  // RFC 6376 §3.5
    if ((kc.header_canon != "relaxed" && kc.header_canon != "simple") ||
        (kc.body_canon != "relaxed" && kc.body_canon != "simple")) {
      return config("--dkim-canon '" + *c + "' is not one of relaxed/relaxed, simple/simple, " +
                    "relaxed/simple, simple/relaxed");
    }
    auto signer = DkimSigner::create(kc);
    if (!signer.ok()) return config("--dkim-key: " + signer.error().message);
    if (!names.insert((*signer)->dns_name()).second) {
      return config("--dkim-key " + kc.key_file + ": selector " + kc.selector + " of " +
                    kc.domain + " is used by another --dkim-key; each key needs its own selector");
    }
    for (const std::string& w : (*signer)->warnings()) s.warnings.push_back(w);
    s.dkim.push_back(std::shared_ptr<const DkimSigner>(std::move(signer).value()));
  }

  s.unsubscribe_url = o.unsubscribe_url;
  s.unsubscribe_mailto = o.unsubscribe_mailto;
  if (!o.unsubscribe_url.empty()) {
    if (Status c = check_unsubscribe_url(o.unsubscribe_url); !c.ok()) return c.error();
  }
  if (!o.unsubscribe_mailto.empty()) {
    if (Status c = check_unsubscribe_mailto(o.unsubscribe_mailto); !c.ok()) return c.error();
  }
  const bool token = unsubscribe_url_has_token(o.unsubscribe_url);
  if (token && o.unsubscribe_secret_file.empty()) {
    return config("--unsubscribe-url uses {{token}}: give --unsubscribe-secret-file with the "
                  "secret that signs the tokens");
  }
  if (!o.unsubscribe_secret_file.empty()) {
    if (o.unsubscribe_url.empty()) {
      return config("--unsubscribe-secret-file goes with an --unsubscribe-url that uses {{token}}");
    }
    auto sec = load_unsubscribe_secret(o.unsubscribe_secret_file);
    if (!sec.ok()) return sec.error();
    s.unsubscribe_secret = std::move(sec).value();
    struct stat st {};
    if (::stat(o.unsubscribe_secret_file.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
      s.warnings.push_back("--unsubscribe-secret-file " + o.unsubscribe_secret_file +
                           " is readable by group or others; chmod 600 it");
    }
    if (!token) {
      s.warnings.push_back("--unsubscribe-url has no {{token}}: the secret is not used, and the "
                           "URL does not say who unsubscribes");
    }
  }
  return s;
}

void apply_message_setup(const MessageSetup& s, const std::string& task_key, TemplateOptions& t) {
  t.dkim = s.dkim;
  t.unsubscribe.url = s.unsubscribe_url;
  t.unsubscribe.mailto = s.unsubscribe_mailto;
  t.unsubscribe.secret = s.unsubscribe_secret;
  t.unsubscribe.task_id = task_key;
}

void print_message_warnings(const MessageSetup& s, const CompiledTemplate& t) {
  for (const std::string& w : s.warnings) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  for (const std::string& w : t.warnings()) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
}

int run_dkim_record(const MessageOptions& o) {
  if (o.dkim_keys.empty()) {
    std::fprintf(stderr, "smtpblast: dkim-record: give --dkim-key, --dkim-domain and "
                         "--dkim-selector\n");
    return 2;
  }
  auto s = prepare_message_options(o);
  if (!s.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", s.error().message.c_str());
    return 2;
  }
  for (const std::string& w : s->warnings) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  for (const auto& signer : s->dkim) {
    // A TXT string holds at most 255 octets; DNS software joins the strings of one record.
    std::string rec = signer->dns_txt_record();
    std::printf("%s. 3600 IN TXT (", signer->dns_name().c_str());
    for (size_t p = 0; p < rec.size(); p += 255) {
      std::printf("%s\"%s\"", p == 0 ? " " : "\n    ", rec.substr(p, 255).c_str());
    }
    std::printf(" )\n");
  }
  return 0;
}

}  // namespace sb
