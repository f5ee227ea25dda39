// The session's transactions: the writer (MAIL, RCPT, DATA or BDAT, pipelined in windows,
// RSET and QUIT) and the reader that turns each reply into recipient outcomes.
#include <algorithm>
#include <cassert>
#include <utility>

#include "smtp/enhanced_code.h"
#include "smtp/session.h"

namespace sb {

namespace {

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

}  // namespace

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
        close_with(EndCause::kSenderRefused,
                   "the server refused the envelope sender <" + from + ">: " + r.summary(), r.code,
                   FatalCause::kSender);
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
    default: break;
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
    if (parked_ != nullptr) {
      // Taken from the host before QUIT was due: it goes first, once its octets fit.
      if (!fits_in_flight(parked_)) break;
      start_txn(std::exchange(parked_, nullptr), now_ms);
      continue;
    }
    if (started_ >= cfg_.max_messages || host_done_) {
      send_quit(now_ms);
      break;
    }
    if (live_.size() >= std::max<uint32_t>(cfg_.window, 1)) break;
    // A full byte budget: not even the smallest message would fit.
    if (!live_.empty() && live_bytes_ >= cfg_.max_bytes_in_flight) break;
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
    if (!fits_in_flight(t)) {
      // Its size is known only now: it waits for replies to free room (pump runs on each).
      parked_ = t;
      break;
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
  live_bytes_ += t->body_size;
  if (caps_.size && caps_.max_size > 0 && t->body_size > caps_.max_size) {
    finish_open(t, Verdict::kFailed, 0,
                "message of " + std::to_string(t->body_size) +
                    " octets exceeds the server's SIZE limit of " + std::to_string(caps_.max_size));
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
