// The sink's protocol engine: the server side of one SMTP connection, bytes in, bytes out.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sb {

// Fault injection: shares are per recipient (RCPT) or per transaction, drawn from a seeded
// deterministic generator so tests are repeatable.
struct SinkConfig {
  std::string hostname = "sink.localhost";
  bool pipelining = true;
  bool chunking = true;
  uint64_t max_size = 0;       // advertised SIZE, 0 = advertise SIZE without a limit
  double reject_rcpt = 0;      // share of RCPTs answered 550 5.1.1
  double defer_rcpt = 0;       // share of RCPTs answered 451 4.3.0
  double drop_txn = 0;         // share of transactions whose connection is dropped before
                               // the final reply (after the body is received)
  double defer_txn = 0;        // share of transactions answered 451 at end of data
  uint32_t reply_delay_ms = 0; // the driver delays every reply flush by this much
  uint64_t seed = 1;
  bool record = false;         // keep every accepted message (tests); see SinkEngine::take
};

struct SinkCounters {
  uint64_t connections = 0;
  uint64_t messages = 0;        // transactions that got a final 250
  uint64_t recipients = 0;      // accepted recipients of those transactions
  uint64_t bytes = 0;           // message octets received (after un-stuffing)
  uint64_t rejected_rcpts = 0;
  uint64_t deferred_rcpts = 0;
  uint64_t dropped = 0;
};

class SinkEngine {
 public:
  explicit SinkEngine(const SinkConfig& cfg, SinkCounters& counters, uint64_t conn_seed);

  // The greeting to send on connect.
  void start(std::string& out);
  // Feeds received bytes; appends replies to `out`. Returns false when the connection must
  // close after `out` is flushed (QUIT, drop fault, protocol abuse).
  bool on_data(std::string_view in, std::string& out);

  // With cfg.record: messages accepted since the last call as "MAIL FROM\nRCPT,RCPT\n<body>";
  // cleared by this call.
  std::string take_recorded();

 private:
  struct State;
  const SinkConfig& cfg_;
  SinkCounters& counters_;
  // The implementation keeps its state in a fixed-size, reusable form (no per-message
  // allocation on the fast path once buffers have grown).
  std::string line_;
  uint64_t rng_;
  int phase_ = 0;
  uint64_t bdat_left_ = 0;
  bool bdat_last_ = false;
  bool have_mail_ = false;
  uint32_t rcpts_ = 0;
  uint64_t body_bytes_ = 0;
  std::string recorded_;
  std::string current_;
};

}  // namespace sb
