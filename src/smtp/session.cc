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

Session::Session(const SessionConfig& cfg, SessionHost& host, Outbox& out)
    : cfg_(cfg), host_(host), out_(out) {}

uint32_t Session::timeout_for(Kind k) const {
  const Timeouts& t = cfg_.timeouts;
  switch (k) {
    case Kind::kGreeting: return t.greeting;
    case Kind::kEhlo:
    case Kind::kHelo: return t.ehlo;
    case Kind::kMail:
    case Kind::kRset: return t.mail;
    case Kind::kRcpt: return t.rcpt;
    case Kind::kData: return t.data;
    case Kind::kDot:
    case Kind::kBdat:
    case Kind::kIgnore: return t.dot;
    case Kind::kQuit: return t.quit;
  }
  return t.mail;
}

void Session::rearm(uint64_t now_ms) {
  deadline_ = expect_.empty() ? 0 : now_ms + timeout_for(expect_.front().kind);
}

void Session::expect(Kind k, Txn* t, uint16_t rcpt, uint64_t now_ms) {
  expect_.push_back(Expect{k, t, rcpt});
  if (t != nullptr) ++t->waiting;
  if (expect_.size() == 1) rearm(now_ms);
}

void Session::on_connected(uint64_t now_ms) {
  phase_ = Phase::kGreeting;
  expect(Kind::kGreeting, nullptr, 0, now_ms);
}

void Session::on_data(std::string_view in, uint64_t now_ms) {
  while (phase_ != Phase::kClosed) {
    if (!parser_.next(in, reply_)) break;
    handle(reply_, now_ms);
  }
  if (phase_ != Phase::kClosed && parser_.failed()) {
    close_with("protocol error from server: " + parser_.error(), 0);
    return;
  }
  pump(now_ms);
}

void Session::on_timer(uint64_t now_ms) {
  if (deadline_ == 0 || now_ms < deadline_ || expect_.empty()) return;
  static const char* const kNames[] = {"greeting", "EHLO", "HELO", "MAIL", "RCPT", "DATA",
                                       "end of data", "BDAT", "RSET", "QUIT", "end of data"};
  const Expect& e = expect_.front();
  close_with(std::string("timeout after ") + std::to_string(timeout_for(e.kind) / 1000) +
                 " s waiting for the reply to " + kNames[static_cast<int>(e.kind)],
             0);
}

void Session::on_closed(std::string_view why, uint64_t now_ms) {
  (void)now_ms;
  if (phase_ == Phase::kClosed) return;
  if (phase_ == Phase::kQuit && live_.empty()) {
    phase_ = Phase::kClosed;  // the server closed after (or instead of) answering QUIT
    deadline_ = 0;
    return;
  }
  std::string msg = "connection lost before the final reply";
  if (!why.empty()) msg += std::string(" (") + std::string(why) + ")";
  close_with(std::move(msg), 0);
}

void Session::poke(uint64_t now_ms) { pump(now_ms); }

void Session::close_with(std::string why, int code) {
  if (phase_ == Phase::kClosed) return;
  end_reason_ = std::move(why);
  end_code_ = code;
  phase_ = Phase::kClosed;
  deadline_ = 0;
  abort_all(Verdict::kDeferred, code, end_reason_);
}

void Session::abort_all(Verdict v, int code, std::string_view why) {
  expect_.clear();
  awaiting_354_ = false;
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
  if (r.state == 2) return;
  if (r.state == 1) --t->accepted;
  r.state = 2;
  --t->open;
  host_.rcpt_outcome(*t, i, v, code, text);
}

void Session::finish_open(Txn* t, Verdict v, int code, std::string_view text) {
  for (size_t i = 0; i < t->rcpts.size(); ++i) {
    if (t->rcpts[i].state != 2) finish_rcpt(t, i, v, code, text);
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
    if (r.code == 421) {
      close_with("server closed the connection: " + r.summary(), 421);
    } else {
      close_with("unexpected reply from server: " + r.summary(), r.code);
    }
    return;
  }
  Expect e = expect_.front();
  expect_.pop_front();
  if (e.txn != nullptr) --e.txn->waiting;
  rearm(now_ms);

  if (r.code == 421 && e.kind != Kind::kQuit) {
    // The server is shutting the connection: nothing open is the recipients' fault.
    if (e.txn != nullptr) ++e.txn->waiting;  // abort_all settles it
    close_with("server closing the connection: " + r.summary(), 421);
    return;
  }
  switch (e.kind) {
    case Kind::kGreeting:
      if (r.code == 220) {
        greeting_ = r.text;
        phase_ = Phase::kEhlo;
        cmd_.assign("EHLO ").append(cfg_.helo).append("\r\n");
        out_.append(cmd_);
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
      if (!r.positive()) close_with("server refused RSET: " + r.summary(), r.code);
      return;
    case Kind::kQuit:
      phase_ = Phase::kClosed;
      deadline_ = 0;
      return;
    case Kind::kIgnore:
      return;
    default:
      handle_txn_reply(e, r, now_ms);
  }
}

void Session::handle_ehlo(const Reply& r, uint64_t now_ms) {
  bool was_ehlo = phase_ == Phase::kEhlo;
  if (!r.positive()) {
    if (was_ehlo && r.permanent()) {
      // An old server that does not know EHLO (RFC 5321 §3.2).
      phase_ = Phase::kHelo;
      cmd_.assign("HELO ").append(cfg_.helo).append("\r\n");
      out_.append(cmd_);
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
  phase_ = Phase::kReady;
  ready_reached_ = true;
}

void Session::handle_txn_reply(const Expect& e, const Reply& r, uint64_t now_ms) {
  Txn* t = e.txn;
  const size_t n = t->rcpts.size();
  switch (e.kind) {
    case Kind::kMail:
      t->mail_ok = r.positive();
      if (!t->mail_ok) {
        // Pipelined RCPT/DATA replies for this transaction still come and are consumed.
        finish_open(t, verdict_for(r.code), r.code, r.text);
        t->next_cmd = static_cast<uint16_t>(n + 2);
      } else if (!pipelining_) {
        send_txn_commands(t, now_ms);
      }
      break;
    case Kind::kRcpt:
      if (t->rcpts[e.rcpt].state == 0) {
        if (r.positive()) {
          t->rcpts[e.rcpt].state = 1;
          ++t->accepted;
        } else {
          finish_rcpt(t, e.rcpt, verdict_for(r.code), r.code, r.text);
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
    case Kind::kData:
      awaiting_354_ = false;
      if (r.code == 354) {
        if (t->accepted > 0) {
          send_body(t, now_ms);
        } else {
          // All recipients were refused but the server wants data: an empty message keeps
          // the dialogue in step; its reply means nothing.
          out_.append(".\r\n");
          expect(Kind::kIgnore, nullptr, 0, now_ms);
        }
      } else {
        for (size_t i = 0; i < n; ++i) {
          if (t->rcpts[i].state == 1) finish_rcpt(t, i, verdict_for(r.code), r.code, r.text);
        }
        if (t->mail_ok) need_rset_ = true;
      }
      break;
    case Kind::kDot:
    case Kind::kBdat: {
      for (size_t i = 0; i < n; ++i) {
        if (t->rcpts[i].state == 1) finish_rcpt(t, i, verdict_for(r.code), r.code, r.text);
      }
      if (e.kind == Kind::kBdat && t->mail_ok && !r.positive()) need_rset_ = true;
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
    if (!pipelining_ && !expect_.empty()) break;
    if (need_rset_) {
      out_.append("RSET\r\n");
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
    auto next = host_.next_txn(caps_.chunking && cfg_.use_chunking, t);
    if (next == SessionHost::Next::kWait) break;
    if (next == SessionHost::Next::kDone) {
      host_done_ = true;
      continue;
    }
    start_txn(t, now_ms);
  }
  in_pump_ = false;
}

void Session::send_quit(uint64_t now_ms) {
  out_.append("QUIT\r\n");
  expect(Kind::kQuit, nullptr, 0, now_ms);
  phase_ = Phase::kQuit;
}

bool Session::start_txn(Txn* t, uint64_t now_ms) {
  t->open = static_cast<uint16_t>(t->rcpts.size());
  t->waiting = 0;
  t->accepted = 0;
  t->mail_ok = false;
  t->next_cmd = 0;
  t->bdat = caps_.chunking && cfg_.use_chunking;
  t->started_ms = now_ms;
  for (auto& r : t->rcpts) r.state = 0;
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
      if (t->eight_bit && caps_.eight_bit_mime) cmd_.append(" BODY=8BITMIME");
      if (t->smtputf8) cmd_.append(" SMTPUTF8");
      cmd_.append("\r\n");
      out_.append(cmd_);
      expect(Kind::kMail, t, 0, now_ms);
    } else if (c <= n) {
      cmd_.assign("RCPT TO:<").append(t->rcpts[c - 1].address).append(">\r\n");
      out_.append(cmd_);
      expect(Kind::kRcpt, t, static_cast<uint16_t>(c - 1), now_ms);
    } else if (t->bdat) {
      cmd_.assign("BDAT ").append(std::to_string(t->body_size)).append(" LAST\r\n");
      out_.append(cmd_);
      for (std::string_view p : t->body) out_.append_ref(p);
      expect(Kind::kBdat, t, 0, now_ms);
    } else {
      out_.append("DATA\r\n");
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
