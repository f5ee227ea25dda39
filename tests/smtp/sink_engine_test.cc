// Tests of the sink's protocol engine: replies, pipelining, DATA/BDAT bodies, faults, recording.
#include "smtp/sink_engine.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace sb {
namespace {

constexpr std::string_view kGreeting = "220 sink.localhost ESMTP smtpblast-sink\r\n";
constexpr std::string_view kEhloReply =
    "250-sink.localhost\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    "250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n";
constexpr std::string_view kMailOk = "250 2.1.0 Ok\r\n";
constexpr std::string_view kRcptOk = "250 2.1.5 Ok\r\n";
constexpr std::string_view kDataGo = "354 End data with <CR><LF>.<CR><LF>\r\n";
constexpr std::string_view kQueued = "250 2.0.0 Ok: queued\r\n";
constexpr std::string_view kChunkOk = "250 2.0.0 Ok: chunk received\r\n";
constexpr std::string_view kOk = "250 2.0.0 Ok\r\n";
constexpr std::string_view kBye = "221 2.0.0 Bye\r\n";
constexpr std::string_view kUnknown = "500 5.5.2 Error: command not recognized\r\n";

struct Outcome {
  std::string out;   // everything after the greeting
  bool open = true;  // what the last on_data call returned
  std::string recorded;
  SinkCounters counters;
};

// Feeds `in` in pieces of `chunk` octets (0: all at once, SIZE_MAX-1: random sizes), stopping
// at the first false, as the driver would.
Outcome run(const SinkConfig& cfg, std::string_view in, size_t chunk, uint64_t conn_seed = 7) {
  Outcome r;
  SinkEngine engine(cfg, r.counters, conn_seed);
  std::string greeting;
  engine.start(greeting);
  EXPECT_EQ(greeting, kGreeting);
  std::mt19937 rng(static_cast<uint32_t>(chunk));
  size_t pos = 0;
  while (pos < in.size() && r.open) {
    size_t n = in.size() - pos;
    if (chunk == SIZE_MAX - 1) {
      n = std::min(n, static_cast<size_t>(rng() % 97 + 1));
    } else if (chunk != 0) {
      n = std::min(n, chunk);
    }
    r.open = engine.on_data(in.substr(pos, n), r.out);
    pos += n;
  }
  if (!r.open) {
    std::string more;
    EXPECT_FALSE(engine.on_data("NOOP\r\n", more));
    EXPECT_EQ(more, "");
  }
  r.recorded = engine.take_recorded();
  return r;
}

std::string cat(std::initializer_list<std::string_view> parts) {
  std::string s;
  for (auto p : parts) s += p;
  return s;
}

// The config is a tweak of the default rather than a SinkConfig value: g++ 12 at -O3 warns
// (-Wmaybe-uninitialized, falsely) about strings inside a large braced table of configs.
using Tweak = void (*)(SinkConfig&);

struct Case {
  const char* name;
  Tweak tweak;  // nullptr: the default config
  std::string in;
  std::string want;
  bool open;

  SinkConfig cfg() const {
    SinkConfig c;
    if (tweak != nullptr) tweak(c);
    return c;
  }
};

const std::string kTxn = "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nhi\r\n.\r\n";
const std::string kTxnReplies = cat({kMailOk, kRcptOk, kDataGo, kQueued});

std::vector<Case> cases() {
  std::string long_line(5000, 'X');
  std::string many_errors;
  std::string many_errors_want;
  for (int i = 0; i < 21; ++i) {
    many_errors += "BOGUS\r\n";
    many_errors_want += kUnknown;
  }
  many_errors_want += "421 4.7.0 sink.localhost Error: too many errors\r\n";
  return {
      {"ehlo", nullptr, "EHLO c\r\n", std::string(kEhloReply), true},
      {"ehlo_no_pipelining_chunking_with_size",
       [](SinkConfig& c) {
         c.pipelining = false;
         c.chunking = false;
         c.max_size = 1000;
       },
       "ehlo c\r\n",
       "250-sink.localhost\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
       "250 ENHANCEDSTATUSCODES\r\n",
       true},
      {"helo", nullptr, "HELO c\r\n", "250 sink.localhost\r\n", true},
      {"helo_without_name", nullptr, "HELO\r\n", "501 5.5.4 Syntax: EHLO hostname\r\n", true},
      {"full_session", nullptr, "EHLO c\r\n" + kTxn + "QUIT\r\n",
       cat({kEhloReply, kTxnReplies, kBye}), false},
      {"pipelined_two_rcpts_two_txns", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\n"
       "DATA\r\nx\r\n.\r\n" +
           kTxn,
       cat({kEhloReply, kMailOk, kRcptOk, kRcptOk, kDataGo, kQueued, kTxnReplies}), true},
      {"lower_case_verbs_and_bare_lf_commands", nullptr,
       "ehlo c\nmail from:<a@x>\nrcpt to:<b@y>\ndata\nhi\r\n.\r\nnoop\n",
       cat({kEhloReply, kTxnReplies, kOk}), true},
      {"lenient_space_after_colon_and_quoted_gt", nullptr,
       "EHLO c\r\nMAIL FROM: <\"a>b\"@x>\r\nRCPT TO: <b@y>\r\n",
       cat({kEhloReply, kMailOk, kRcptOk}), true},
      {"null_sender", nullptr, "EHLO c\r\nMAIL FROM:<>\r\n", cat({kEhloReply, kMailOk}), true},
      {"empty_rcpt_is_syntax_error", nullptr, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<>\r\n",
       cat({kEhloReply, kMailOk, "501 5.5.4 Syntax: RCPT TO:<address>\r\n"}), true},
      {"mail_without_brackets", nullptr, "EHLO c\r\nMAIL FROM:a@x\r\n",
       cat({kEhloReply, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"}), true},
      {"mail_before_ehlo", nullptr, "MAIL FROM:<a@x>\r\n",
       "503 5.5.1 Error: send HELO/EHLO first\r\n", true},
      {"nested_mail", nullptr, "EHLO c\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\n",
       cat({kEhloReply, kMailOk, "503 5.5.1 Error: nested MAIL command\r\n"}), true},
      {"rcpt_without_mail", nullptr, "EHLO c\r\nRCPT TO:<b@y>\r\n",
       cat({kEhloReply, "503 5.5.1 Error: need MAIL command\r\n"}), true},
      {"data_without_mail", nullptr, "EHLO c\r\nDATA\r\n",
       cat({kEhloReply, "503 5.5.1 Error: need MAIL command\r\n"}), true},
      {"data_without_rcpt", nullptr, "EHLO c\r\nMAIL FROM:<a@x>\r\nDATA\r\nNOOP\r\n",
       cat({kEhloReply, kMailOk, "554 5.5.1 Error: no valid recipients\r\n", kOk}), true},
      {"data_all_rcpts_rejected", [](SinkConfig& c) { c.reject_rcpt = 1; },
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n",
       cat({kEhloReply, kMailOk, "550 5.1.1 Recipient address rejected (sink fault)\r\n",
            "554 5.5.1 Error: no valid recipients\r\n"}),
       true},
      {"rcpt_deferred", [](SinkConfig& c) { c.defer_rcpt = 1; },
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\n",
       cat({kEhloReply, kMailOk, "451 4.3.0 Recipient deferred (sink fault)\r\n"}), true},
      {"txn_deferred", [](SinkConfig& c) { c.defer_txn = 1; }, "EHLO c\r\n" + kTxn,
       cat({kEhloReply, kMailOk, kRcptOk, kDataGo,
            "451 4.3.0 Transaction deferred (sink fault)\r\n"}),
       true},
      {"txn_dropped", [](SinkConfig& c) { c.drop_txn = 1; }, "EHLO c\r\n" + kTxn + "NOOP\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kDataGo}), false},
      {"rset_mid_transaction", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRSET\r\nDATA\r\n" + kTxn,
       cat({kEhloReply, kMailOk, kRcptOk, kOk, "503 5.5.1 Error: need MAIL command\r\n",
            kTxnReplies}),
       true},
      {"ehlo_resets_transaction", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nEHLO c\r\nMAIL FROM:<a@x>\r\n",
       cat({kEhloReply, kMailOk, kEhloReply, kMailOk}), true},
      {"quit_stops_processing", nullptr, "QUIT\r\nNOOP\r\n", std::string(kBye), false},
      {"misc_commands", nullptr, "NOOP\r\nVRFY x\r\nSTARTTLS\r\nAUTH PLAIN x\r\nFOO\r\n\r\n",
       cat({kOk, "252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery\r\n",
            "502 5.5.1 Error: command not implemented\r\n",
            "502 5.5.1 Error: command not implemented\r\n", kUnknown, kUnknown}),
       true},
      {"over_long_line", nullptr, long_line + "\r\nNOOP\r\n",
       cat({"500 5.5.2 Error: line too long\r\n", kOk}), true},
      {"too_many_errors", nullptr, many_errors + "NOOP\r\n", many_errors_want, false},
      {"size_param_over_limit", [](SinkConfig& c) { c.max_size = 100; },
       "EHLO c\r\nMAIL FROM:<a@x> SIZE=101\r\nMAIL FROM:<a@x> SIZE=100\r\n",
       cat({"250-sink.localhost\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n",
            "552 5.3.4 Message size exceeds fixed limit\r\n", kMailOk}),
       true},
      {"bad_size_param", nullptr, "EHLO c\r\nMAIL FROM:<a@x> SIZE=x\r\n",
       cat({kEhloReply, "501 5.5.4 Bad SIZE parameter\r\n"}), true},
      {"body_over_limit", [](SinkConfig& c) { c.max_size = 3; },
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nabcd\r\n.\r\nNOOP\r\n",
       cat({"250-sink.localhost\r\n250-PIPELINING\r\n250-SIZE 3\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-CHUNKING\r\n250 ENHANCEDSTATUSCODES\r\n",
            kMailOk, kRcptOk, kDataGo, "552 5.3.4 Message size exceeds fixed limit\r\n", kOk}),
       true},
      {"data_bare_lf_dot_does_not_end", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\na\n.\nQUIT\r\n.\r\nNOOP\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kDataGo, kQueued, kOk}), true},
      {"data_commands_inside_body_are_content", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nQUIT\r\n..\r\nRSET\r\n.\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kDataGo, kQueued}), true},
      {"bdat_chunks", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 7\r\nab\r\n.\r\nBDAT 3 LAST\r\nxyz"
       "NOOP\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kChunkOk, kQueued, kOk}), true},
      {"bdat_zero_last", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 2\r\nabBDAT 0 LAST\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kChunkOk, kQueued}), true},
      {"bdat_lower_case_last", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nbdat 1 last\r\nQ",
       cat({kEhloReply, kMailOk, kRcptOk, kQueued}), true},
      {"bdat_without_rcpt_consumes_octets", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
       cat({kEhloReply, kMailOk, "554 5.5.1 Error: no valid recipients\r\n", kOk}), true},
      {"bdat_without_mail_consumes_octets", nullptr, "EHLO c\r\nBDAT 6\r\nQUIT\r\nNOOP\r\n",
       cat({kEhloReply, "503 5.5.1 Error: need MAIL command\r\n", kOk}), true},
      {"bdat_bad_size_closes", nullptr, "EHLO c\r\nMAIL FROM:<a@x>\r\nBDAT x\r\nNOOP\r\n",
       cat({kEhloReply, kMailOk, "501 5.5.4 Syntax: BDAT count [LAST]\r\n"}), false},
      {"data_after_bdat", nullptr,
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 1\r\nxDATA\r\nBDAT 1 LAST\r\ny",
       cat({kEhloReply, kMailOk, kRcptOk, kChunkOk, "503 5.5.1 Error: DATA after BDAT\r\n",
            kQueued}),
       true},
      {"bdat_dropped", [](SinkConfig& c) { c.drop_txn = 1; },
       "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 1\r\nxBDAT 1 LAST\r\nyNOOP\r\n",
       cat({kEhloReply, kMailOk, kRcptOk, kChunkOk}), false},
  };
}

class SinkCaseTest : public ::testing::TestWithParam<Case> {};

TEST_P(SinkCaseTest, WholeAndSplitGiveTheSameReplies) {
  const Case& c = GetParam();
  const SinkConfig cfg = c.cfg();
  Outcome whole = run(cfg, c.in, 0);
  EXPECT_EQ(whole.out, c.want);
  EXPECT_EQ(whole.open, c.open);
  for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, SIZE_MAX - 1}) {
    Outcome split = run(cfg, c.in, chunk);
    EXPECT_EQ(split.out, whole.out) << "chunk " << chunk;
    EXPECT_EQ(split.open, whole.open) << "chunk " << chunk;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& p) { return p.param.name; }

INSTANTIATE_TEST_SUITE_P(Table, SinkCaseTest, ::testing::ValuesIn(cases()), case_name);

TEST(SinkEngine, GreetingNamesTheHost) {
  SinkConfig cfg;
  cfg.hostname = "mx.test";
  SinkCounters counters;
  SinkEngine engine(cfg, counters, 1);
  std::string out;
  engine.start(out);
  EXPECT_EQ(out, "220 mx.test ESMTP smtpblast-sink\r\n");
  EXPECT_EQ(counters.connections, 1u);
}

TEST(SinkEngine, RecordsUnstuffedDataBodyExactly) {
  SinkConfig cfg;
  cfg.record = true;
  std::string in =
      "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
      "..\r\n.hidden\r\nbare\nlf\n.\nno end\r\n.\rX\r\n...\r\n.\r\n";
  std::string want_body = ".\r\nhidden\r\nbare\nlf\n.\nno end\r\n\rX\r\n..\r\n";
  for (size_t chunk : {size_t{0}, size_t{1}, SIZE_MAX - 1}) {
    Outcome r = run(cfg, in, chunk);
    std::vector<RecordedMessage> msgs;
    ASSERT_TRUE(SinkEngine::parse_recorded(r.recorded, msgs)) << r.recorded;
    ASSERT_EQ(msgs.size(), 1u);
    EXPECT_EQ(msgs[0].mail_from, "a@x");
    EXPECT_EQ(msgs[0].rcpts, (std::vector<std::string>{"b@y", "c@y"}));
    EXPECT_EQ(msgs[0].body, want_body) << "chunk " << chunk;
    EXPECT_EQ(r.counters.messages, 1u);
    EXPECT_EQ(r.counters.recipients, 2u);
    EXPECT_EQ(r.counters.bytes, want_body.size());
  }
}

TEST(SinkEngine, EmptyDataBody) {
  SinkConfig cfg;
  cfg.record = true;
  Outcome r = run(cfg, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n", 1);
  EXPECT_EQ(r.recorded, "MAIL \nRCPT b@y\nBODY 0\n\n");
  EXPECT_EQ(r.counters.bytes, 0u);
}

TEST(SinkEngine, RecordsBdatChunksWithTerminatorInside) {
  SinkConfig cfg;
  cfg.record = true;
  std::string part1 = "x\r\n.\r\nQUIT\r\n";
  std::string part2 = std::string("\0\xff..", 4);
  std::string in = "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT " +
                   std::to_string(part1.size()) + "\r\n" + part1 + "BDAT " +
                   std::to_string(part2.size()) + " LAST\r\n" + part2 + kTxn;
  for (size_t chunk : {size_t{0}, size_t{1}, size_t{5}}) {
    Outcome r = run(cfg, in, chunk);
    EXPECT_EQ(r.out, cat({kEhloReply, kMailOk, kRcptOk, kChunkOk, kQueued, kTxnReplies}));
    std::vector<RecordedMessage> msgs;
    ASSERT_TRUE(SinkEngine::parse_recorded(r.recorded, msgs));
    ASSERT_EQ(msgs.size(), 2u);
    EXPECT_EQ(msgs[0].body, part1 + part2);
    EXPECT_EQ(msgs[1].body, "hi\r\n");
    EXPECT_EQ(r.counters.messages, 2u);
    EXPECT_EQ(r.counters.bytes, part1.size() + part2.size() + 4);
  }
}

TEST(SinkEngine, OnlyAcceptedRecipientsAreRecorded) {
  SinkConfig cfg;
  cfg.record = true;
  cfg.reject_rcpt = 0.5;
  std::string in = "EHLO c\r\nMAIL FROM:<a@x>\r\n";
  for (int i = 0; i < 20; ++i) in += "RCPT TO:<r" + std::to_string(i) + "@y>\r\n";
  in += "DATA\r\nbody\r\n.\r\n";
  Outcome r = run(cfg, in, 0);
  std::vector<RecordedMessage> msgs;
  ASSERT_TRUE(SinkEngine::parse_recorded(r.recorded, msgs));
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0].rcpts.size(), 20 - r.counters.rejected_rcpts);
  EXPECT_EQ(r.counters.recipients, msgs[0].rcpts.size());
  EXPECT_GT(r.counters.rejected_rcpts, 0u);
  EXPECT_LT(r.counters.rejected_rcpts, 20u);
}

TEST(SinkEngine, TakeRecordedClears) {
  SinkConfig cfg;
  cfg.record = true;
  SinkCounters counters;
  SinkEngine engine(cfg, counters, 1);
  std::string out;
  ASSERT_TRUE(engine.on_data("EHLO c\r\n" + kTxn, out));
  EXPECT_FALSE(engine.take_recorded().empty());
  EXPECT_TRUE(engine.take_recorded().empty());
}

TEST(SinkEngine, NothingRecordedWithoutRecord) {
  Outcome r = run(SinkConfig{}, "EHLO c\r\n" + kTxn, 0);
  EXPECT_EQ(r.recorded, "");
  EXPECT_EQ(r.counters.messages, 1u);
  EXPECT_EQ(r.counters.bytes, 4u);
}

TEST(SinkEngine, ParseRecordedRejectsMalformed) {
  std::vector<RecordedMessage> msgs;
  EXPECT_FALSE(SinkEngine::parse_recorded("MAIL a\nBODY 5\nab\n", msgs));
  EXPECT_FALSE(SinkEngine::parse_recorded("RCPT a\n", msgs));
  EXPECT_FALSE(SinkEngine::parse_recorded("MAIL a\nBODY x\n\n", msgs));
  EXPECT_TRUE(SinkEngine::parse_recorded("", msgs));
}

// 100 transactions of 10 recipients each, with faults at the given shares.
std::string fault_input() {
  std::string in = "EHLO c\r\n";
  for (int t = 0; t < 100; ++t) {
    in += "MAIL FROM:<a@x>\r\n";
    for (int i = 0; i < 10; ++i) in += "RCPT TO:<b@y>\r\n";
    in += "DATA\r\n.\r\n";  // only reached with >= 1 accepted rcpt; else 554 then "." is 500
    in += "RSET\r\n";
  }
  return in;
}

TEST(SinkEngine, RcptFaultSharesAreRoughlyRight) {
  SinkConfig cfg;
  cfg.reject_rcpt = 0.5;
  Outcome r = run(cfg, fault_input(), 0);
  EXPECT_TRUE(r.open);
  EXPECT_GE(r.counters.rejected_rcpts, 400u);
  EXPECT_LE(r.counters.rejected_rcpts, 600u);
  EXPECT_EQ(r.counters.deferred_rcpts, 0u);

  cfg.reject_rcpt = 0.2;
  cfg.defer_rcpt = 0.3;
  r = run(cfg, fault_input(), 0);
  EXPECT_GE(r.counters.rejected_rcpts, 120u);
  EXPECT_LE(r.counters.rejected_rcpts, 280u);
  EXPECT_GE(r.counters.deferred_rcpts, 200u);
  EXPECT_LE(r.counters.deferred_rcpts, 400u);
  EXPECT_EQ(r.counters.recipients + r.counters.rejected_rcpts + r.counters.deferred_rcpts, 1000u);
}

TEST(SinkEngine, TxnDeferShareIsRoughlyRight) {
  SinkConfig cfg;
  cfg.defer_txn = 0.5;
  Outcome r = run(cfg, fault_input(), 0);
  EXPECT_GE(r.counters.messages, 30u);
  EXPECT_LE(r.counters.messages, 70u);
  EXPECT_EQ(r.counters.recipients, 10 * r.counters.messages);
}

TEST(SinkEngine, FaultsRepeatWithTheSameSeedAndDifferWithAnother) {
  SinkConfig cfg;
  cfg.reject_rcpt = 0.3;
  cfg.defer_rcpt = 0.2;
  cfg.defer_txn = 0.2;
  std::string in = fault_input();
  Outcome a = run(cfg, in, 0, 5);
  Outcome b = run(cfg, in, SIZE_MAX - 1, 5);
  EXPECT_EQ(a.out, b.out);
  Outcome c = run(cfg, in, 0, 6);
  EXPECT_NE(a.out, c.out);
  cfg.seed = 2;
  Outcome d = run(cfg, in, 0, 5);
  EXPECT_NE(a.out, d.out);
}

TEST(SinkEngine, DropShareCountsDropped) {
  SinkConfig cfg;
  cfg.drop_txn = 0.5;
  int dropped = 0;
  for (uint64_t conn = 0; conn < 200; ++conn) {
    Outcome r = run(cfg, "EHLO c\r\n" + kTxn, 0, conn);
    EXPECT_EQ(r.open, r.counters.dropped == 0);
    dropped += static_cast<int>(r.counters.dropped);
  }
  EXPECT_GE(dropped, 60);
  EXPECT_LE(dropped, 140);
}

TEST(SinkEngine, TooManyRecipients) {
  std::string in = "EHLO c\r\nMAIL FROM:<a@x>\r\n";
  for (uint32_t i = 0; i <= SinkEngine::kMaxRcpts; ++i) in += "RCPT TO:<b@y>\r\n";
  Outcome r = run(SinkConfig{}, in, 0);
  EXPECT_TRUE(r.open);
  EXPECT_TRUE(r.out.ends_with("452 4.5.3 Error: too many recipients\r\n"));
}

TEST(SinkEngine, LineAtTheLimitIsAccepted) {
  std::string in = "NOOP " + std::string(SinkEngine::kMaxLine - 5, 'a') + "\r\n";
  EXPECT_EQ(run(SinkConfig{}, in, 1).out, kOk);
  in = "NOOP " + std::string(SinkEngine::kMaxLine - 4, 'a') + "\r\n";
  EXPECT_EQ(run(SinkConfig{}, in, 1).out, "500 5.5.2 Error: line too long\r\n");
  EXPECT_EQ(run(SinkConfig{}, in, 0).out, "500 5.5.2 Error: line too long\r\n");
}

TEST(SinkEngine, LargePipelinedBatchRepliesInOrderInOneCall) {
  std::string in = "EHLO c\r\n";
  std::string want(kEhloReply);
  for (int i = 0; i < 500; ++i) {
    in += kTxn;
    want += kTxnReplies;
  }
  SinkConfig cfg;
  SinkCounters counters;
  SinkEngine engine(cfg, counters, 1);
  std::string out;
  EXPECT_TRUE(engine.on_data(in, out));
  EXPECT_EQ(out, want);
  EXPECT_EQ(counters.messages, 500u);
}

TEST(SinkEngine, PartialLineProducesNoReply) {
  SinkConfig cfg;
  SinkCounters counters;
  SinkEngine engine(cfg, counters, 1);
  std::string out;
  EXPECT_TRUE(engine.on_data("NOOP\r\nNO", out));
  EXPECT_EQ(out, kOk);
  EXPECT_TRUE(engine.on_data("OP", out));
  EXPECT_EQ(out, kOk);
  EXPECT_TRUE(engine.on_data("\r\n", out));
  EXPECT_EQ(out, cat({kOk, kOk}));
}

}  // namespace
}  // namespace sb
