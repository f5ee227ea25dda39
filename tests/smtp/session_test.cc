// The client session against scripted server dialogues, byte for byte, on a fake clock.
#include "smtp/session.h"

#include <gtest/gtest.h>

#include <random>

#include "fakes/fake_session_host.h"

namespace sb {
namespace {

using testing::FakeSessionHost;

const char* kEhloPipe = "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n";
// BDAT only with enhanced status codes (see Session::use_bdat).
const char* kEhloChunk =
    "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250 8BITMIME\r\n";
const char* kEhloPlain = "250-mx.test\r\n250 8BITMIME\r\n";

struct Harness {
  explicit Harness(SessionConfig c = {}) : cfg(std::move(c)), session(cfg, host, out) {}
  // Output written since the last call.
  std::string take() {
    std::string s = out.flatten();
    out.clear();
    return s;
  }
  void feed(std::string_view s) { session.on_data(s, now); }
  void connect() { session.on_connected(now); }
  // Greeting and EHLO with the given capabilities; returns what the client sent after them.
  std::string greet(const char* ehlo) {
    connect();
    feed("220 mx.test ESMTP\r\n");
    EXPECT_EQ(take(), "EHLO client.test\r\n");
    feed(ehlo);
    return take();
  }
  SessionConfig cfg;
  FakeSessionHost host;
  Outbox out;
  Session session;
  uint64_t now = 1000;
};

SessionConfig config() {
  SessionConfig c;
  c.helo = "client.test";
  return c;
}

TEST(Session, PipelinedDataTransactionsFollowEachOther) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "Subject: 1\r\n\r\nhi\r\n");
  h.host.add("a@x.test", {"c@y.test"}, "Subject: 2\r\n\r\nho\r\n");
  std::string sent = h.greet(kEhloPipe);
  // MAIL, RCPT and DATA in one write; nothing else until the 354.
  EXPECT_EQ(sent, "MAIL FROM:<a@x.test> SIZE=18\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  // Body and dot, and the next transaction right behind it.
  EXPECT_EQ(h.take(),
            "Subject: 1\r\n\r\nhi\r\n.\r\nMAIL FROM:<a@x.test> SIZE=18\r\nRCPT "
            "TO:<c@y.test>\r\nDATA\r\n");
  h.feed("250 2.0.0 queued as A\r\n250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(h.take(), "Subject: 2\r\n\r\nho\r\n.\r\nQUIT\r\n");
  h.feed("250 2.0.0 queued as B\r\n221 bye\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 2u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kSent);
  EXPECT_EQ(h.host.outcomes[0].code, 250);
  EXPECT_EQ(h.host.outcomes[0].text, "2.0.0 queued as A");
  EXPECT_EQ(h.host.outcomes[1].verdict, Verdict::kSent);
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.session.end_reason(), "");
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, ChunkingSendsBdatWithoutWaiting) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "S: 1\r\n\r\n.dot\r\n");
  h.host.add("a@x.test", {"c@y.test"}, "S: 2\r\n\r\nx\r\n");
  std::string sent = h.greet(kEhloChunk);
  EXPECT_TRUE(h.host.last_bdat);
  // With the default window both transactions and QUIT go out at once.
  EXPECT_EQ(sent,
            "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nBDAT 14 LAST\r\nS: 1\r\n\r\n.dot\r\n"
            "MAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\nBDAT 11 LAST\r\nS: 2\r\n\r\nx\r\n"
            "QUIT\r\n");
  h.feed(
      "250 ok\r\n250 ok\r\n250 done1\r\n250 ok\r\n550 5.1.1 unknown\r\n554 no valid rcpt\r\n221 "
      "bye\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 2u);
  EXPECT_EQ(h.host.find("b@y.test")->verdict, Verdict::kSent);
  EXPECT_EQ(h.host.find("c@y.test")->verdict, Verdict::kFailed);
  EXPECT_EQ(h.host.find("c@y.test")->code, 550);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, MixedRcptRepliesInOnePipelinedBatch) {
  Harness h(config());
  h.host.add("a@x.test", {"ok@y.test", "later@y.test", "bad@y.test"}, "m\r\n");
  std::string sent = h.greet(kEhloPipe);
  EXPECT_EQ(sent,
            "MAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<ok@y.test>\r\nRCPT TO:<later@y.test>\r\n"
            "RCPT TO:<bad@y.test>\r\nDATA\r\n");
  h.feed("250 ok\r\n250 ok\r\n451 4.3.0 try later\r\n550 5.1.1 no such user\r\n354 go\r\n");
  // Refused recipients have their outcome before the message is sent.
  EXPECT_EQ(h.host.find("later@y.test")->verdict, Verdict::kDeferred);
  EXPECT_EQ(h.host.find("bad@y.test")->verdict, Verdict::kFailed);
  EXPECT_EQ(h.host.find("ok@y.test"), nullptr);
  EXPECT_EQ(h.take(), "m\r\n.\r\nQUIT\r\n");
  h.feed("250 queued\r\n221 bye\r\n");
  EXPECT_EQ(h.host.find("ok@y.test")->verdict, Verdict::kSent);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, AllRcptsRejectedButDataAccepted) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n550 no\r\n354 go\r\n");
  // An empty message keeps the dialogue in step; the body is not sent to nobody.
  EXPECT_EQ(h.take(), ".\r\nQUIT\r\n");
  h.feed("554 no valid recipients\r\n221 bye\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kFailed);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, DataRefusedAfterAcceptedRcptResetsTheTransaction) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.host.add("a@x.test", {"c@y.test"}, "n\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n451 4.3.0 not now\r\n");
  EXPECT_EQ(h.host.find("b@y.test")->verdict, Verdict::kDeferred);
  EXPECT_EQ(h.take(), "RSET\r\nMAIL FROM:<a@x.test> SIZE=3\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
}

TEST(Session, Reply421MidBatchDefersEverythingAndCloses) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test", "c@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n421 4.7.0 too busy\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 2u);
  for (auto& o : h.host.outcomes) {
    EXPECT_EQ(o.verdict, Verdict::kDeferred);
    EXPECT_EQ(o.code, 421);
  }
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_NE(h.session.end_reason().find("421"), std::string::npos);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, ConnectionLostBeforeTheFinalReplyDefers) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.take();
  h.session.on_closed("connection reset by peer", h.now);
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_NE(h.host.outcomes[0].text.find("before the final reply"), std::string::npos);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, ConnectionLostAfterTheFinalReplyKeepsSent) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.host.done_when_empty = false;
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.feed("250 queued\r\n");
  h.session.on_closed("connection closed by peer", h.now);
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kSent);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, WithoutPipeliningOneCommandAtATime) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test", "c@y.test"}, "m\r\n");
  EXPECT_EQ(h.greet(kEhloPlain), "MAIL FROM:<a@x.test>\r\n");
  h.feed("250 ok\r\n");
  EXPECT_EQ(h.take(), "RCPT TO:<b@y.test>\r\n");
  h.feed("550 no\r\n");
  EXPECT_EQ(h.take(), "RCPT TO:<c@y.test>\r\n");
  h.feed("250 ok\r\n");
  EXPECT_EQ(h.take(), "DATA\r\n");
  h.feed("354 go\r\n");
  EXPECT_EQ(h.take(), "m\r\n.\r\n");
  h.feed("250 ok\r\n");
  EXPECT_EQ(h.take(), "QUIT\r\n");
  // The 250 counts once the next reply shows it was the message's own (Session::held_).
  EXPECT_EQ(h.host.find("c@y.test"), nullptr);
  h.feed("221 bye\r\n");
  EXPECT_EQ(h.host.find("b@y.test")->verdict, Verdict::kFailed);
  ASSERT_NE(h.host.find("c@y.test"), nullptr);
  EXPECT_EQ(h.host.find("c@y.test")->verdict, Verdict::kSent);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, DsnParametersOnlyWithAnEnvelopeIdAndTheDsnExtension) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.host.last().envid = "0123456789abcdef.7";
  EXPECT_EQ(h.greet("250-mx.test\r\n250 DSN\r\n"),
            "MAIL FROM:<a@x.test> RET=HDRS ENVID=0123456789abcdef.7\r\n");
  Harness h2(config());  // a server without DSN: the parameters would be a syntax error
  h2.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h2.host.last().envid = "0123456789abcdef.7";
  EXPECT_EQ(h2.greet(kEhloPlain), "MAIL FROM:<a@x.test>\r\n");
}

TEST(Session, WithoutPipeliningAllRcptsRefusedSendsRsetNotData) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPlain);
  h.feed("250 ok\r\n");
  h.take();
  h.feed("550 no\r\n");
  EXPECT_EQ(h.take(), "RSET\r\n");
  h.feed("250 ok\r\n");
  EXPECT_EQ(h.take(), "QUIT\r\n");
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, HeloFallbackWhenEhloIsUnknown) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.connect();
  h.feed("220 old\r\n");
  h.take();
  h.feed("502 5.5.2 command not recognised\r\n");
  EXPECT_EQ(h.take(), "HELO client.test\r\n");
  h.feed("250 old\r\n");
  EXPECT_EQ(h.take(), "MAIL FROM:<a@x.test>\r\n");
  EXPECT_FALSE(h.session.caps().esmtp);
}

TEST(Session, GreetingRefusedClosesWithoutTakingWork) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.connect();
  h.feed("554 5.7.1 go away\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.session.end_code(), 554);
  EXPECT_NE(h.session.end_reason().find("greeting"), std::string::npos);
  EXPECT_EQ(h.host.handed_out, 0u);
  EXPECT_FALSE(h.session.ready_reached());
}

TEST(Session, Greeting421) {
  Harness h(config());
  h.connect();
  h.feed("421 busy\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.session.end_code(), 421);
}

TEST(Session, MessageOverTheServerSizeLimitFailsLocally) {
  Harness h(config());
  h.host.add("a@x.test", {"big@y.test"}, std::string(2000, 'x') + "\r\n");
  h.host.add("a@x.test", {"small@y.test"}, "m\r\n");
  std::string sent = h.greet(kEhloPipe);  // SIZE 1000
  EXPECT_EQ(h.host.find("big@y.test")->verdict, Verdict::kFailed);
  EXPECT_NE(h.host.find("big@y.test")->text.find("SIZE limit"), std::string::npos);
  EXPECT_EQ(sent.find("big@y.test"), std::string::npos);
  EXPECT_NE(sent.find("RCPT TO:<small@y.test>"), std::string::npos);
}

TEST(Session, NonAsciiAddressNeedsSmtputf8) {
  Harness h(config());
  h.host.add("a@x.test", {"j\xc3\xb6rg@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  ASSERT_EQ(h.host.outcomes.size(), 0u);  // the host did not mark it: no SMTPUTF8 check
}

TEST(Session, TimeoutDefersOpenRecipients) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  ASSERT_NE(h.session.deadline_ms(), 0u);
  EXPECT_EQ(h.session.deadline_ms(), h.now + h.cfg.timeouts.mail);
  h.session.on_timer(h.now + 10);  // too early: nothing happens
  EXPECT_FALSE(h.session.wants_close());
  h.session.on_timer(h.session.deadline_ms());
  EXPECT_TRUE(h.session.wants_close());
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_NE(h.host.outcomes[0].text.find("timeout"), std::string::npos);
}

TEST(Session, MaxMessagesPerConnectionThenQuit) {
  SessionConfig c = config();
  c.max_messages = 2;
  Harness h(c);
  for (int i = 0; i < 3; ++i)
    h.host.add("a@x.test", {"r" + std::to_string(i) + "@y.test"}, "m\r\n");
  std::string sent = h.greet(kEhloChunk);
  EXPECT_NE(sent.find("r1@y.test"), std::string::npos);
  EXPECT_EQ(sent.find("r2@y.test"), std::string::npos);
  EXPECT_EQ(sent.substr(sent.size() - 6), "QUIT\r\n");
  EXPECT_EQ(h.host.handed_out, 2u);
}

TEST(Session, Mail503IsDeferredNotFailed) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloChunk);
  h.feed("503 5.5.1 nested MAIL\r\n503 no MAIL\r\n554 no rcpt\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_TRUE(h.host.accounted());
}

TEST(Session, GarbageFromServerClosesAndDefers) {
  Harness h(config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\nHELLO THERE\r\n");
  EXPECT_TRUE(h.session.wants_close());
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_NE(h.session.end_reason().find("protocol error"), std::string::npos);
}

TEST(Session, WholeDialogueSplitAtEveryByteGivesTheSameOutcomes) {
  // The server's turns: each is what it sends after reading the client's last output (a
  // reply cannot come before its command; the session treats that as a protocol error).
  const std::vector<std::string> turns = {
      "220 mx\r\n", "250-mx\r\n250 PIPELINING\r\n", "250 ok\r\n250 ok\r\n451 later\r\n354 go\r\n",
      "250 queued\r\n250 ok\r\n550 no\r\n354 go\r\n", "554 nobody\r\n221 bye\r\n"};
  for (size_t step = 1; step <= 7; ++step) {
    Harness h(config());
    h.host.add("a@x.test", {"b@y.test", "c@y.test"}, "m\r\n");
    h.host.add("a@x.test", {"d@y.test"}, "n\r\n");
    h.connect();
    for (const std::string& server : turns) {
      for (size_t i = 0; i < server.size(); i += step) {
        h.feed(std::string_view(server).substr(i, step));
      }
    }
    ASSERT_EQ(h.host.outcomes.size(), 3u) << "step " << step;
    EXPECT_EQ(h.host.find("b@y.test")->verdict, Verdict::kSent);
    EXPECT_EQ(h.host.find("c@y.test")->verdict, Verdict::kDeferred);
    EXPECT_EQ(h.host.find("d@y.test")->verdict, Verdict::kFailed);
    EXPECT_TRUE(h.session.wants_close());
    EXPECT_TRUE(h.host.accounted());
  }
}

// Random server behaviour: whatever it does, every recipient handed to the session comes
// back with exactly one outcome (STYLE.md §2).
TEST(Session, EveryRecipientIsAccountedForUnderRandomFaults) {
  const int codes[] = {250, 250, 250, 354, 421, 451, 503, 550, 554, 220};
  for (uint32_t seed = 0; seed < 2000; ++seed) {
    std::mt19937 rng(seed);
    SessionConfig c = config();
    c.max_messages = 1 + rng() % 5;
    c.use_chunking = rng() % 2;
    c.use_pipelining = rng() % 4 != 0;
    Harness h(c);
    int ntx = 1 + static_cast<int>(rng() % 6);
    for (int t = 0; t < ntx; ++t) {
      std::vector<std::string> r;
      int nr = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < nr; ++k)
        r.push_back("r" + std::to_string(t) + "_" + std::to_string(k) + "@y");
      h.host.add("a@x", r, "m\r\n");
    }
    h.connect();
    h.feed("220 mx\r\n");
    h.feed(rng() % 2 ? "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n" : "250 mx\r\n");
    for (int step = 0; step < 60 && !h.session.wants_close(); ++step) {
      uint32_t what = rng() % 20;
      if (what == 0) {
        h.session.on_closed("reset", h.now);
      } else if (what == 1) {
        h.now = h.session.deadline_ms() ? h.session.deadline_ms() : h.now + 1;
        h.session.on_timer(h.now);
      } else if (what == 2) {
        h.feed("garbage\r\n");
      } else {
        std::string rep = std::to_string(codes[rng() % std::size(codes)]) + " x\r\n";
        h.feed(rep);
      }
      h.take();
    }
    if (!h.session.wants_close()) h.session.on_closed("end of test", h.now);
    ASSERT_TRUE(h.host.accounted()) << "seed " << seed;
  }
}

TEST(Session, VerdictForCodes) {
  EXPECT_EQ(verdict_for(250), Verdict::kSent);
  EXPECT_EQ(verdict_for(451), Verdict::kDeferred);
  EXPECT_EQ(verdict_for(421), Verdict::kDeferred);
  EXPECT_EQ(verdict_for(550), Verdict::kFailed);
  EXPECT_EQ(verdict_for(554), Verdict::kFailed);
  EXPECT_EQ(verdict_for(503), Verdict::kDeferred);
}

}  // namespace
}  // namespace sb
