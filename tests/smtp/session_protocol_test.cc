// The session against servers that answer wrongly: replies that cannot answer their command,
// replies out of step, sender refusals, echoed secrets, silent STARTTLS/AUTH, TLS at once.
#include <gtest/gtest.h>

#include "fakes/fake_session_host.h"
#include "smtp/session.h"

namespace sb {
namespace {

using testing::FakeSessionHost;

const char* kEhloPipe = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";
const char* kEhloPipeEnh =
    "250-mx.test\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 8BITMIME\r\n";
const char* kEhloChunkEnh =
    "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250 8BITMIME\r\n";

struct Harness {
  explicit Harness(SessionConfig c = config()) : cfg(std::move(c)), session(cfg, host, out) {
    session.keep_transcript(true);
  }
  static SessionConfig config() {
    SessionConfig c;
    c.helo = "client.test";
    return c;
  }
  std::string take() {
    std::string s = out.flatten();
    out.clear();
    return s;
  }
  void feed(std::string_view s) { session.on_data(s, now); }
  std::string greet(const char* ehlo) {
    session.on_connected(now);
    feed("220 mx.test ESMTP\r\n");
    EXPECT_EQ(take(), "EHLO client.test\r\n");
    feed(ehlo);
    return take();
  }
  void expect_all(Verdict v) {
    for (auto& o : host.outcomes) EXPECT_EQ(o.verdict, v) << o.rcpt << " " << o.text;
  }
  SessionConfig cfg;
  FakeSessionHost host;
  Outbox out;
  Session session;
  uint64_t now = 1000;
};

bool has(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

// --- each command gets only its own replies ----------------------------------------------

TEST(SessionProtocol, DataAnswered250IsAProtocolErrorNotSent) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test", "c@y.test"}, "body\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n250 ok\r\n");
  h.feed("250 ok\r\n");  // the server acts as if the message were accepted
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.take().find("body"), std::string::npos) << "no body was ever sent";
  ASSERT_EQ(h.host.outcomes.size(), 2u);
  h.expect_all(Verdict::kDeferred);
  EXPECT_EQ(h.host.outcomes[0].code, 0) << "a deferred recipient shows no 250";
  EXPECT_TRUE(has(h.session.end_reason(), "cannot answer DATA")) << h.session.end_reason();
  EXPECT_FALSE(h.session.fatal());
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, BdatLastAnswered354IsAProtocolErrorNotSent) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "body\r\n");
  EXPECT_TRUE(has(h.greet(kEhloChunkEnh), "BDAT 6 LAST\r\nbody\r\n"));
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n");
  EXPECT_TRUE(h.session.wants_close());
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_TRUE(has(h.session.end_reason(), "cannot answer BDAT")) << h.session.end_reason();
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, EndOfDataAnswered354IsAProtocolError) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.take();
  h.feed("354 go again\r\n");
  EXPECT_TRUE(h.session.wants_close());
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
}

TEST(SessionProtocol, MailAnswered354IsAProtocolError) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("354 go\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(has(h.session.end_reason(), "cannot answer MAIL"));
  h.expect_all(Verdict::kDeferred);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, RcptAccepts251And252ButNot220) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test", "c@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n251 will forward\r\n252 cannot verify\r\n354 go\r\n");
  EXPECT_EQ(h.take(), "m\r\n.\r\nQUIT\r\n");
  h.feed("250 queued\r\n221 bye\r\n");
  ASSERT_EQ(h.host.outcomes.size(), 2u);
  h.expect_all(Verdict::kSent);

  Harness k;
  k.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  k.greet(kEhloPipe);
  k.feed("250 ok\r\n220 hello again\r\n");
  EXPECT_TRUE(k.session.wants_close());
  k.expect_all(Verdict::kDeferred);
}

TEST(SessionProtocol, EhloAnswered354IsAProtocolError) {
  Harness h;
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.take();
  h.feed("354 what\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_FALSE(h.session.ready_reached());
}

// --- replies out of step ------------------------------------------------------------------

TEST(SessionProtocol, ReplyBeforeEhloIsAProtocolError) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.session.on_connected(h.now);
  // The EHLO reply in the same read as the greeting: sent before EHLO could be read.
  h.feed("220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(has(h.session.end_reason(), "before it could have read our EHLO"))
      << h.session.end_reason();
  EXPECT_EQ(h.host.handed_out, 0u);
}

TEST(SessionProtocol, MoreRepliesThanCommandsWithoutPipelining) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  EXPECT_EQ(h.greet("250 mx\r\n"), "MAIL FROM:<a@x.test>\r\n");
  h.feed("250 ok\r\n250 ok\r\n");  // two replies to one command
  EXPECT_TRUE(h.session.wants_close());
  h.expect_all(Verdict::kDeferred);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, ReplyWhileNothingIsOutstanding) {
  Harness h;
  h.host.done_when_empty = false;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.feed("250 queued\r\n");
  h.now = h.session.deadline_ms();
  h.session.on_timer(h.now);  // idle, no enhanced codes: the held reply counts after a while
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kSent);
  h.feed("250 surprise\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(has(h.session.end_reason(), "while no reply was expected: \"250 surprise\""))
      << h.session.end_reason();
}

TEST(SessionProtocol, BytesWhileNothingIsOutstanding) {
  Harness h;
  h.host.done_when_empty = false;
  h.greet(kEhloPipe);
  EXPECT_FALSE(h.session.wants_close());
  h.feed("2");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(has(h.session.end_reason(), "while no reply was expected"));
}

TEST(SessionProtocol, SpuriousReplyAfterAMessageDoesNotMakeA554Sent) {
  // The case with DATA: message 1 accepted, one stray 250, message 2 refused 554.
  Harness h;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.take();
  h.feed("250 queued\r\n250 stray\r\n");
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.feed("554 rejected\r\n221 bye\r\n");
  const auto* two = h.host.find("two@y.test");
  ASSERT_NE(two, nullptr);
  EXPECT_NE(two->verdict, Verdict::kSent);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, SpuriousReplyAfterABdatMessageIsCaughtByEnhancedCodes) {
  Harness h;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.greet(kEhloChunkEnh);
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued\r\n250 2.0.0 stray\r\n");
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n554 5.7.1 rejected\r\n221 2.0.0 bye\r\n");
  const auto* two = h.host.find("two@y.test");
  ASSERT_NE(two, nullptr);
  EXPECT_NE(two->verdict, Verdict::kSent);
  EXPECT_TRUE(has(h.session.end_reason(), "cannot answer BDAT")) << h.session.end_reason();
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, AddressingCodeCannotEndAMessage) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipeEnh);
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  h.feed("250 2.1.5 ok\r\n");
  EXPECT_TRUE(h.session.wants_close());
  h.expect_all(Verdict::kDeferred);

  // Without ENHANCEDSTATUSCODES announced the text is just text.
  Harness k;
  k.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  k.greet(kEhloPipe);
  k.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  k.feed("250 2.1.5 ok\r\n221 bye\r\n");
  k.expect_all(Verdict::kSent);
}

TEST(SessionProtocol, ContentCodeCannotAnswerRcpt) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipeEnh);
  h.feed("250 2.1.0 ok\r\n250 2.6.0 queued\r\n");
  EXPECT_TRUE(h.session.wants_close());
  h.expect_all(Verdict::kDeferred);
}

TEST(SessionProtocol, ChunkingWithoutEnhancedCodesUsesData) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  std::string sent = h.greet("250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  EXPECT_FALSE(h.host.last_bdat);
  EXPECT_EQ(sent, "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
}

TEST(SessionProtocol, HeldFinalReplyCountsOnProofIdleNoopOrQuiet) {
  Harness h;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.feed("250 queued\r\n250 ok\r\n250 ok\r\n");
  EXPECT_EQ(h.host.find("one@y.test"), nullptr) << "held until a reply proves it";
  h.feed("354 go\r\n");  // only DATA gets 354: the replies were in step
  ASSERT_NE(h.host.find("one@y.test"), nullptr);
  EXPECT_EQ(h.host.find("one@y.test")->verdict, Verdict::kSent);

  // Idle (the host has nothing now): a NOOP, whose 250 proves the held reply.
  Harness k;
  k.host.done_when_empty = false;
  k.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  k.greet(kEhloPipeEnh);
  k.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  k.take();
  k.feed("250 2.0.0 queued\r\n");
  EXPECT_TRUE(k.host.outcomes.empty());
  EXPECT_EQ(k.take(), "NOOP\r\n");
  k.host.add("a@x.test", {"c@y.test"}, "n\r\n");
  k.session.poke(k.now);
  EXPECT_EQ(k.take(), "") << "nothing follows a NOOP before its reply (RFC 2920)";
  k.feed("250 2.0.0 ok\r\n");
  ASSERT_EQ(k.host.outcomes.size(), 1u);
  EXPECT_EQ(k.host.outcomes[0].verdict, Verdict::kSent);
  EXPECT_TRUE(has(k.take(), "RCPT TO:<c@y.test>"));
  EXPECT_FALSE(k.session.wants_close());

  // A stray 250 before the real 554: the 554 lands on the NOOP.
  Harness x;
  x.host.done_when_empty = false;
  x.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  x.greet(kEhloPipeEnh);
  x.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  x.feed("250 2.0.0 stray\r\n");
  x.feed("554 5.7.1 rejected\r\n");
  ASSERT_EQ(x.host.outcomes.size(), 1u);
  EXPECT_EQ(x.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_TRUE(x.host.accounted());
}

TEST(SessionProtocol, NoopNotRecognizedFallsBackToAQuietWhile) {
  // A server (or a filtering proxy) that answers NOOP "command not recognized": that is an
  // answer, not a desync, so the held message is not deferred (and sent again later); it
  // counts after the quiet while, and later idles skip the NOOP.
  Harness k;
  k.host.done_when_empty = false;
  k.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  k.greet(kEhloPipeEnh);
  k.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  k.take();
  k.feed("250 2.0.0 queued\r\n");
  EXPECT_EQ(k.take(), "NOOP\r\n");
  k.feed("502 5.5.2 Error: command not recognized\r\n");
  EXPECT_FALSE(k.session.wants_close());
  EXPECT_TRUE(k.host.outcomes.empty()) << "not proven yet";
  ASSERT_NE(k.session.deadline_ms(), 0u);
  k.session.on_timer(k.session.deadline_ms());
  ASSERT_EQ(k.host.outcomes.size(), 1u);
  EXPECT_EQ(k.host.outcomes[0].verdict, Verdict::kSent);
  // The next idle does not ask again.
  k.host.add("a@x.test", {"c@y.test"}, "n\r\n");
  k.session.poke(k.now);
  k.take();
  k.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  k.take();
  k.feed("250 2.0.0 queued\r\n");
  EXPECT_EQ(k.take(), "");
  k.session.on_timer(k.session.deadline_ms());
  ASSERT_EQ(k.host.outcomes.size(), 2u);
  EXPECT_EQ(k.host.outcomes[1].verdict, Verdict::kSent);
  EXPECT_TRUE(k.host.accounted());

  // Any other refusal of NOOP is still another command's reply: a desync.
  Harness x;
  x.host.done_when_empty = false;
  x.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  x.greet(kEhloPipeEnh);
  x.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  x.feed("250 2.0.0 queued\r\n");
  x.feed("554 5.7.1 rejected\r\n");
  ASSERT_EQ(x.host.outcomes.size(), 1u);
  EXPECT_EQ(x.host.outcomes[0].verdict, Verdict::kDeferred);
}

TEST(SessionProtocol, Reply421AfterAnAcceptedMessageKeepsItSent) {
  // A common pattern (a per-connection limit): the message is accepted, the next MAIL gets
  // 421. Nothing contradicts the 250, so it stands.
  Harness h;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  h.feed("250 queued\r\n421 4.7.0 too many messages\r\n");
  EXPECT_EQ(h.host.find("one@y.test")->verdict, Verdict::kSent);
  EXPECT_EQ(h.host.find("two@y.test")->verdict, Verdict::kDeferred);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, ClosedInsteadOfAnsweringQuitKeepsTheHeldReply) {
  // Found by review: this path returned before settling the held transaction, which then
  // had no outcome at all.
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.greet(kEhloPipe);
  h.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  EXPECT_EQ(h.take(), "m\r\n.\r\nQUIT\r\n");
  h.feed("250 queued\r\n");
  h.session.on_closed("connection closed by peer", h.now);
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kSent);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, SettlingAHeldReplyNeverWritesBetweenA354AndItsBody) {
  // The host may poke the session from txn_done; the held reply of message 1 is settled by
  // the 354 of message 2, and message 3's commands must follow message 2's body, not cut in.
  Harness h;
  h.host.poke_on_done = &h.session;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.host.add("a@x.test", {"three@y.test"}, "m3\r\n");
  h.greet(kEhloPipeEnh);
  h.feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n");
  h.take();
  h.feed("250 2.0.0 queued\r\n250 ok\r\n250 ok\r\n");  // no enhanced code on MAIL: held
  EXPECT_EQ(h.host.find("one@y.test"), nullptr);
  h.feed("354 go\r\n");
  EXPECT_EQ(h.take(), "m2\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<three@y.test>\r\nDATA\r\n");
  ASSERT_NE(h.host.find("one@y.test"), nullptr);
  EXPECT_EQ(h.host.find("one@y.test")->verdict, Verdict::kSent);
}

TEST(SessionProtocol, SettlingOnAMailReplyWithoutPipeliningKeepsOneCommandAtATime) {
  Harness h;
  h.host.poke_on_done = &h.session;
  h.host.add("a@x.test", {"one@y.test"}, "m1\r\n");
  h.host.add("a@x.test", {"two@y.test"}, "m2\r\n");
  h.host.add("a@x.test", {"three@y.test"}, "m3\r\n");
  EXPECT_EQ(h.greet("250-mx\r\n250 ENHANCEDSTATUSCODES\r\n"), "MAIL FROM:<a@x.test>\r\n");
  h.feed("250 2.1.0 ok\r\n");
  h.take();
  h.feed("250 2.1.5 ok\r\n");
  h.take();
  h.feed("354 go\r\n");
  EXPECT_EQ(h.take(), "m1\r\n.\r\n");
  h.feed("250 2.0.0 queued\r\n");
  EXPECT_EQ(h.take(), "MAIL FROM:<a@x.test>\r\n");
  h.feed("250 2.1.0 ok\r\n");  // proves message 1's reply; settling it pokes the session
  EXPECT_EQ(h.take(), "RCPT TO:<two@y.test>\r\n");
  EXPECT_EQ(h.host.find("one@y.test")->verdict, Verdict::kSent);
}

// --- classification -----------------------------------------------------------------------

TEST(SessionProtocol, TooManyRecipients552MidBatchIsDeferred) {
  Harness h;
  h.host.add("a@x.test", {"r1@y.test", "r2@y.test", "r3@y.test"}, "m\r\n");
  h.greet(kEhloPipeEnh);
  h.feed(
      "250 2.1.0 ok\r\n250 2.1.5 ok\r\n552 5.5.3 too many recipients\r\n"
      "552 5.5.3 too many recipients\r\n354 go\r\n");
  h.feed("250 2.0.0 queued\r\n221 bye\r\n");
  EXPECT_EQ(h.host.find("r1@y.test")->verdict, Verdict::kSent);
  EXPECT_EQ(h.host.find("r2@y.test")->verdict, Verdict::kDeferred);
  EXPECT_EQ(h.host.find("r3@y.test")->verdict, Verdict::kDeferred);
  EXPECT_EQ(h.host.find("r3@y.test")->code, 552);
}

TEST(SessionProtocol, SenderRefused550StopsTheRunAndLeavesRecipientsUnsent) {
  Harness h;
  h.host.add("bad@x.test", {"b@y.test", "c@y.test"}, "m\r\n");
  h.host.add("bad@x.test", {"d@y.test"}, "m\r\n");
  h.greet(kEhloPipeEnh);
  h.feed("550 5.7.1 Sender address rejected: not owned by user\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(h.session.fatal());
  EXPECT_EQ(h.session.fatal_cause(), FatalCause::kSender);
  EXPECT_EQ(h.session.end_code(), 550);
  const std::string& why = h.session.end_reason();
  EXPECT_TRUE(has(why, "refused the envelope sender <bad@x.test>")) << why;
  EXPECT_TRUE(has(why, "550 5.7.1 Sender address rejected")) << why;
  // The advice ("check --from") is the CLI's: tests/cli/session_advice_test.cc.
  EXPECT_EQ(h.session.end().cause, EndCause::kSenderRefused);
  ASSERT_EQ(h.host.outcomes.size(), 2u);  // the second transaction was never handed out
  h.expect_all(Verdict::kDeferred);
  EXPECT_EQ(h.host.outcomes[0].code, 550);
  EXPECT_EQ(h.host.handed_out, 1u);
  EXPECT_TRUE(h.host.accounted());
}

TEST(SessionProtocol, MailRefusalsAboutTheMessageOrTemporaryDoNotStopTheRun) {
  struct Case {
    const char* reply;
    Verdict v;
  } cases[] = {{"552 5.3.4 message too big\r\n", Verdict::kFailed},
               {"554 5.6.7 non-ASCII addresses not permitted\r\n", Verdict::kFailed},
               {"451 4.3.0 try later\r\n", Verdict::kDeferred},
               // Provider quota replies at MAIL: the engine pauses on them (throttle/pushback).
               {"554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException\r\n",
                Verdict::kFailed},
               {"550 5.4.5 Daily user sending limit exceeded\r\n", Verdict::kFailed}};
  for (const Case& c : cases) {
    Harness h;
    h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
    h.greet(kEhloPipeEnh);
    h.feed(c.reply);
    EXPECT_FALSE(h.session.fatal()) << c.reply;
    ASSERT_EQ(h.host.outcomes.size(), 1u) << c.reply;
    EXPECT_EQ(h.host.outcomes[0].verdict, c.v) << c.reply;
  }
}

// --- per-kind tables: timeouts waiting for STARTTLS and AUTH ------------------------------

class NoCredentials : public Credentials {
 public:
  explicit NoCredentials(std::string secret) : secret_(std::move(secret)) {}
  const std::string& user() const override { return user_; }
  std::string secret() const override { return secret_; }
  bool is_oauth() const override { return false; }
  bool refresh(std::string*) override { return false; }

 private:
  std::string user_ = "user@example.test";
  std::string secret_;
};

TEST(SessionProtocol, TimeoutWaitingForStartTlsNamesIt) {
  SessionConfig c = Harness::config();
  c.tls = TlsMode::kStartTls;
  Harness h(c);
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.take();
  h.feed("250-mx\r\n250 STARTTLS\r\n");
  EXPECT_EQ(h.take(), "STARTTLS\r\n");
  h.session.on_timer(h.session.deadline_ms());
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.session.end_reason(), "timeout after 300 s waiting for the reply to STARTTLS");
  EXPECT_STREQ(h.session.end_step(), "tls");
}

TEST(SessionProtocol, TimeoutWaitingForAuthNamesIt) {
  NoCredentials cr("pw-123456");
  SessionConfig c = Harness::config();
  c.credentials = &cr;
  c.allow_plaintext_auth = true;
  Harness h(c);
  h.greet("250-mx\r\n250 AUTH PLAIN\r\n");
  h.session.on_timer(h.session.deadline_ms());
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_EQ(h.session.end_reason(), "timeout after 300 s waiting for the reply to AUTH");
  EXPECT_STREQ(h.session.end_step(), "auth");
}

// --- secrets echoed by the server ---------------------------------------------------------

std::string b64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(k[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (i + 1 < in.size()) v |= uint8_t(in[i + 1]) << 8;
    out.push_back(k[v >> 18]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? k[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

TEST(SessionProtocol, SecretEchoedInAuthRefusalIsRedacted) {
  const std::string secret = "Tr0ub4dor&3-horse";
  const std::string user = "user@example.test";
  const std::string payload = b64(std::string(1, '\0') + user + '\0' + secret);
  const std::string echoes[] = {
      "535 5.7.8 authentication failed for " + payload + "\r\n",
      "535 5.7.8 bad password " + secret + " for " + user + "\r\n",
      "535 5.7.8 decoded: " + std::string(1, '\0') + user + '\0' + secret + "\r\n",
      "535 5.7.8 got [" + b64(secret) + "]\r\n",
      "535 5.7.8 got [" + b64("x" + secret + "yz") + "]\r\n",  // another alignment
      "535-5.7.8 one\r\n535 5.7.8 two " + payload + "\r\n",
  };
  for (const std::string& echo : echoes) {
    NoCredentials cr(secret);
    SessionConfig c = Harness::config();
    c.credentials = &cr;
    c.allow_plaintext_auth = true;
    Harness h(c);
    EXPECT_EQ(h.greet("250-mx\r\n250 AUTH PLAIN LOGIN\r\n"), "AUTH PLAIN " + payload + "\r\n");
    h.feed(echo);
    EXPECT_TRUE(h.session.fatal());
    EXPECT_EQ(h.session.fatal_cause(), FatalCause::kAuth);
    for (const std::string* where : {&h.session.end_reason(), &h.session.transcript()}) {
      EXPECT_FALSE(has(*where, secret)) << *where;
      EXPECT_FALSE(has(*where, payload)) << *where;
      EXPECT_FALSE(has(*where, b64(secret).substr(0, 12))) << *where;
      EXPECT_TRUE(has(*where, "<redacted>")) << *where;
    }
  }
}

TEST(SessionProtocol, SecretEchoedDuringAuthLoginIsRedacted) {
  const std::string secret = "another-Secret-42";
  NoCredentials cr(secret);
  SessionConfig c = Harness::config();
  c.credentials = &cr;
  c.allow_plaintext_auth = true;
  c.auth = AuthMech::kLogin;
  Harness h(c);
  EXPECT_EQ(h.greet("250-mx\r\n250 AUTH LOGIN\r\n"), "AUTH LOGIN\r\n");
  h.feed("334 VXNlcm5hbWU6\r\n");
  h.take();
  h.feed("334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(h.take(), b64(secret) + "\r\n");
  h.feed("535 5.7.8 you sent " + b64(secret) + " which is " + secret + "\r\n");
  EXPECT_FALSE(has(h.session.end_reason(), secret));
  EXPECT_FALSE(has(h.session.end_reason(), b64(secret)));
  EXPECT_FALSE(has(h.session.transcript(), secret));
  EXPECT_FALSE(has(h.session.transcript(), b64(secret)));
}

// --- SMTPUTF8 and 8BITMIME ----------------------------------------------------------------

TEST(SessionProtocol, Smtputf8OnMailFromWhenOfferedFailedLocallyWhenNot) {
  Harness h;
  h.host.add("a@x.test", {"j\xc3\xb6rg@y.test"}, "m\r\n");
  h.host.last().smtputf8 = true;
  EXPECT_EQ(h.greet("250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
            "MAIL FROM:<a@x.test> SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@y.test>\r\nDATA\r\n");

  Harness k;
  k.host.add("a@x.test", {"j\xc3\xb6rg@y.test"}, "m\r\n");
  k.host.last().smtputf8 = true;
  k.host.add("a@x.test", {"plain@y.test"}, "m\r\n");
  std::string sent = k.greet(kEhloPipe);
  EXPECT_FALSE(has(sent, "j\xc3\xb6rg")) << "nothing of it goes to the server";
  EXPECT_TRUE(has(sent, "RCPT TO:<plain@y.test>"));
  const auto* o = k.host.find("j\xc3\xb6rg@y.test");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->verdict, Verdict::kFailed);
  EXPECT_TRUE(has(o->text, "SMTPUTF8")) << o->text;
}

TEST(SessionProtocol, EightBitBodyNeeds8BitMime) {
  Harness h;
  h.host.add("a@x.test", {"b@y.test"}, "caf\xc3\xa9\r\n");
  h.host.last().eight_bit = true;
  EXPECT_EQ(h.greet(kEhloPipe),
            "MAIL FROM:<a@x.test> BODY=8BITMIME\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");

  Harness k;
  k.host.add("a@x.test", {"b@y.test"}, "caf\xc3\xa9\r\n");
  k.host.last().eight_bit = true;
  std::string sent = k.greet("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_FALSE(has(sent, "MAIL FROM"));
  ASSERT_EQ(k.host.outcomes.size(), 1u);
  EXPECT_EQ(k.host.outcomes[0].verdict, Verdict::kFailed);
  EXPECT_TRUE(has(k.host.outcomes[0].text, "8BITMIME")) << k.host.outcomes[0].text;
  EXPECT_TRUE(k.host.accounted());
}

// --- the wrong TLS mode ------------------------------------------------------------------

TEST(SessionProtocol, TlsRecordInsteadOfAGreeting) {
  for (size_t step : {1, 2, 7}) {
    SessionConfig c = Harness::config();
    c.tls = TlsMode::kStartTls;
    Harness h(c);
    h.session.on_connected(h.now);
    const std::string alert("\x15\x03\x03\x00\x02\x02\x32", 7);
    for (size_t i = 0; i < alert.size() && !h.session.wants_close(); i += step) {
      h.feed(std::string_view(alert).substr(i, step));
    }
    EXPECT_TRUE(h.session.wants_close());
    EXPECT_EQ(h.session.fatal_cause(), FatalCause::kTls);
    // The advice ("use --tls implicit") is the CLI's: tests/cli/session_advice_test.cc.
    EXPECT_EQ(h.session.end().cause, EndCause::kTlsAtOnce);
    EXPECT_TRUE(has(h.session.end_reason(), "speaks TLS at once")) << h.session.end_reason();
  }
}

TEST(SessionProtocol, NoGreetingOnPort465SuggestsImplicitTls) {
  ConnInfo info;
  info.peer = "127.0.0.1:465";
  info.port = 465;
  Harness h;
  h.session.set_conn_info(&info);
  h.session.on_connected(h.now);
  h.session.on_timer(h.session.deadline_ms());
  // The advice ("use --tls implicit") is the CLI's: tests/cli/session_advice_test.cc.
  EXPECT_TRUE(h.session.end().implicit_tls_port);
  EXPECT_TRUE(has(h.session.end_reason(), "port 465")) << h.session.end_reason();

  ConnInfo other;
  other.peer = "127.0.0.1:2465";
  other.port = 2465;
  Harness k;
  k.session.set_conn_info(&other);
  k.session.on_connected(k.now);
  k.session.on_timer(k.session.deadline_ms());
  EXPECT_FALSE(k.session.end().implicit_tls_port);
  EXPECT_FALSE(has(k.session.end_reason(), "port 465")) << k.session.end_reason();
}

}  // namespace
}  // namespace sb
