// The SMTP client session (RFC 5321, 2920 PIPELINING, 3030 CHUNKING) as a pure state machine.
//
// Like Postfix's smtp_proto.c it keeps a sender cursor that writes the next commands and a
// receiver cursor (expect_) that matches replies to them in order. With PIPELINING a whole
// transaction goes out in one write and the next one follows the end of data without waiting;
// the sender only stops for the 354 after DATA.
//
// This file holds the driver's entry points, the reply dispatcher and how a session ends and
// settles its recipients; session_handshake.cc the opening (EHLO, STARTTLS, AUTH),
// session_txn.cc the transactions, session_fit.cc the per-command tables.
#include "smtp/session.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <utility>

namespace sb {

namespace {

bool looks_like_tls_record(std::string_view in) {
  // A TLS record opens with its content type (0x15 alert, 0x16 handshake) and version 3.x.
  return !in.empty() && (in[0] == '\x15' || in[0] == '\x16') && (in.size() < 2 || in[1] == '\x03');
}

bool port_is(const ConnInfo* info, uint16_t port) { return info != nullptr && info->port == port; }

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

const char* peer_role_name(PeerRole r) {
  return r == PeerRole::kMailExchanger ? "mail exchanger" : "relay";
}

const char* end_cause_name(EndCause c) {
  // Indexed by EndCause: one name per cause, checked at compile time.
  static constexpr const char* kNames[] = {"none",
                                           "tls_at_once",
                                           "starttls_injection",
                                           "starttls_not_offered",
                                           "starttls_refused",
                                           "tls_handshake_failed",
                                           "plaintext_auth_refused",
                                           "auth_not_offered",
                                           "auth_no_mechanism",
                                           "auth_temporary",
                                           "auth_failed",
                                           "auth_token_refresh_failed",
                                           "sender_refused",
                                           "greeting_refused",
                                           "helo_refused",
                                           "rset_refused",
                                           "server_closing",
                                           "timeout",
                                           "connection_lost",
                                           "protocol_error",
                                           "closed_by_driver"};
  static_assert(std::size(kNames) == static_cast<size_t>(EndCause::kCount),
                "one name per EndCause");
  return c < EndCause::kCount ? kNames[static_cast<size_t>(c)] : "?";
}

std::string session_end_text(const SessionEnd& e) {
  if (!e.implicit_tls_port) return e.text;
  return e.text + " (port 465 usually speaks TLS at once)";
}

Session::Session(const SessionConfig& cfg, SessionHost& host, Outbox& out)
    : cfg_(cfg), host_(host), out_(out) {}

Session::~Session() { forget_secrets(); }

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
    close_with(EndCause::kTlsAtOnce,
               "the server speaks TLS at once (it sent a TLS record, not an SMTP greeting)", 0,
               FatalCause::kTls);
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
        close_with(EndCause::kStartTlsInjection,
                   "STARTTLS response injection: the server sent data after its 220 reply; "
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
  std::string why =
      std::string("timeout after ") + std::to_string(timeout_for(e.kind) / 1000) +
      " s waiting for the " +
      (e.kind == Kind::kGreeting ? "greeting" : std::string("reply to ") + kind_name(e.kind));
  // A server that speaks TLS at once waits silently for our ClientHello.
  end_.implicit_tls_port =
      e.kind == Kind::kGreeting && cfg_.tls != TlsMode::kImplicit && port_is(conn_info_, 465);
  // A reply that never comes may be one the server dropped, which would make the replies
  // held so far answers to other commands: they do not count (desync).
  close_with(EndCause::kTimeout, std::move(why), 0, FatalCause::kNone,
             !only_late_commands_outstanding());
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
  end_.implicit_tls_port =
      phase_ == Phase::kGreeting && cfg_.tls != TlsMode::kImplicit && port_is(conn_info_, 465);
  // Replies still expected will never come: if the server dropped one earlier, the replies
  // held were other commands' (as with a timeout). With nothing outstanding they stand.
  close_with(EndCause::kConnectionLost, std::move(msg), 0, FatalCause::kNone,
             !only_late_commands_outstanding());
}

bool Session::only_late_commands_outstanding() const {
  return std::all_of(expect_.begin(), expect_.end(), [](const Expect& e) {
    return e.kind == Kind::kNoop || e.kind == Kind::kQuit;
  });
}

void Session::poke(uint64_t now_ms) { pump(now_ms); }

void Session::force_close(std::string_view why, bool fatal, uint64_t now_ms) {
  (void)now_ms;
  close_with(EndCause::kClosedByDriver, std::string(why), 0,
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
  close_with(EndCause::kProtocolError,
             std::move(why) + "; connection closed, open recipients deferred",
             code >= 400 ? code : 0, FatalCause::kNone, true);
}

std::string Session::the_peer() const { return std::string("the ") + peer_role_name(cfg_.peer); }

void Session::close_with(EndCause cause, std::string why, int code, FatalCause fatal, bool desync) {
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
  end_.cause = cause;
  end_.text = std::move(why);
  end_.code = code;
  end_.peer = cfg_.peer;
  end_reason_ = cfg_.describe_end != nullptr ? cfg_.describe_end(end_) : session_end_text(end_);
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
  unlive(t);
  held_.push_back(t);
}

void Session::unlive(Txn* t) {
  auto it = std::find(live_.begin(), live_.end(), t);
  assert(it != live_.end());
  live_.erase(it);
  live_bytes_ -= t->body_size;
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
  std::deque<Txn*> live;
  live.swap(live_);
  live_bytes_ = 0;
  // The parked transaction was never started: like the live ones, its recipients get `v`.
  if (parked_ != nullptr) live.push_back(std::exchange(parked_, nullptr));
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
  unlive(t);
  host_.txn_done(*t);
}

void Session::handle(const Reply& r, uint64_t now_ms) {
  if (expect_.empty()) {
    note_reply(r);
    if (r.code == 421) {
      close_with(EndCause::kServerClosing, "server closed the connection: " + r.summary(), 421);
    } else {
      protocol_error("reply from the server while no command was waiting for one: " + r.summary(),
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
    close_with(EndCause::kServerClosing, "server closing the connection: " + r.summary(), 421);
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
        close_with(EndCause::kGreetingRefused,
                   "server refused the connection at greeting: " + r.summary(), r.code);
      }
      return;
    case Kind::kEhlo:
    case Kind::kHelo: handle_ehlo(r, now_ms); return;
    case Kind::kRset:
      if (f != Fit::kPositive) {
        close_with(EndCause::kRsetRefused, "server refused RSET: " + r.summary(), r.code);
      }
      return;
    case Kind::kQuit:
      release_held();  // 221 to QUIT: every earlier reply was the one its command got
      phase_ = Phase::kClosed;
      deadline_ = 0;
      return;
    case Kind::kIgnore: return;
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
        end_.transient = r.transient();
        close_with(EndCause::kStartTlsRefused, the_peer() + " refused STARTTLS: " + r.summary(),
                   r.code, r.transient() ? FatalCause::kNone : FatalCause::kTls);
      }
      return;
    case Kind::kAuth: handle_auth(r, now_ms); return;
    default: handle_txn_reply(e, r, now_ms);
  }
}

}  // namespace sb
