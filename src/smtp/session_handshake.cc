// The session's opening after the greeting: EHLO (or HELO) and the capabilities, STARTTLS,
// AUTH, and keeping the secret out of replies, transcripts and freed memory.
#include <algorithm>

#include "base/text.h"
#include "smtp/session.h"

namespace sb {

namespace {

// Overwrites a secret's bytes before the string is freed.
void wipe(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); ++i) p[i] = 0;
  s.clear();
}

// The base64 runs that appear inside ANY base64 text containing `secret`, whatever its
// offset modulo 3: a server may echo the whole payload or a part of it.
void add_base64_cores(std::string_view secret, std::vector<std::string>& out) {
  for (size_t pad = 0; pad < 3; ++pad) {
    std::string in(pad, '\0');
    in.append(secret);
    std::string enc = base64_encode(in);
    size_t skip = (pad * 4 + 2) / 3;  // characters that carry bits of the padding
    size_t full = in.size() / 3 * 4;  // characters of whole groups only
    if (full > skip + 3) out.push_back(enc.substr(skip, full - skip));
    wipe(in);
    wipe(enc);
  }
}

}  // namespace

void Session::handle_ehlo(const Reply& r, uint64_t now_ms) {
  bool was_ehlo = phase_ == Phase::kEhlo;
  if (!r.positive() && r.code == 421) {
    close_with(EndCause::kServerClosing, "server closing the connection: " + r.summary(), 421);
    return;
  }
  if (!r.positive()) {
    if (was_ehlo && r.permanent()) {
      // An old server that does not know EHLO (RFC 5321 §3.2).
      phase_ = Phase::kHelo;
      cmd_.assign("HELO ").append(cfg_.helo).append("\r\n");
      send_line(cmd_, false);
      expect(Kind::kHelo, nullptr, 0, now_ms);
      return;
    }
    close_with(EndCause::kHeloRefused,
               std::string("server refused ") + (was_ehlo ? "EHLO" : "HELO") + ": " + r.summary(),
               r.code);
    return;
  }
  caps_ = ServerCaps{};
  caps_.esmtp = was_ehlo;
  if (was_ehlo) {
    std::string_view text = r.text;
    bool first = true;
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      if (first) {  // the first line is the server's name, not a keyword
        first = false;
        continue;
      }
      size_t sp = line.find_first_of(" =");
      // EHLO keywords are case-insensitive (RFC 5321 §2.4), ASCII only.
      std::string_view kw = line.substr(0, sp);
      std::string_view arg = sp == std::string_view::npos ? "" : line.substr(sp + 1);
      if (iequals(kw, "PIPELINING"))
        caps_.pipelining = true;
      else if (iequals(kw, "CHUNKING"))
        caps_.chunking = true;
      else if (iequals(kw, "8BITMIME"))
        caps_.eight_bit_mime = true;
      else if (iequals(kw, "SMTPUTF8"))
        caps_.smtputf8 = true;
      else if (iequals(kw, "STARTTLS"))
        caps_.starttls = true;
      else if (iequals(kw, "DSN"))
        caps_.dsn = true;
      else if (iequals(kw, "ENHANCEDSTATUSCODES"))
        caps_.enhanced_codes = true;
      else if (iequals(kw, "AUTH"))
        caps_.auth.assign(arg);
      else if (iequals(kw, "SIZE")) {
        caps_.size = true;
        uint64_t v = 0;
        for (char c : arg) {
          if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) break;
          v = v * 10 + static_cast<uint64_t>(c - '0');
        }
        caps_.max_size = v;
      }
    }
  }
  pipelining_ = caps_.pipelining && cfg_.use_pipelining;
  after_ehlo(now_ms);
}

void Session::after_ehlo(uint64_t now_ms) {
  bool want_tls = cfg_.tls == TlsMode::kStartTls ||
                  (cfg_.tls == TlsMode::kOpportunistic && caps_.starttls && !starttls_declined_);
  if (!tls_active_ && want_tls) {
    if (!caps_.starttls) {
      close_with(EndCause::kStartTlsNotOffered,
                 the_peer() + " does not offer STARTTLS, and TLS is required; nothing sent", 0,
                 FatalCause::kTls);
      return;
    }
    phase_ = Phase::kStartTls;
    send_line("STARTTLS\r\n", false);
    expect(Kind::kStartTls, nullptr, 0, now_ms);
    return;
  }
  if (cfg_.credentials != nullptr && !authenticated_) {
    start_auth(now_ms);
    return;
  }
  phase_ = Phase::kReady;
  ready_reached_ = true;
}

void Session::start_auth(uint64_t now_ms) {
  if (!tls_active_ && !cfg_.allow_plaintext_auth) {
    close_with(EndCause::kPlaintextAuthRefused,
               "refusing to send credentials over an unencrypted connection", 0, FatalCause::kAuth);
    return;
  }
  const std::string offered = caps_.auth;
  // One of the space-separated mechanism names, in any case.
  auto offers = [&](std::string_view m) {
    std::string_view rest = offered;
    while (true) {
      size_t sp = rest.find(' ');
      if (iequals(rest.substr(0, sp), m)) return true;
      if (sp == std::string_view::npos) return false;
      rest.remove_prefix(sp + 1);
    }
  };
  if (offered.empty()) {
    close_with(EndCause::kAuthNotOffered,
               the_peer() + " does not offer AUTH" + (tls_active_ ? " after STARTTLS" : "") +
                   "; cannot authenticate",
               0, FatalCause::kAuth);
    return;
  }
  Credentials& cr = *cfg_.credentials;
  AuthMech m = cfg_.auth;
  if (m == AuthMech::kAuto) {
    m = cr.is_oauth()     ? AuthMech::kXoauth2
        : offers("PLAIN") ? AuthMech::kPlain
        : offers("LOGIN") ? AuthMech::kLogin
                          : AuthMech::kAuto;
  }
  const char* name = m == AuthMech::kXoauth2 ? "XOAUTH2"
                     : m == AuthMech::kPlain ? "PLAIN"
                     : m == AuthMech::kLogin ? "LOGIN"
                                             : "";
  if (m == AuthMech::kAuto || !offers(name)) {
    close_with(EndCause::kAuthNoMechanism,
               the_peer() + " offers AUTH " + offered +
                   (m == AuthMech::kAuto ? "" : std::string(", not ") + name) +
                   "; no mechanism smtpblast can use",
               0, FatalCause::kAuth);
    return;
  }
  mech_ = m;
  phase_ = Phase::kAuth;
  std::string secret = cr.secret();
  std::string payload;
  // A server may echo what it got in its refusal: every form of the secret we send is
  // redacted from the replies of the exchange (see redact()).
  secret_forms_.push_back(secret);
  std::string shown;
  append_sanitised(shown, secret, secret.size() * 2 + 8);
  secret_forms_.push_back(std::move(shown));
  add_base64_cores(secret, secret_forms_);
  if (m == AuthMech::kPlain) {
    payload.append(1, '\0').append(cr.user()).append(1, '\0').append(secret);
    secret_forms_.push_back(base64_encode(payload));
    cmd_.assign("AUTH PLAIN ").append(base64_encode(payload)).append("\r\n");
    send_line(cmd_, true);
  } else if (m == AuthMech::kXoauth2) {
    // "\x01" and "auth" are separate literals: "\x01auth" would read as the hex escape \x01a.
    payload.append("user=")
        .append(cr.user())
        .append(
            "\x01"
            "auth=Bearer ")
        .append(secret);
    payload.append("\x01\x01");
    secret_forms_.push_back(base64_encode(payload));
    cmd_.assign("AUTH XOAUTH2 ").append(base64_encode(payload)).append("\r\n");
    send_line(cmd_, true);
  } else {
    secret_forms_.push_back(base64_encode(secret));
    send_line("AUTH LOGIN\r\n", false);
  }
  // Longest first, so a payload is redacted whole rather than around a shorter form.
  std::sort(secret_forms_.begin(), secret_forms_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  wipe(payload);
  wipe(secret);
  wipe(cmd_);
  auth_step_ = 1;
  expect(Kind::kAuth, nullptr, 0, now_ms);
}

void Session::handle_auth(const Reply& r, uint64_t now_ms) {
  if (r.code == 235) {
    forget_secrets();
    authenticated_ = true;
    cfg_.credentials->mark_verified();
    phase_ = Phase::kReady;
    ready_reached_ = true;
    return;
  }
  Credentials& cr = *cfg_.credentials;
  if (r.code == 334 && mech_ == AuthMech::kLogin && auth_step_ < 3) {
    std::string v = auth_step_ == 1 ? cr.user() : cr.secret();
    cmd_.assign(base64_encode(v)).append("\r\n");
    send_line(cmd_, auth_step_ == 2);
    wipe(v);
    wipe(cmd_);
    ++auth_step_;
    expect(Kind::kAuth, nullptr, 0, now_ms);
    return;
  }
  if (r.code == 334 && mech_ == AuthMech::kXoauth2) {
    // The server explains the failure in a base64 JSON challenge; an empty line ends the
    // exchange and brings the final 535 (RFC 7628 style, as Gmail and Office 365 do).
    send_line("\r\n", false);
    expect(Kind::kAuth, nullptr, 0, now_ms);
    return;
  }
  if (r.transient()) {
    end_.transient = true;
    close_with(EndCause::kAuthTemporary, "AUTH temporarily refused: " + r.summary(), r.code);
    return;
  }
  if (mech_ == AuthMech::kXoauth2 && !token_refreshed_) {
    token_refreshed_ = true;
    std::string err;
    if (cr.refresh(&err)) {
      start_auth(now_ms);  // once per connection, with the fresh token
      return;
    }
    if (!err.empty()) {
      close_with(EndCause::kAuthTokenRefreshFailed,
                 "authentication failed: " + r.summary() + "; refreshing the token failed: " + err,
                 r.code, FatalCause::kAuth);
      return;
    }
  }
  close_with(EndCause::kAuthFailed, "authentication failed: " + r.summary(), r.code,
             FatalCause::kAuth);
}

void Session::on_tls_ready(uint64_t now_ms) {
  tls_active_ = true;
  if (phase_ != Phase::kTlsWanted) return;  // implicit TLS: the greeting comes next
  // RFC 3207 §4.2: forget everything learnt before TLS and ask again.
  caps_ = ServerCaps{};
  phase_ = Phase::kEhlo;
  cmd_.assign("EHLO ").append(cfg_.helo).append("\r\n");
  send_line(cmd_, false);
  expect(Kind::kEhlo, nullptr, 0, now_ms);
}

void Session::on_tls_failed(std::string_view why, bool fatal) {
  phase_ = Phase::kTlsWanted;  // so the failure is reported as the TLS step
  close_with(EndCause::kTlsHandshakeFailed, "TLS handshake failed: " + std::string(why), 0,
             fatal ? FatalCause::kTls : FatalCause::kNone);
}

void Session::redact(Reply& r) const {
  if (secret_forms_.empty()) return;
  for (const std::string& f : secret_forms_) {
    if (f.empty()) continue;
    for (size_t pos = r.text.find(f); pos != std::string::npos; pos = r.text.find(f, pos)) {
      r.text.replace(pos, f.size(), "<redacted>");
      pos += 10;
    }
  }
}

void Session::forget_secrets() {
  for (std::string& f : secret_forms_) wipe(f);
  secret_forms_.clear();
}

}  // namespace sb
