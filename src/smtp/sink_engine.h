// The sink's protocol engine: the server side of one SMTP connection, bytes in, bytes out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sb {

// Fault injection: shares are per recipient (RCPT) or per transaction, drawn from a seeded
// deterministic generator so tests are repeatable.
struct SinkConfig {
  std::string hostname = "sink.localhost";
  bool pipelining = true;
  bool chunking = true;
  uint64_t max_size = 0;        // advertised SIZE, 0 = advertise SIZE without a limit
  double reject_rcpt = 0;       // share of RCPTs answered 550 5.1.1
  double defer_rcpt = 0;        // share of RCPTs answered 451 4.3.0
  double drop_txn = 0;          // share of transactions whose connection is dropped before
                                // the final reply (after the body is received)
  double defer_txn = 0;         // share of transactions answered 451 at end of data
  uint32_t reply_delay_ms = 0;  // the driver delays every reply flush by this much
  // Replaces the text of the defer_rcpt/defer_txn replies, e.g. "451 4.7.0 Rate limited" to
  // play a provider pushing back. Empty: the default 451 4.3.0 replies.
  std::string defer_reply;
  // A provider's rate limit: at most this many messages a second are accepted, sink-wide
  // (100 ms of burst); the others get "451 4.7.0 Rate limited" at end of data. 0: none.
  // Needs set_now() and a shared SinkLimits (the driver's).
  double rate_limit = 0;
  // The Nth message (sink-wide, counting from 1) is answered 421 4.7.0 at end of data and
  // its connection closed, once: a lone push-back. 0: never.
  uint64_t fault_421_at = 0;
  uint64_t seed = 1;
  bool record = false;  // keep every accepted message (tests); see take_recorded()
};

struct SinkCounters {
  uint64_t connections = 0;
  uint64_t messages = 0;    // transactions that got a final 250
  uint64_t recipients = 0;  // accepted recipients of those transactions
  uint64_t bytes = 0;       // message octets of those transactions (after un-stuffing)
  uint64_t rejected_rcpts = 0;
  uint64_t deferred_rcpts = 0;
  uint64_t dropped = 0;
  uint64_t rate_limited = 0;  // messages answered 451 4.7.0 by rate_limit
  // Uptime ms of the first and the last accepted message (-1: none yet), for rates over the
  // run; and of the fault_421_at reply with the messages accepted before it (-1: not yet).
  int64_t first_ms = -1;
  int64_t last_ms = -1;
  int64_t fault_421_ms = -1;
  uint64_t messages_before_421 = 0;
};

// Sink-wide state of the rate_limit and fault_421_at options, shared by every connection's
// engine (the sink runs one loop: no lock).
struct SinkLimits {
  double tokens = -1;  // -1: full bucket at the first message
  uint64_t last_ms = 0;
  bool fault_421_done = false;
};

// One message as kept by cfg.record, as parse_recorded() returns it.
struct RecordedMessage {
  std::string mail_from;           // the reverse-path without <>, empty for the null sender
  std::vector<std::string> rcpts;  // accepted forward-paths without <>, in command order
  std::string body;                // message content after un-stuffing, with its final CRLF
};

// Behaviour the spec leaves open, decided here:
// - HELO/EHLO is required before MAIL (503 otherwise), so the sink catches a client that
//   skips it; HELO/EHLO also resets an open transaction, as RFC 5321 says.
// - Only CRLF "." CRLF ends DATA (a bare LF never starts a line): no SMTP smuggling. Command
//   lines end at LF with an optional CR before it.
// - DATA without MAIL is 503; with MAIL but no accepted RCPT it is 554. BDAT always consumes
//   its octets (the client sends them without waiting), then answers 503/554 in those cases.
// - BDAT with a size that is not a number cannot be skipped: 501 and the connection closes.
//   BDAT is honoured even when CHUNKING is not advertised, for the same reason.
// - Protocol errors (500, 501, 502, 503, over-long line) count toward kMaxErrors; the reply
//   after which the count exceeds it is followed by 421 and the connection closes. Fault
//   replies (550/451/552/554) do not count.
// - Unknown MAIL/RCPT parameters are ignored; SIZE= is checked against max_size, and a
//   received body larger than max_size gets 552 5.3.4 at its end.
// - At most kMaxRcpts accepted recipients per transaction (452 4.5.3 after), which also
//   bounds memory.
// - One fault draw per RCPT (reject first, then defer) and one per finished body (drop
//   first, then defer), whatever the shares, so a given seed and input always give the
//   same replies however the input is split.
class SinkEngine {
 public:
  static constexpr size_t kMaxLine = 4096;  // command line octets, without CRLF
  static constexpr int kMaxErrors = 20;
  static constexpr uint32_t kMaxRcpts = 1000;

  // Keeps references to cfg and counters: both must outlive the engine.
  explicit SinkEngine(const SinkConfig& cfg, SinkCounters& counters, uint64_t conn_seed);
  SinkEngine(SinkConfig&&, SinkCounters&, uint64_t) = delete;

  // The greeting to send on connect.
  void start(std::string& out);
  // The time (ms, any origin; the sink passes its uptime) for the options that need one.
  void set_now(uint64_t now_ms) { now_ms_ = now_ms; }
  void set_limits(SinkLimits* limits) { limits_ = limits; }
  // Feeds received bytes; appends replies to `out`. Returns false when the connection must
  // close after `out` is flushed (QUIT, drop fault, protocol abuse); once it has returned
  // false it ignores further input.
  bool on_data(std::string_view in, std::string& out);

  // With cfg.record: the messages accepted (final 250) since the last call, cleared by this
  // call. Each message is self-delimiting, so bodies may hold any octets:
  //   "MAIL " reverse-path "\n"
  //   "RCPT " forward-path "\n"            one line per accepted recipient, in order
  //   "BODY " decimal-length "\n"
  //   <length octets of content after un-stuffing, including its final CRLF> "\n"
  // Paths are given without the angle brackets.
  std::string take_recorded();

  // Splits take_recorded() output into messages; false if it is malformed.
  static bool parse_recorded(std::string_view rec, std::vector<RecordedMessage>& msgs);

 private:
  enum class Phase : uint8_t { kCommand, kData, kBdat, kClosed };
  // Where DATA scanning stands after the last octet consumed; lets a terminator or a
  // stuffed dot straddle on_data calls.
  enum class DataState : uint8_t {
    kLineStart,  // after CRLF (or right after 354)
    kMid,        // inside a line
    kCr,         // inside a line, last octet was CR
    kDot,        // a "." at line start, held back
    kDotCr,      // "." CR at line start, held back
  };

  const char* feed_command(const char* p, const char* end, std::string& out);
  const char* feed_data(const char* p, const char* end, std::string& out);
  const char* feed_bdat(const char* p, const char* end, std::string& out);
  void on_command(std::string_view line, std::string& out);
  void on_mail(std::string_view arg, std::string& out);
  void on_rcpt(std::string_view arg, std::string& out);
  void on_data_cmd(std::string& out);
  void on_bdat(std::string_view arg, std::string& out);
  void end_bdat_chunk(std::string& out);
  void end_message(std::string& out);
  void body_octets(const char* p, size_t n);
  void protocol_error(std::string_view reply, std::string& out);
  void reset_transaction();
  double next_share();
  bool rate_limited();

  const SinkConfig& cfg_;
  SinkCounters& counters_;
  SinkLimits* limits_ = nullptr;
  uint64_t now_ms_ = 0;
  uint64_t rng_;

  Phase phase_ = Phase::kCommand;
  DataState data_state_ = DataState::kLineStart;
  bool line_too_long_ = false;  // discarding the rest of an over-long command line
  int errors_ = 0;
  std::string line_;  // a command line split across on_data calls

  // The transaction.
  bool helo_ = false;
  bool have_mail_ = false;
  bool bdat_used_ = false;  // DATA is not allowed after BDAT (RFC 3030)
  uint32_t rcpts_ = 0;      // accepted so far
  uint64_t body_bytes_ = 0;
  uint64_t bdat_left_ = 0;
  bool bdat_last_ = false;
  std::string_view bdat_error_;  // reply owed after the chunk instead of 250, if any

  // cfg.record only; cleared, not freed, between transactions.
  std::string mail_from_;
  std::string rcpt_lines_;
  std::string body_;
  std::string recorded_;
};

}  // namespace sb
