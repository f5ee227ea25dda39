// The SMTP client session (RFC 5321, 2920 PIPELINING, 3030 CHUNKING) as a pure state machine.
//
// Like Postfix's smtp_proto.c it keeps a sender cursor that writes the next commands and a
// receiver cursor (expect_) that matches replies to them in order. With PIPELINING a whole
// transaction goes out in one write and the next one follows the end of data without waiting;
// the sender only stops for the 354 after DATA.
#include "smtp/session.h"

#include <algorithm>
#include <cassert>
#include <cctype>

namespace sb {

namespace {

std::string base64(std::string_view in) {
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Overwrites a secret's bytes before the string is freed.
void wipe(std::string& s) {
  volatile char* p = s.data();
  for (size_t i = 0; i < s.size(); ++i) p[i] = 0;
  s.clear();
}

// An RFC 3463 enhanced status code opening a reply text ("2.1.5 Ok"); cls = -1 when the text
// does not open with one.
struct EnhancedCode {
  int cls = -1;
  int subject = -1;
  int detail = -1;
};

EnhancedCode enhanced_code(std::string_view text) {
  EnhancedCode e;
  if (text.size() < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') {
    return e;
  }
  size_t i = 2;
  auto number = [&](int& v) {
    size_t start = i;
    v = 0;
    while (i < text.size() && i - start < 3 && text[i] >= '0' && text[i] <= '9') {
      v = v * 10 + (text[i++] - '0');
    }
    return i > start;
  };
  int subject = 0, detail = 0;
  if (!number(subject) || i >= text.size() || text[i++] != '.' || !number(detail)) return e;
  if (i < text.size() && text[i] != ' ' && text[i] != '\n') return e;
  e.cls = text[0] - '0';
  e.subject = subject;
  e.detail = detail;
  return e;
}

// A refusal of MAIL FROM that is about the message, not the sender: too big (552, x.3.4) or
// its content or encoding (x.6.x).
bool about_message(const Reply& r) {
  EnhancedCode e = enhanced_code(r.text);
  return r.code == 552 || e.subject == 6 || (e.subject == 3 && e.detail == 4);
}

// A 5xx to MAIL FROM that refuses the sender itself: no enhanced code, or an addressing (x.1.x)
// or policy (x.7.x) one. A provider's quota reply at MAIL ("554 5.2.0 ...QuotaExceeded",
// "550 5.4.5 Daily user sending limit exceeded") is not: the engine reads it as a quota pause.
bool refuses_sender(const Reply& r) {
  if (!r.permanent() || about_message(r)) return false;
  EnhancedCode e = enhanced_code(r.text);
  return e.subject == -1 || e.subject == 1 || e.subject == 7;
}

// The base64 runs that appear inside ANY base64 text containing `secret`, whatever its
// offset modulo 3: a server may echo the whole payload or a part of it.
void add_base64_cores(std::string_view secret, std::vector<std::string>& out) {
  for (size_t pad = 0; pad < 3; ++pad) {
    std::string in(pad, '\0');
    in.append(secret);
    std::string enc = base64(in);
    size_t skip = (pad * 4 + 2) / 3;  // characters that carry bits of the padding
    size_t full = in.size() / 3 * 4;  // characters of whole groups only
    if (full > skip + 3) out.push_back(enc.substr(skip, full - skip));
    wipe(in);
    wipe(enc);
  }
}

bool looks_like_tls_record(std::string_view in) {
  // A TLS record opens with its content type (0x15 alert, 0x16 handshake) and version 3.x.
  return !in.empty() && (in[0] == '\x15' || in[0] == '\x16') &&
         (in.size() < 2 || in[1] == '\x03');
}

bool port_is(const ConnInfo* info, std::string_view port) {
  if (info == nullptr) return false;
  std::string_view p = info->peer;
  return p.size() > port.size() && p.substr(p.size() - port.size()) == port &&
         p[p.size() - port.size() - 1] == ':';
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kSent: return "sent";
    case Verdict::kDeferred: return "deferred";
    case Verdict::kFailed: return "failed";
  }
  return "?";
}

Verdict verdict_for(int code) {
  if (code >= 200 && code < 400) return Verdict::kSent;
  if (code >= 500 && code != 503) return Verdict::kFailed;
  return Verdict::kDeferred;
}

const char* fatal_cause_name(FatalCause c) {
  switch (c) {
    case FatalCause::kNone: return "none";
    case FatalCause::kTls: return "tls";
    case FatalCause::kAuth: return "auth";
    case FatalCause::kSender: return "sender";
  }
  return "?";
}

Session::Session(const SessionConfig& cfg, SessionHost& host, Outbox& out)
    : cfg_(cfg), host_(host), out_(out) {}

Session::~Session() { forget_secrets(); }

const char* Session::kind_name(Kind k) {
  // Indexed by Kind: one name per kind, checked at compile time.
  static constexpr const char* kNames[] = {"greeting", "EHLO", "HELO", "MAIL", "RCPT", "DATA",
                                           "end of data", "BDAT", "RSET", "QUIT",
                                           "end of data", "STARTTLS", "AUTH", "NOOP"};
  static_assert(std::size(kNames) == static_cast<size_t>(Kind::kCount),
                "one name per Session::Kind");
  return k < Kind::kCount ? kNames[static_cast<size_t>(k)] : "?";
}

// Which replies can answer which command (RFC 5321 §4.3.2, RFC 3030, RFC 3207, RFC 4954).
// Any 4xx/5xx is a refusal the command can get (servers use codes the RFC does not list),
// except for QUIT. A positive reply must be one the command can get: a 250 to DATA or a 354
// to BDAT LAST means the replies are out of step with the commands, and taking it as an
// answer could record a message as sent that the server never accepted. With enhanced status
// codes, a positive addressing code (2.1.x) cannot end a message, nor a content code (2.6.x)
// answer MAIL or RCPT.
Session::Fit Session::fit(Kind k, const Reply& r, bool enhanced) {
  const int c = r.code;
  const int cls = c / 100;
  // Only 221 closes: a 250 there is a reply to something else, come late.
  if (k == Kind::kQuit) return c == 221 ? Fit::kPositive : Fit::kWrong;
  // Every server should implement NOOP (RFC 5321 §4.5.1): a refusal there is another
  // command's, and so is an addressing code (checked below) -- except "command not
  // recognized" (500/502, x.5.x), which some stripped-down servers and filtering proxies say
  // to any command they do not know. That is an answer, though not a proof: pump() then
  // proves held replies by a quiet while, as without enhanced codes.
  if (k == Kind::kNoop && cls != 2) {
    const EnhancedCode e = enhanced ? enhanced_code(r.text) : EnhancedCode{};
    const bool unknown_command = (c == 500 || c == 502) && (e.subject == -1 || e.subject == 5);
    return unknown_command ? Fit::kNegative : Fit::kWrong;
  }
  if (cls == 4 || cls == 5) return Fit::kNegative;
  const EnhancedCode e = enhanced ? enhanced_code(r.text) : EnhancedCode{};
  const int subject = e.subject;
  if (e.cls >= 0 && e.cls != cls) return Fit::kWrong;
  switch (k) {
    case Kind::kGreeting:
    case Kind::kStartTls: return c == 220 ? Fit::kPositive : Fit::kWrong;
    case Kind::kAuth: return c == 235 || c == 334 ? Fit::kPositive : Fit::kWrong;
    case Kind::kData: return c == 354 ? Fit::kPositive : Fit::kWrong;
    case Kind::kRcpt:
      return (c == 250 || c == 251 || c == 252) && subject != 6 ? Fit::kPositive : Fit::kWrong;
    case Kind::kMail: return cls == 2 && c != 220 && c != 221 && subject != 6 ? Fit::kPositive
                                                                            : Fit::kWrong;
    case Kind::kDot:
    case Kind::kBdat:
    case Kind::kIgnore:
    case Kind::kNoop:
      return cls == 2 && c != 220 && c != 221 && subject != 1 ? Fit::kPositive : Fit::kWrong;
    default: return cls == 2 && c != 220 && c != 221 ? Fit::kPositive : Fit::kWrong;
  }
}

uint32_t Session::timeout_for(Kind k) const {
  const Timeouts& t = cfg_.timeouts;
  switch (k) {
    case Kind::kGreeting: return t.greeting;
    case Kind::kEhlo:
    case Kind::kHelo: return t.ehlo;
    case Kind::kMail:
    case Kind::kRset:
    case Kind::kNoop: return t.mail;
    case Kind::kRcpt: return t.rcpt;
    case Kind::kData: return t.data;
    case Kind::kDot:
    case Kind::kBdat:
    case Kind::kIgnore: return t.dot;
    case Kind::kQuit: return t.quit;
    case Kind::kStartTls:
    case Kind::kAuth: return t.ehlo;
    case Kind::kCount: break;
  }
  return t.mail;
}

void Session::rearm(uint64_t now_ms) {
  deadline_ = expect_.empty() ? 0 : now_ms + timeout_for(expect_.front().kind);
}

void Session::expect(Kind k, Txn* t, uint16_t rcpt, uint64_t now_ms) {
  expect_.push_back(Expect{k, t, rcpt, reads_});
  if (t != nullptr) ++t->waiting;
  if (expect_.size() == 1) rearm(now_ms);
}

void Session::on_connected(uint64_t now_ms) {
  phase_ = Phase::kGreeting;
  expect(Kind::kGreeting, nullptr, 0, now_ms);
}

void Session::on_data(std::string_view in, uint64_t now_ms) {
  ++reads_;
  if (in.empty() || phase_ == Phase::kClosed || phase_ == Phase::kTlsWanted) return;
  if (phase_ == Phase::kGreeting && !parser_.has_partial() && looks_like_tls_record(in)) {
    close_with("the server speaks TLS at once: use --tls implicit (it sent a TLS record, not "
               "an SMTP greeting)",
               0, FatalCause::kTls);
    return;
  }
  if (expect_.empty() && !parser_.has_partial()) {
    // Nothing was asked: whatever this is, the server is out of step with us.
    std::string shown;
    append_sanitised(shown, in.substr(0, in.find_first_of("\r\n")), 80);
    protocol_error("the server sent data while no reply was expected: \"" + shown + "\"", 0);
    return;
  }
  while (phase_ != Phase::kClosed && phase_ != Phase::kTlsWanted) {
    if (!parser_.next(in, reply_)) break;
    redact(reply_);
    if (!expect_.empty() && expect_.front().kind == Kind::kStartTls && reply_.code == 220 &&
        expect_.front().read != reads_) {
      expect_.pop_front();
      note_reply(reply_);
      if (!in.empty() || parser_.has_partial()) {
        // Bytes after the 220 and before the handshake would be read as if they came over
        // TLS: a man in the middle injecting commands (CVE-2011-0411 and kin).
        close_with("STARTTLS response injection: the server sent data after its 220 reply; "
                   "connection dropped, nothing sent",
                   0, FatalCause::kTls);
        return;
      }
      phase_ = Phase::kTlsWanted;
      rearm(now_ms);
      return;
    }
    handle(reply_, now_ms);
  }
  if (phase_ != Phase::kClosed && parser_.failed()) {
    protocol_error("protocol error from server: " + parser_.error(), 0);
    return;
  }
  if (phase_ != Phase::kClosed && phase_ != Phase::kTlsWanted && expect_.empty() &&
      parser_.has_partial()) {
    protocol_error("protocol error from server: it sent data while no reply was expected", 0);
    return;
  }
  pump(now_ms);
}

void Session::on_timer(uint64_t now_ms) {
  if (deadline_ == 0 || now_ms < deadline_) return;
  if (expect_.empty()) {
    deadline_ = 0;
    if (phase_ == Phase::kReady && !held_.empty()) {
      release_held();  // the quiet while after going idle (see pump)
      pump(now_ms);
    }
    return;
  }
  const Expect& e = expect_.front();
  std::string why = std::string("timeout after ") + std::to_string(timeout_for(e.kind) / 1000) +
                    " s waiting for the " +
                    (e.kind == Kind::kGreeting ? "greeting"
                                               : std::string("reply to ") + kind_name(e.kind));
  if (e.kind == Kind::kGreeting && cfg_.tls != TlsMode::kImplicit && port_is(conn_info_, "465")) {
    // A server that speaks TLS at once waits silently for our ClientHello.
    why += " (port 465 usually speaks TLS at once: use --tls implicit)";
  }
  // A reply that never comes may be one the server dropped, which would make the replies
  // held so far answers to other commands: they do not count (desync).
  close_with(std::move(why), 0, FatalCause::kNone, !only_late_commands_outstanding());
}

void Session::on_closed(std::string_view why, uint64_t now_ms) {
  (void)now_ms;
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kQuit && live_.empty()) {
    // The server closed after (or instead of) answering QUIT: nothing contradicted the
    // replies held.
    release_held();
    phase_ = Phase::kClosed;
    deadline_ = 0;
    return;
  }
  std::string msg = phase_ == Phase::kGreeting ? "connection closed before the server's greeting"
                                               : "connection lost before the final reply";
  if (!why.empty()) msg += std::string(" (") + std::string(why) + ")";
  if (phase_ == Phase::kGreeting && cfg_.tls != TlsMode::kImplicit &&
      port_is(conn_info_, "465")) {
    msg += " (port 465 usually speaks TLS at once: use --tls implicit)";
  }
  // Replies still expected will never come: if the server dropped one earlier, the replies
  // held were other commands' (as with a timeout). With nothing outstanding they stand.
  close_with(std::move(msg), 0, FatalCause::kNone, !only_late_commands_outstanding());
}

bool Session::only_late_commands_outstanding() const {
  return std::all_of(expect_.begin(), expect_.end(), [](const Expect& e) {
    return e.kind == Kind::kNoop || e.kind == Kind::kQuit;
  });
}

void Session::poke(uint64_t now_ms) { pump(now_ms); }

void Session::force_close(std::string_view why, bool fatal, uint64_t now_ms) {
  (void)now_ms;
  close_with(std::string(why), 0, fatal ? FatalCause::kTls : FatalCause::kNone);
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
  close_with("TLS handshake failed: " + std::string(why), 0,
             fatal ? FatalCause::kTls : FatalCause::kNone);
}

void Session::send_line(std::string_view line, bool secret) {
  out_.append(line);
  if (!transcript_on_) return;
  std::string_view shown = line;
  while (!shown.empty() && (shown.back() == '\n' || shown.back() == '\r')) shown.remove_suffix(1);
  transcript_.append("C: ");
  if (secret) {
    size_t sp = shown.rfind(' ');
    transcript_.append(sp == std::string_view::npos ? std::string_view() : shown.substr(0, sp + 1));
    transcript_.append("<redacted>");
  } else {
    transcript_.append(shown);
  }
  transcript_.push_back('\n');
}

void Session::note_reply(const Reply& r) {
  if (!transcript_on_) return;
  std::string_view text = r.text;
  bool first = true;
  do {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    transcript_.append("S: ").append(std::to_string(r.code));
    transcript_.push_back(!text.empty() ? '-' : ' ');
    transcript_.append(line).push_back('\n');
    first = false;
  } while (!text.empty());
  (void)first;
}

void Session::protocol_error(std::string why, int code) {
  // A deferred recipient never carries a positive code: the store would show "deferred 250".
  close_with(std::move(why) + "; connection closed, open recipients deferred",
             code >= 400 ? code : 0,
             FatalCause::kNone, true);
}

void Session::close_with(std::string why, int code, FatalCause fatal, bool desync) {
  if (phase_ == Phase::kClosed) return;
  switch (phase_) {
    case Phase::kInit: end_step_ = "tcp"; break;
    case Phase::kGreeting: end_step_ = "greeting"; break;
    case Phase::kEhlo:
    case Phase::kHelo: end_step_ = "ehlo"; break;
    case Phase::kStartTls:
    case Phase::kTlsWanted: end_step_ = "tls"; break;
    case Phase::kAuth: end_step_ = "auth"; break;
    case Phase::kReady: end_step_ = "transaction"; break;
    case Phase::kQuit:
    case Phase::kClosed: end_step_ = "quit"; break;
  }
  fatal_ = fatal;
  end_reason_ = std::move(why);
  end_code_ = code;
  phase_ = Phase::kClosed;
  deadline_ = 0;
  forget_secrets();
  // Held replies stand unless the replies were proven out of step, or the run stops on this
  // (then a resend later costs at most a duplicate; a false "sent" would be a lost message).
  abort_all(Verdict::kDeferred, code, end_reason_, !desync && fatal == FatalCause::kNone);
}

void Session::hold(Txn* t, const Reply& r) {
  t->final_code = r.code;
  t->final_text.assign(r.text);
  if (t->accepted == 0) return;
  auto it = std::find(live_.begin(), live_.end(), t);
  assert(it != live_.end());
  live_.erase(it);
  held_.push_back(t);
}

void Session::release_held() {
  if (held_.empty()) return;
  std::vector<Txn*> held;
  held.swap(held_);  // txn_done may call back into the session
  for (Txn* t : held) {
    for (size_t i = 0; i < t->rcpts.size(); ++i) {
      if (t->rcpts[i].state == RcptState::kAccepted) {
        finish_rcpt(t, i, Verdict::kSent, t->final_code, t->final_text);
      }
    }
    finish_open(t, Verdict::kDeferred, t->final_code, t->final_text);  // none: a safety net
    host_.txn_done(*t);
  }
  if (held_.empty()) {
    held.clear();
    held_.swap(held);  // keep the capacity
  }
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

void Session::abort_all(Verdict v, int code, std::string_view why, bool keep_held) {
  expect_.clear();
  awaiting_354_ = false;
  if (keep_held) {
    release_held();
  } else {
    std::vector<Txn*> held;
    held.swap(held_);
    for (Txn* t : held) {
      finish_open(t, Verdict::kDeferred, code, why);
      host_.txn_done(*t);
    }
  }
  std::vector<Txn*> live;
  live.swap(live_);
  for (Txn* t : live) {
    t->waiting = 0;
    finish_open(t, v, code, why);
    host_.txn_done(*t);
  }
}

void Session::finish_rcpt(Txn* t, size_t i, Verdict v, int code, std::string_view text) {
  TxnRcpt& r = t->rcpts[i];
  if (r.state == RcptState::kDone) return;
  if (r.state == RcptState::kAccepted) --t->accepted;
  r.state = RcptState::kDone;
  --t->open;
  host_.rcpt_outcome(*t, i, v, code, text);
}

void Session::finish_open(Txn* t, Verdict v, int code, std::string_view text) {
  for (size_t i = 0; i < t->rcpts.size(); ++i) {
    if (t->rcpts[i].state != RcptState::kDone) finish_rcpt(t, i, v, code, text);
  }
}

void Session::maybe_done(Txn* t) {
  if (t->open != 0 || t->waiting != 0) return;
  auto it = std::find(live_.begin(), live_.end(), t);
  assert(it != live_.end());
  live_.erase(it);
  host_.txn_done(*t);
}

void Session::handle(const Reply& r, uint64_t now_ms) {
  if (expect_.empty()) {
    note_reply(r);
    if (r.code == 421) {
      close_with("server closed the connection: " + r.summary(), 421);
    } else {
      protocol_error("reply from the server while no command was waiting for one: " +
                         r.summary(),
                     r.code);
    }
    return;
  }
  Expect e = expect_.front();
  expect_.pop_front();
  if (e.txn != nullptr) --e.txn->waiting;
  rearm(now_ms);
  note_reply(r);

  if (r.code == 421 && e.kind != Kind::kQuit) {
    // The server is shutting the connection: nothing open is the recipients' fault.
    close_with("server closing the connection: " + r.summary(), 421);
    return;
  }
  if (e.read == reads_) {
    // These bytes were here before the command went out: the server cannot have answered it.
    protocol_error("the server sent " + r.summary() + " before it could have read our " +
                       kind_name(e.kind) + " (replies out of step with commands)",
                   r.code);
    return;
  }
  const Fit f = fit(e.kind, r, caps_.enhanced_codes);
  if (f == Fit::kWrong) {
    protocol_error(std::string("reply ") + r.summary() + " cannot answer " + kind_name(e.kind) +
                       " (replies out of step with commands, or a broken server)",
                   r.code);
    return;
  }
  switch (e.kind) {
    case Kind::kGreeting:
      if (f == Fit::kPositive) {
        greeting_ = r.text;
        phase_ = Phase::kEhlo;
        cmd_.assign("EHLO ").append(cfg_.helo).append("\r\n");
        send_line(cmd_, false);
        expect(Kind::kEhlo, nullptr, 0, now_ms);
      } else {
        close_with("server refused the connection at greeting: " + r.summary(), r.code);
      }
      return;
    case Kind::kEhlo:
    case Kind::kHelo:
      handle_ehlo(r, now_ms);
      return;
    case Kind::kRset:
      if (f != Fit::kPositive) close_with("server refused RSET: " + r.summary(), r.code);
      return;
    case Kind::kQuit:
      release_held();  // 221 to QUIT: every earlier reply was the one its command got
      phase_ = Phase::kClosed;
      deadline_ = 0;
      return;
    case Kind::kIgnore:
      return;
    case Kind::kNoop:
      if (r.code >= 400) {
        // Not implemented (see fit): the held replies count after a quiet while instead.
        noop_refused_ = true;
        if (!held_.empty() && expect_.empty()) deadline_ = now_ms + cfg_.timeouts.held;
        return;
      }
      release_held();  // the reply to a command sent after them: they were in step
      return;
    case Kind::kStartTls:  // a 220 is handled in on_data; this is a refusal
      if (cfg_.tls == TlsMode::kOpportunistic) {
        starttls_declined_ = true;
        after_ehlo(now_ms);
      } else {
        close_with("the relay refused STARTTLS: " + r.summary() +
                       (r.transient() ? "" : " (give --tls none to send unencrypted)"),
                   r.code, r.transient() ? FatalCause::kNone : FatalCause::kTls);
      }
      return;
    case Kind::kAuth:
      handle_auth(r, now_ms);
      return;
    default:
      handle_txn_reply(e, r, now_ms);
  }
}

void Session::handle_ehlo(const Reply& r, uint64_t now_ms) {
  bool was_ehlo = phase_ == Phase::kEhlo;
  if (!r.positive() && r.code == 421) {
    close_with("server closing the connection: " + r.summary(), 421);
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
    close_with(std::string("server refused ") + (was_ehlo ? "EHLO" : "HELO") + ": " + r.summary(),
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
      std::string kw;
      size_t sp = line.find_first_of(" =");
      for (char c : line.substr(0, sp)) kw.push_back(static_cast<char>(std::toupper(c)));
      std::string_view arg = sp == std::string_view::npos ? "" : line.substr(sp + 1);
      if (kw == "PIPELINING") caps_.pipelining = true;
      else if (kw == "CHUNKING") caps_.chunking = true;
      else if (kw == "8BITMIME") caps_.eight_bit_mime = true;
      else if (kw == "SMTPUTF8") caps_.smtputf8 = true;
      else if (kw == "STARTTLS") caps_.starttls = true;
      else if (kw == "DSN") caps_.dsn = true;
      else if (kw == "ENHANCEDSTATUSCODES") caps_.enhanced_codes = true;
      else if (kw == "AUTH") caps_.auth.assign(arg);
      else if (kw == "SIZE") {
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
      close_with("the relay does not offer STARTTLS and --tls starttls requires it; nothing "
                 "sent (give --tls none to send unencrypted)",
                 0, FatalCause::kTls);
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
    close_with("refusing to send credentials over an unencrypted connection (use --tls "
               "starttls or implicit; --allow-plaintext-auth overrides)",
               0, FatalCause::kAuth);
    return;
  }
  const std::string offered = caps_.auth;
  auto offers = [&](std::string_view m) {
    std::string up;
    for (char c : offered) up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    size_t pos = 0;
    while ((pos = up.find(m, pos)) != std::string::npos) {
      bool start = pos == 0 || up[pos - 1] == ' ';
      bool end = pos + m.size() == up.size() || up[pos + m.size()] == ' ';
      if (start && end) return true;
      pos += m.size();
    }
    return false;
  };
  if (offered.empty()) {
    close_with(std::string("the relay does not offer AUTH") +
                   (tls_active_ ? " after STARTTLS" : "") + "; cannot authenticate",
               0, FatalCause::kAuth);
    return;
  }
  Credentials& cr = *cfg_.credentials;
  AuthMech m = cfg_.auth;
  if (m == AuthMech::kAuto) {
    m = cr.is_oauth() ? AuthMech::kXoauth2
        : offers("PLAIN") ? AuthMech::kPlain
        : offers("LOGIN") ? AuthMech::kLogin
                          : AuthMech::kAuto;
  }
  const char* name = m == AuthMech::kXoauth2 ? "XOAUTH2" : m == AuthMech::kPlain ? "PLAIN"
                     : m == AuthMech::kLogin ? "LOGIN" : "";
  if (m == AuthMech::kAuto || !offers(name)) {
    close_with("the relay offers AUTH " + offered + (m == AuthMech::kAuto ? "" : std::string(", not ") + name) +
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
    secret_forms_.push_back(base64(payload));
    cmd_.assign("AUTH PLAIN ").append(base64(payload)).append("\r\n");
    send_line(cmd_, true);
  } else if (m == AuthMech::kXoauth2) {
    // "\x01" and "auth" are separate literals: "\x01auth" would read as the hex escape \x01a.
    payload.append("user=").append(cr.user()).append("\x01" "auth=Bearer ").append(secret).append("\x01\x01");
    secret_forms_.push_back(base64(payload));
    cmd_.assign("AUTH XOAUTH2 ").append(base64(payload)).append("\r\n");
    send_line(cmd_, true);
  } else {
    secret_forms_.push_back(base64(secret));
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
    cmd_.assign(base64(v)).append("\r\n");
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
    close_with("AUTH temporarily refused: " + r.summary(), r.code);
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
      close_with("authentication failed: " + r.summary() + "; refreshing the token failed: " + err,
                 r.code, FatalCause::kAuth);
      return;
    }
  }
  close_with("authentication failed: " + r.summary() +
                 " (check --user and the password or token; not retried, to avoid locking the "
                 "account)",
             r.code, FatalCause::kAuth);
}

void Session::handle_txn_reply(const Expect& e, const Reply& r, uint64_t now_ms) {
  Txn* t = e.txn;
  const size_t n = t->rcpts.size();
  const bool positive = r.code < 400;  // fit() let through only the right positive codes
  switch (e.kind) {
    case Kind::kMail:
      t->mail_code = r.code;
      t->mail_ok = positive;
      if (positive) {
        if (!pipelining_) send_txn_commands(t, now_ms);
        // After this transaction's next command is out: settling calls the host, which may
        // poke the session into starting another transaction.
        if (caps_.enhanced_codes && enhanced_code(r.text).subject == 1) {
          // An addressing code cannot be the end-of-data reply of the message before: the
          // replies are in step, and a held final reply is that message's own.
          release_held();
        }
      } else if (r.code == 503) {
        // "Bad sequence": the server and we disagree on where the dialogue is.
        protocol_error("the server answered MAIL FROM with " + r.summary(), r.code);
        return;
      } else if (refuses_sender(r)) {
        // The sender is refused (policy, unknown or unauthorised sender): every message of
        // the run would be, so the run stops; the recipients are not to blame and stay unsent.
        finish_open(t, Verdict::kDeferred, r.code, r.text);
        std::string from(t->mail_from.substr(0, 200));
        close_with("the server refused the envelope sender <" + from + ">: " + r.summary() +
                       " (check --from, and which senders the account may use)",
                   r.code, FatalCause::kSender);
        return;
      } else {
        // Pipelined RCPT/DATA replies for this transaction still come and are consumed.
        finish_open(t, verdict_for(r.code), r.code, r.text);
        t->next_cmd = static_cast<uint16_t>(n + 2);
      }
      break;
    case Kind::kRcpt: {
      TxnRcpt& rc = t->rcpts[e.rcpt];
      // 552 to RCPT is "too many recipients" (RFC 5321 §4.5.3.1.10): the recipient is fine
      // and goes in another transaction.
      const Verdict refused = r.code == 552 ? Verdict::kDeferred : verdict_for(r.code);
      if (rc.state == RcptState::kWaiting && t->probe) {
        finish_rcpt(t, e.rcpt, positive ? Verdict::kSent : refused, r.code, r.text);
      } else if (rc.state == RcptState::kWaiting) {
        if (positive) {
          rc.state = RcptState::kAccepted;
          ++t->accepted;
        } else {
          finish_rcpt(t, e.rcpt, refused, r.code, r.text);
        }
      }
      if (!pipelining_ && t->mail_ok && t->next_cmd <= n + 1) {
        if (t->next_cmd == n + 1 && t->accepted == 0) {
          t->next_cmd = static_cast<uint16_t>(n + 2);  // nobody to send to: abandon
          need_rset_ = true;
        } else {
          send_txn_commands(t, now_ms);
        }
      }
      break;
    }
    case Kind::kData:
      awaiting_354_ = false;
      if (positive) {
        if (t->accepted > 0) {
          send_body(t, now_ms);
        } else {
          // All recipients were refused but the server wants data: an empty message keeps
          // the dialogue in step; its reply means nothing.
          out_.append(".\r\n");
          expect(Kind::kIgnore, nullptr, 0, now_ms);
        }
        // Only DATA gets a 354: the replies before it were in step. Settled after the body
        // is out, as the host may poke the session into writing the next transaction.
        release_held();
      } else {
        for (size_t i = 0; i < n; ++i) {
          if (t->rcpts[i].state == RcptState::kAccepted) {
            finish_rcpt(t, i, verdict_for(r.code), r.code, r.text);
          }
        }
        if (t->mail_ok) need_rset_ = true;
      }
      break;
    case Kind::kDot:
    case Kind::kBdat: {
      if (positive) {
        // Sent, once a later reply shows this one was not another command's (see held_).
        hold(t, r);
        break;
      }
      for (size_t i = 0; i < n; ++i) {
        if (t->rcpts[i].state == RcptState::kAccepted) {
          finish_rcpt(t, i, verdict_for(r.code), r.code, r.text);
        }
      }
      if (e.kind == Kind::kBdat && t->mail_ok) need_rset_ = true;
      break;
    }
    default:
      break;
  }
  maybe_done(t);
}

void Session::pump(uint64_t now_ms) {
  if (phase_ != Phase::kReady || in_pump_) return;
  in_pump_ = true;
  while (phase_ == Phase::kReady) {
    if (awaiting_354_) break;  // the body must follow the 354 before anything else
    // RFC 2920: NOOP ends a pipelined group; nothing follows it before its reply.
    if (!expect_.empty() && expect_.back().kind == Kind::kNoop) break;
    if (!pipelining_ && !expect_.empty()) break;
    if (need_rset_) {
      send_line("RSET\r\n", false);
      expect(Kind::kRset, nullptr, 0, now_ms);
      need_rset_ = false;
      continue;
    }
    if (started_ >= cfg_.max_messages || host_done_) {
      send_quit(now_ms);
      break;
    }
    if (live_.size() >= std::max<uint32_t>(cfg_.window, 1)) break;
    Txn* t = nullptr;
    auto next = host_.next_txn(use_bdat(), t);
    if (next == SessionHost::Next::kWait) {
      // Idle: no later reply would come to prove the held ones, and the host may be waiting
      // for them. With enhanced codes a NOOP's 2.0.0 does: replies shifted by a stray one
      // would put another command's reply on it (a refusal, 354, or MAIL's or RCPT's 2.1.x).
      // Without them a 250 to NOOP could be a MAIL's: the held replies count after a quiet
      // while instead, and a reply arriving unasked in it is a protocol error (on_timer).
      if (expect_.empty() && !held_.empty()) {
        if (caps_.enhanced_codes && !noop_refused_) {
          send_line("NOOP\r\n", false);
          expect(Kind::kNoop, nullptr, 0, now_ms);
        } else {
          deadline_ = now_ms + cfg_.timeouts.held;
        }
      }
      break;
    }
    if (next == SessionHost::Next::kDone) {
      host_done_ = true;
      continue;
    }
    start_txn(t, now_ms);
  }
  in_pump_ = false;
}

void Session::send_quit(uint64_t now_ms) {
  send_line("QUIT\r\n", false);
  expect(Kind::kQuit, nullptr, 0, now_ms);
  phase_ = Phase::kQuit;
}

bool Session::start_txn(Txn* t, uint64_t now_ms) {
  t->open = static_cast<uint16_t>(t->rcpts.size());
  t->waiting = 0;
  t->accepted = 0;
  t->mail_ok = false;
  t->next_cmd = 0;
  t->bdat = use_bdat();
  t->final_code = 0;
  t->started_ms = now_ms;
  t->conn = conn_info_;
  for (auto& r : t->rcpts) r.state = RcptState::kWaiting;
  live_.push_back(t);
  if (caps_.size && caps_.max_size > 0 && t->body_size > caps_.max_size) {
    finish_open(t, Verdict::kFailed, 0,
                "message of " + std::to_string(t->body_size) +
                    " octets exceeds the server's SIZE limit of " +
                    std::to_string(caps_.max_size));
    maybe_done(t);
    return false;
  }
  if (t->smtputf8 && !caps_.smtputf8) {
    finish_open(t, Verdict::kFailed, 0,
                "an address is not ASCII and the server does not offer SMTPUTF8");
    maybe_done(t);
    return false;
  }
  if (t->eight_bit && !caps_.eight_bit_mime) {
    // RFC 6152: 8-bit octets only to a server that announced 8BITMIME; a 7-bit server may
    // strip the high bit or bounce the message later.
    finish_open(t, Verdict::kFailed, 0,
                "the message has 8-bit content and the server does not offer 8BITMIME; encode "
                "the text as quoted-printable or base64");
    maybe_done(t);
    return false;
  }
  ++started_;
  send_txn_commands(t, now_ms);
  return true;
}

void Session::send_txn_commands(Txn* t, uint64_t now_ms) {
  const size_t n = t->rcpts.size();
  while (t->next_cmd <= n + 1) {
    uint16_t c = t->next_cmd++;
    if (c == 0) {
      cmd_.assign("MAIL FROM:<").append(t->mail_from).append(">");
      if (caps_.size) cmd_.append(" SIZE=").append(std::to_string(t->body_size));
      if (t->eight_bit) cmd_.append(" BODY=8BITMIME");  // start_txn checked the server has it
      if (t->smtputf8) cmd_.append(" SMTPUTF8");
      if (caps_.dsn && !t->envid.empty()) cmd_.append(" RET=HDRS ENVID=").append(t->envid);
      cmd_.append("\r\n");
      send_line(cmd_, false);
      expect(Kind::kMail, t, 0, now_ms);
    } else if (c <= n) {
      cmd_.assign("RCPT TO:<").append(t->rcpts[c - 1].address).append(">\r\n");
      send_line(cmd_, false);
      expect(Kind::kRcpt, t, static_cast<uint16_t>(c - 1), now_ms);
    } else if (t->probe) {
      send_line("RSET\r\n", false);
      expect(Kind::kRset, nullptr, 0, now_ms);
    } else if (t->bdat) {
      cmd_.assign("BDAT ").append(std::to_string(t->body_size)).append(" LAST\r\n");
      send_line(cmd_, false);
      for (std::string_view p : t->body) out_.append_ref(p);
      expect(Kind::kBdat, t, 0, now_ms);
    } else {
      send_line("DATA\r\n", false);
      expect(Kind::kData, t, 0, now_ms);
      awaiting_354_ = true;
    }
    if (!pipelining_) break;
  }
}

void Session::send_body(Txn* t, uint64_t now_ms) {
  for (std::string_view p : t->body) out_.append_ref(p);
  out_.append(".\r\n");
  expect(Kind::kDot, t, 0, now_ms);
}

}  // namespace sb
