// The SMTP client session: one connection's protocol engine, driven only by bytes and "now".
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/outbox.h"
#include "smtp/reply_parser.h"

namespace sb {

enum class Verdict : uint8_t { kSent, kDeferred, kFailed };
const char* verdict_name(Verdict v);

// Maps a negative (4xx/5xx) reply code to a recipient verdict. 503 (bad sequence) is our
// fault, never the recipient's: deferred, so a protocol hiccup cannot fail a good address; so
// is 552 to RCPT ("too many recipients", RFC 5321 §4.5.3.1.10), see Session. A positive code
// is kSent only here: the session checks that it answers the command it is matched to.
Verdict verdict_for(int code);

// Why a session ended in a way reconnecting cannot cure, so the run must stop.
enum class FatalCause : uint8_t {
  kNone,
  kTls,     // TLS required but refused, unverifiable, injected into, or the wrong TLS mode
  kAuth,    // credentials rejected, or no usable mechanism
  kSender,  // the envelope sender was refused (5xx to MAIL FROM)
};
const char* fatal_cause_name(FatalCause c);

// Whom the session talks to, for the words of its messages: a relay (submission) or
// a domain's mail exchanger (direct delivery).
enum class PeerRole : uint8_t { kRelay, kMailExchanger };
const char* peer_role_name(PeerRole r);  // "relay", "mail exchanger"

// Why a session ended, in protocol terms. The session knows nothing of the command line: the
// CLI turns a SessionEnd into advice with flag names (cli/session_advice.h).
enum class EndCause : uint8_t {
  kNone,                    // still running, or ended by QUIT
  kTlsAtOnce,               // a TLS record came instead of a greeting (implicit TLS port)
  kStartTlsInjection,       // bytes after the 220 to STARTTLS, before the handshake
  kStartTlsNotOffered,      // TLS required, STARTTLS not in the EHLO reply
  kStartTlsRefused,         // STARTTLS answered 4xx/5xx (SessionEnd::transient says which)
  kTlsHandshakeFailed,      // the driver reported a failed handshake (on_tls_failed)
  kPlaintextAuthRefused,    // we would not send credentials over an unencrypted connection
  kAuthNotOffered,          // credentials given, AUTH not in the EHLO reply
  kAuthNoMechanism,         // AUTH offered, but no mechanism we can (or were told to) use
  kAuthTemporary,           // AUTH answered 4xx
  kAuthFailed,              // AUTH answered 5xx: the credentials were rejected
  kAuthTokenRefreshFailed,  // XOAUTH2 rejected and a fresh token could not be fetched
  kSenderRefused,           // MAIL FROM refused for the sender itself
  kGreetingRefused,         // 554 (or another refusal) at the greeting
  kHeloRefused,             // EHLO and HELO refused
  kRsetRefused,
  kServerClosing,   // 421
  kTimeout,         // no reply within the command's timeout
  kConnectionLost,  // the transport closed or failed (on_closed)
  kProtocolError,   // replies out of step, garbage, data nobody asked for
  kClosedByDriver,  // force_close: connect failure, run aborted
  kCount,
};
const char* end_cause_name(EndCause c);

struct SessionEnd {
  EndCause cause = EndCause::kNone;
  // What happened, in protocol terms with the server's reply, no command-line advice:
  // "the relay refused STARTTLS: 554 5.7.0 not here".
  std::string text;
  int code = 0;  // the reply it came with, or 0
  PeerRole peer = PeerRole::kRelay;
  bool transient = false;  // the server's refusal was temporary (4xx)
  // Silent or closed at the greeting on port 465 without implicit TLS: the port usually
  // speaks TLS at once.
  bool implicit_tls_port = false;
};

// The session's own wording of an end: `text`, plus the port 465 remark.
std::string session_end_text(const SessionEnd& e);
// Words a SessionEnd for a user; SessionConfig::describe_end.
using EndDescriber = std::string (*)(const SessionEnd&);

// Session-private progress of one recipient.
enum class RcptState : uint8_t { kWaiting, kAccepted, kDone };

struct TxnRcpt {
  std::string_view address;
  uint64_t cookie = 0;  // the host's handle for this recipient
  RcptState state = RcptState::kWaiting;
};

// The connection a transaction went over, for the accounting log. The connection owns it
// and outlives every transaction it carries (until SessionHost::txn_done).
struct ConnInfo {
  uint64_t id = 0;   // unique in the process, from 1
  std::string peer;  // "IP:PORT" ("[IPv6]:PORT"), for messages
  std::string ip;    // the same as fields, for records (the accounting log)
  uint16_t port = 0;
  std::string tls_version;  // "TLSv1.3" once a handshake completed, else ""
  uint64_t connect_us = 0;  // the TCP connect took this long (0 until connected)
  uint64_t tls_us = 0;      // the TLS handshake took this long (0 without TLS)
};

// One mail transaction: one envelope, one content, one or more recipients. The host owns it
// and the memory its views point to until SessionHost::txn_done.
struct Txn {
  std::string_view mail_from;
  std::vector<TxnRcpt> rcpts;
  std::span<const std::string_view> body;  // wire pieces, CRLF, dot-stuffed iff !bdat
  size_t body_size = 0;
  bool eight_bit = false;
  bool smtputf8 = false;  // an address is not ASCII
  // RFC 3461: with a server that offers DSN, MAIL FROM carries RET=HDRS ENVID=<envid> (the
  // bounce then returns only the headers, and names the envelope id). xtext-safe octets
  // only ('!'..'~' except '+' and '='); empty: no DSN parameters.
  std::string_view envid;
  // Probe only (`check --probe-rcpt`): MAIL and RCPT, then RSET instead of a message; the
  // RCPT reply is the recipient's outcome (kSent meaning "accepted").
  bool probe = false;
  int mail_code = 0;  // the reply to MAIL FROM, once it came

  // Session-private progress.
  uint16_t next_cmd = 0;  // 0 MAIL, 1..n RCPT, n+1 DATA/BDAT
  uint16_t open = 0;      // recipients without an outcome yet
  uint16_t waiting = 0;   // replies still expected for this transaction
  uint16_t accepted = 0;  // recipients accepted by RCPT and waiting for the final reply
  bool mail_ok = false;
  bool bdat = false;
  // The positive final reply, held until a later reply proves the replies are in step.
  int final_code = 0;
  std::string final_text;
  uint64_t started_ms = 0;
  const ConnInfo* conn = nullptr;  // stamped by the session that starts it (may stay null)
};

class SessionHost {
 public:
  virtual ~SessionHost() = default;
  enum class Next { kTxn, kWait, kDone };
  // Offers the next transaction; `bdat` says the body must not be dot-stuffed.
  virtual Next next_txn(bool bdat, Txn*& out) = 0;
  // Exactly one call per recipient of every transaction handed out.
  virtual void rcpt_outcome(Txn& t, size_t i, Verdict v, int code, std::string_view text) = 0;
  // The session holds no reference to t any more.
  virtual void txn_done(Txn& t) = 0;
};

struct Timeouts {  // RFC 5321 §4.5.3.2 defaults, in milliseconds
  uint32_t greeting = 300000;
  uint32_t ehlo = 300000;
  uint32_t mail = 300000;
  uint32_t rcpt = 300000;
  uint32_t data = 120000;
  uint32_t dot = 600000;  // also BDAT LAST: the server may be delivering
  uint32_t quit = 60000;
  // Idle with a final reply held (Session::held_) and no enhanced codes to make a NOOP's
  // reply tell: how long a contradicting reply may still come before the held one counts.
  uint32_t held = 500;
};

enum class TlsMode { kNone, kStartTls, kImplicit, kOpportunistic };
enum class AuthMech { kAuto, kPlain, kLogin, kXoauth2 };

// Credentials for AUTH, shared by every session of a run. The secret is never logged: the
// session writes it only into the outbox, base64-encoded, and transcripts redact AUTH.
class Credentials {
 public:
  virtual ~Credentials() = default;
  virtual const std::string& user() const = 0;
  // The password, or the OAuth bearer token for XOAUTH2.
  virtual std::string secret() const = 0;
  virtual bool is_oauth() const = 0;
  // Fetches a fresh token (the server rejected the current one); false when that is not
  // possible. Called at most once per connection.
  virtual bool refresh(std::string* error) = 0;

  // Until a login has succeeded once, only one connection in the whole run may try, so a
  // wrong password is sent exactly once (accounts lock after a few failures). The pools
  // use these; they are thread-safe.
  bool verified() const { return verified_.load(std::memory_order_acquire); }
  void mark_verified() { verified_.store(true, std::memory_order_release); }
  bool claim_first_login() {
    bool expected = false;
    return verified() || first_login_.compare_exchange_strong(expected, true);
  }
  void release_first_login() { first_login_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> verified_{false};
  std::atomic<bool> first_login_{false};
};

// The default pipeline window and cap on body octets in flight (README "Tuning"). With
// CHUNKING a connection's rate is at most window / RTT: 512 keeps 10 connections above 30,000
// msgs/s at 100 ms RTT (32 lost 5-15x on WAN links, bench/RESULTS.md). The window's memory is
// the bodies the session holds (W x message size), so the cap bounds it: 1 MiB is the
// bandwidth-delay product of ~80 Mbit/s at 100 ms, and 512 messages of ~2 KB.
inline constexpr uint32_t kDefaultPipelineWindow = 512;
inline constexpr uint64_t kDefaultPipelineBytes = uint64_t{1} << 20;
inline constexpr uint64_t kMaxPipelineBytes = uint64_t{1} << 30;  // --pipeline-bytes at most

struct SessionConfig {
  std::string helo = "localhost";
  TlsMode tls = TlsMode::kNone;
  Credentials* credentials = nullptr;  // null: no AUTH
  AuthMech auth = AuthMech::kAuto;
  bool allow_plaintext_auth = false;
  uint32_t max_messages = 100;               // transactions per connection, then QUIT
  uint32_t window = kDefaultPipelineWindow;  // transactions in flight at once with PIPELINING
  // Body octets of the transactions in flight at most (whichever of window and this binds
  // first); a message larger than the cap alone still goes, as the only one in flight.
  uint64_t max_bytes_in_flight = kDefaultPipelineBytes;
  bool use_pipelining = true;
  bool use_chunking = true;
  Timeouts timeouts;
  PeerRole peer = PeerRole::kRelay;
  // How Session::end_reason() words an end for the user (the CLI gives one that adds flag
  // advice); null: session_end_text.
  EndDescriber describe_end = nullptr;
};

struct ServerCaps {
  bool esmtp = false;
  bool pipelining = false;
  bool chunking = false;
  bool eight_bit_mime = false;
  bool smtputf8 = false;
  bool starttls = false;
  bool dsn = false;  // RFC 3461
  bool size = false;
  bool enhanced_codes = false;  // ENHANCEDSTATUSCODES (RFC 2034)
  uint64_t max_size = 0;        // 0 = no limit announced
  std::string auth;             // AUTH mechanisms as announced
};

class Session {
 public:
  Session(const SessionConfig& cfg, SessionHost& host, Outbox& out);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Stamped on every transaction this session starts; null leaves Txn::conn null.
  void set_conn_info(const ConnInfo* info) { conn_info_ = info; }
  const ConnInfo* conn_info() const { return conn_info_; }  // null when none was set
  void on_connected(uint64_t now_ms);
  void on_data(std::string_view in, uint64_t now_ms);
  // Call when now_ms >= deadline_ms().
  void on_timer(uint64_t now_ms);
  // The transport failed or the peer closed: every open recipient is deferred.
  void on_closed(std::string_view why, uint64_t now_ms);
  // The host has work again after answering kWait.
  void poke(uint64_t now_ms);

  // The driver closes the connection once the outbox is flushed.
  bool wants_close() const { return phase_ == Phase::kClosed; }
  // Absolute time at which on_timer must run; 0 = none.
  uint64_t deadline_ms() const { return deadline_; }
  const ServerCaps& caps() const { return caps_; }
  uint32_t transactions() const { return started_; }
  // Why the session ended ("" while it runs or after a clean QUIT), worded for the user by
  // SessionConfig::describe_end.
  const std::string& end_reason() const { return end_reason_; }
  // Why the session ended, typed (cause kNone while it runs or after a clean QUIT).
  const SessionEnd& end() const { return end_; }
  // True when the session reached the point of sending mail (greeting and EHLO passed).
  bool ready_reached() const { return ready_reached_; }
  const std::string& greeting() const { return greeting_; }
  // The last reply a connection-level problem came with (greeting 554, 421 ...), or 0.
  int end_code() const { return end_code_; }
  // The session ended for a reason that reconnecting cannot cure (bad credentials, TLS
  // required but refused or unverifiable): the run must stop.
  bool fatal() const { return fatal_ != FatalCause::kNone; }
  FatalCause fatal_cause() const { return fatal_; }
  // Where the session was when it ended: "tcp", "greeting", "ehlo", "tls", "auth",
  // "transaction" or "quit" (for `check`'s report).
  const char* end_step() const { return end_step_; }

  // TLS plumbing: after the server's 220 to STARTTLS the session asks the driver to start
  // the handshake; the driver reports back. With implicit TLS the driver does the handshake
  // before on_connected.
  bool wants_tls() const { return phase_ == Phase::kTlsWanted; }
  void on_tls_ready(uint64_t now_ms);
  void on_tls_failed(std::string_view why, bool fatal);
  bool tls_active() const { return tls_active_; }
  bool authenticated() const { return authenticated_; }
  // The dialogue so far, secrets redacted ("C: " client, "S: " server lines), kept only when
  // enabled (the check verb).
  void keep_transcript(bool on) { transcript_on_ = on; }
  const std::string& transcript() const { return transcript_; }
  // Ends the session at once (the run is being aborted); open recipients are deferred.
  void force_close(std::string_view why, bool fatal, uint64_t now_ms);

 private:
  enum class Phase {
    kInit,
    kGreeting,
    kEhlo,
    kHelo,
    kStartTls,
    kTlsWanted,
    kAuth,
    kReady,
    kQuit,
    kClosed
  };
  enum class Kind : uint8_t {
    kGreeting,
    kEhlo,
    kHelo,
    kMail,
    kRcpt,
    kData,
    kDot,
    kBdat,
    kRset,
    kQuit,
    kIgnore,
    kStartTls,
    kAuth,
    kNoop,
    kCount
  };
  struct Expect {
    Kind kind;
    Txn* txn;
    uint16_t rcpt;
    uint32_t read;  // reads_ when the command was written: its reply must come in a later read
  };
  // How a reply fits the command it is matched to.
  enum class Fit : uint8_t { kPositive, kNegative, kWrong };
  static Fit fit(Kind k, const Reply& r, bool enhanced);
  static const char* kind_name(Kind k);

  void handle(const Reply& r, uint64_t now_ms);
  void handle_ehlo(const Reply& r, uint64_t now_ms);
  void handle_txn_reply(const Expect& e, const Reply& r, uint64_t now_ms);
  void pump(uint64_t now_ms);
  // True when `t` may start now under the cap on body octets in flight.
  bool fits_in_flight(const Txn* t) const {
    return live_.empty() || live_bytes_ + t->body_size <= cfg_.max_bytes_in_flight;
  }
  // Takes `t` out of live_ (it is there), keeping live_bytes_.
  void unlive(Txn* t);
  bool start_txn(Txn* t, uint64_t now_ms);
  void send_txn_commands(Txn* t, uint64_t now_ms);
  void send_body(Txn* t, uint64_t now_ms);
  void expect(Kind k, Txn* t, uint16_t rcpt, uint64_t now_ms);
  void finish_rcpt(Txn* t, size_t i, Verdict v, int code, std::string_view text);
  void finish_open(Txn* t, Verdict v, int code, std::string_view text);
  void maybe_done(Txn* t);
  void abort_all(Verdict v, int code, std::string_view why, bool keep_held);
  // Ends the session; open recipients are deferred. Positive final replies still held are
  // kept (sent) unless the replies were proven out of step (`desync`) or the run stops.
  // `cause` and `why` (protocol wording) become end(); end_reason() is the described form.
  void close_with(EndCause cause, std::string why, int code, FatalCause fatal = FatalCause::kNone,
                  bool desync = false);
  void protocol_error(std::string why, int code);
  // "the relay" or "the mail exchanger", for messages.
  std::string the_peer() const;
  void hold(Txn* t, const Reply& r);
  void release_held();
  // True when a connection that ends now leaves no reply outstanding that could have been
  // shifted onto a held one: only NOOP or QUIT (sent after the held replies came) are.
  bool only_late_commands_outstanding() const;
  void redact(Reply& r) const;
  void forget_secrets();
  void after_ehlo(uint64_t now_ms);
  void start_auth(uint64_t now_ms);
  void handle_auth(const Reply& r, uint64_t now_ms);
  void send_line(std::string_view line, bool secret);
  void note_reply(const Reply& r);
  void send_quit(uint64_t now_ms);
  void rearm(uint64_t now_ms);
  uint32_t timeout_for(Kind k) const;
  bool all_done(const Txn* t) const { return t->open == 0; }
  // BDAT's final reply is a 250 like MAIL's and RCPT's: only enhanced codes can show that a
  // pipelined reply landed on the wrong command, so without them DATA (whose 354 is unique).
  bool use_bdat() const { return caps_.chunking && cfg_.use_chunking && caps_.enhanced_codes; }

  const SessionConfig& cfg_;
  SessionHost& host_;
  Outbox& out_;
  ReplyParser parser_;
  Reply reply_;
  ServerCaps caps_;
  Phase phase_ = Phase::kInit;
  std::deque<Expect> expect_;
  // Transactions handed out and not yet done, oldest first. A deque: the oldest is the one that
  // usually finishes, and a vector's erase at the front moved the whole window (up to a
  // thousand pointers) for every message (load --max: -98 instructions a message, issue 17).
  std::deque<Txn*> live_;
  uint64_t live_bytes_ = 0;  // body_size summed over live_
  // Handed out by the host but not started: it would have put more than
  // max_bytes_in_flight in flight. Starts before anything else once it fits.
  Txn* parked_ = nullptr;
  // Transactions whose positive final reply came but is not yet proven to be theirs (a
  // spurious or missing reply earlier would make it another command's); not in live_.
  std::vector<Txn*> held_;
  std::vector<std::string> secret_forms_;  // what AUTH sent, to redact from replies
  uint32_t reads_ = 0;                     // on_data calls so far
  std::string cmd_;                        // scratch for building a command
  std::string end_reason_;
  SessionEnd end_;
  std::string greeting_;
  uint64_t deadline_ = 0;
  uint32_t started_ = 0;
  int end_code_ = 0;
  bool awaiting_354_ = false;
  bool need_rset_ = false;
  bool noop_refused_ = false;  // the server answered NOOP "not recognized": prove by quiet
  bool host_done_ = false;
  bool ready_reached_ = false;
  bool in_pump_ = false;
  bool pipelining_ = false;
  FatalCause fatal_ = FatalCause::kNone;
  bool tls_active_ = false;
  bool authenticated_ = false;
  bool token_refreshed_ = false;
  bool starttls_declined_ = false;
  bool transcript_on_ = false;
  AuthMech mech_ = AuthMech::kAuto;
  int auth_step_ = 0;
  std::string transcript_;
  const char* end_step_ = "";
  const ConnInfo* conn_info_ = nullptr;
};

}  // namespace sb
