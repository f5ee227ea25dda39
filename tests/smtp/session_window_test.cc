// The pipeline window's cap on body octets in flight (SessionConfig::max_bytes_in_flight).
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

#include "fakes/fake_session_host.h"
#include "smtp/session.h"

namespace sb {
namespace {

using testing::FakeSessionHost;

const char* kEhloChunk =
    "250-mx.test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
    "250 8BITMIME\r\n";
const char* kEhloPipe = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

// A CHUNKING server that reads what the session wrote and answers each command in turn, so a
// test can let replies come back in any grouping and see what was in flight at each step.
struct BdatServer {
  explicit BdatServer(uint64_t cap, uint32_t window = 512) {
    cfg.helo = "client.test";
    cfg.window = window;
    cfg.max_bytes_in_flight = cap;
  }
  SessionConfig cfg;
  FakeSessionHost host;
  Outbox out;
  Session session{cfg, host, out};
  std::string wire;                   // written by the session, not yet parsed
  std::deque<std::string> to_answer;  // replies owed, oldest first
  std::deque<uint64_t> bdat_sizes;    // one per reply owed: the BDAT's size, else 0
  uint64_t in_flight = 0;             // octets of BDATs without a reply yet
  size_t bdats_in_flight = 0;
  uint64_t max_seen = 0;  // the most ever in flight with more than one BDAT
  size_t max_bdats = 0;

  void start() {
    session.on_connected(0);
    session.on_data("220 mx.test ESMTP\r\n", 0);
    out.clear();  // EHLO
    session.on_data(kEhloChunk, 0);
    parse();
  }
  // Moves what the session wrote into the owed replies.
  void parse() {
    wire += out.flatten();
    out.clear();
    for (;;) {
      size_t eol = wire.find("\r\n");
      if (eol == std::string::npos) return;
      std::string line = wire.substr(0, eol);
      uint64_t body = 0;
      if (line.rfind("BDAT ", 0) == 0) {
        body = std::stoull(line.substr(5));
        if (wire.size() < eol + 2 + body) return;  // the chunk is not all here yet
      }
      wire.erase(0, eol + 2 + body);
      bdat_sizes.push_back(body);
      if (body > 0) {
        in_flight += body;
        ++bdats_in_flight;
        max_bdats = std::max(max_bdats, bdats_in_flight);
        if (bdats_in_flight > 1) max_seen = std::max(max_seen, in_flight);
      }
      if (line.rfind("MAIL", 0) == 0) {
        to_answer.push_back("250 2.1.0 ok\r\n");
      } else if (line.rfind("RCPT", 0) == 0) {
        to_answer.push_back("250 2.1.5 ok\r\n");
      } else if (body > 0) {
        to_answer.push_back("250 2.0.0 queued\r\n");
      } else if (line == "QUIT") {
        to_answer.push_back("221 2.0.0 bye\r\n");
      } else {  // NOOP
        to_answer.push_back("250 2.0.0 ok\r\n");
      }
    }
  }
  // Answers the `n` oldest commands in one read.
  void answer(size_t n) {
    std::string replies;
    for (size_t i = 0; i < n && !to_answer.empty(); ++i) {
      replies += to_answer.front();
      to_answer.pop_front();
      if (bdat_sizes.front() > 0) {
        in_flight -= bdat_sizes.front();
        --bdats_in_flight;
      }
      bdat_sizes.pop_front();
    }
    session.on_data(replies, 1);
    parse();
  }
};

std::string body_of(size_t n) { return std::string(n - 2, 'x') + "\r\n"; }

TEST(SessionWindow, DefaultsAreTheTunedOnes) {
  SessionConfig c;
  EXPECT_EQ(c.window, 512u);
  EXPECT_EQ(c.max_bytes_in_flight, uint64_t{1} << 20);
}

TEST(SessionWindow, TheByteCapStopsTheWindowBeforeItsLength) {
  BdatServer s(100);
  for (int i = 0; i < 5; ++i)
    s.host.add("a@x.test", {"r" + std::to_string(i) + "@y.test"}, body_of(40));
  s.start();
  // Two messages (80 octets) fit; a third would make 120.
  EXPECT_EQ(s.bdats_in_flight, 2u);
  EXPECT_EQ(s.host.handed_out, 3u);  // the third waits in the session, taken but not started
  s.answer(3);                       // the first transaction's replies
  EXPECT_EQ(s.bdats_in_flight, 2u);
  while (!s.to_answer.empty()) s.answer(1);
  EXPECT_LE(s.max_seen, 100u);
  EXPECT_EQ(s.max_bdats, 2u);
  EXPECT_TRUE(s.session.wants_close());
  ASSERT_EQ(s.host.outcomes.size(), 5u);
  for (auto& o : s.host.outcomes) EXPECT_EQ(o.verdict, Verdict::kSent) << o.rcpt;
  EXPECT_TRUE(s.host.accounted());
}

TEST(SessionWindow, AMessageLargerThanTheCapGoesAlone) {
  BdatServer s(100);
  s.host.add("a@x.test", {"a@y.test"}, body_of(30));
  s.host.add("a@x.test", {"b@y.test"}, body_of(250));
  s.host.add("a@x.test", {"c@y.test"}, body_of(30));
  s.start();
  EXPECT_EQ(s.bdats_in_flight, 1u);  // 30; 30 + 250 would pass the cap
  s.answer(3);
  EXPECT_EQ(s.bdats_in_flight, 1u);  // 250 alone; 250 + 30 would pass the cap
  EXPECT_EQ(s.in_flight, 250u);
  s.answer(3);
  EXPECT_EQ(s.in_flight, 30u);
  while (!s.to_answer.empty()) s.answer(1);
  EXPECT_EQ(s.max_bdats, 1u);
  ASSERT_EQ(s.host.outcomes.size(), 3u);
  for (auto& o : s.host.outcomes) EXPECT_EQ(o.verdict, Verdict::kSent) << o.rcpt;
  EXPECT_TRUE(s.host.accounted());
}

TEST(SessionWindow, NeverMoreThanTheCapInFlightWhateverTheReplyGrouping) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    const uint64_t cap = 200 + rng() % 2000;
    const uint32_t window = 1 + rng() % 40;
    BdatServer s(cap, window);
    s.cfg.max_messages = 1000;
    const int n = 60;
    for (int i = 0; i < n; ++i) {
      // Mostly small messages, now and then one larger than the cap.
      size_t size = rng() % 10 == 0 ? cap + 1 + rng() % 500 : 3 + rng() % 300;
      s.host.add("a@x.test", {"r" + std::to_string(i) + "@y.test"}, body_of(size));
    }
    s.start();
    for (int steps = 0; !s.to_answer.empty() && steps < 100000; ++steps) {
      s.answer(1 + rng() % 8);
      ASSERT_TRUE(s.bdats_in_flight <= 1 || s.in_flight <= cap)
          << "seed " << seed << ": " << s.in_flight << " octets in " << s.bdats_in_flight
          << " BDATs, cap " << cap;
      ASSERT_LE(s.bdats_in_flight, window) << "seed " << seed;
    }
    EXPECT_TRUE(s.session.wants_close()) << "seed " << seed;
    EXPECT_EQ(s.host.outcomes.size(), static_cast<size_t>(n)) << "seed " << seed;
    for (auto& o : s.host.outcomes) ASSERT_EQ(o.verdict, Verdict::kSent) << "seed " << seed;
    EXPECT_TRUE(s.host.accounted()) << "seed " << seed;
  }
}

TEST(SessionWindow, ATransactionWaitingForRoomIsDeferredWhenTheConnectionDrops) {
  BdatServer s(100);
  s.host.add("a@x.test", {"a@y.test"}, body_of(80));
  s.host.add("a@x.test", {"b@y.test"}, body_of(80));
  s.start();
  EXPECT_EQ(s.bdats_in_flight, 1u);
  EXPECT_EQ(s.host.handed_out, 2u);
  s.session.on_closed("reset", 1);
  ASSERT_EQ(s.host.outcomes.size(), 2u);
  EXPECT_EQ(s.host.find("a@y.test")->verdict, Verdict::kDeferred);
  EXPECT_EQ(s.host.find("b@y.test")->verdict, Verdict::kDeferred);
  EXPECT_TRUE(s.host.accounted());
}

TEST(SessionWindow, DataTransactionsLargerThanTheCapStillFlow) {
  SessionConfig c;
  c.helo = "client.test";
  c.max_bytes_in_flight = 10;
  FakeSessionHost host;
  Outbox out;
  Session session(c, host, out);
  host.add("a@x.test", {"b@y.test"}, "Subject: 1\r\n\r\nhi\r\n");
  host.add("a@x.test", {"c@y.test"}, "Subject: 2\r\n\r\nho\r\n");
  session.on_connected(0);
  session.on_data("220 mx.test ESMTP\r\n", 0);
  out.clear();
  session.on_data(kEhloPipe, 0);
  EXPECT_EQ(out.flatten(), "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n");
  out.clear();
  session.on_data("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", 1);
  // The second message (18 octets) waits for the first's final reply: 36 would pass 10.
  EXPECT_EQ(out.flatten(), "Subject: 1\r\n\r\nhi\r\n.\r\n");
  out.clear();
  session.on_data("250 2.0.0 queued\r\n", 2);
  EXPECT_EQ(out.flatten(), "MAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
  out.clear();
  session.on_data("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", 3);
  // The host is asked for more (and QUIT follows) only once there is room, as with a full
  // window.
  EXPECT_EQ(out.flatten(), "Subject: 2\r\n\r\nho\r\n.\r\n");
  out.clear();
  session.on_data("250 2.0.0 queued\r\n", 4);
  EXPECT_EQ(out.flatten(), "QUIT\r\n");
  session.on_data("221 2.0.0 bye\r\n", 5);
  ASSERT_EQ(host.outcomes.size(), 2u);
  EXPECT_EQ(host.outcomes[0].verdict, Verdict::kSent);
  EXPECT_EQ(host.outcomes[1].verdict, Verdict::kSent);
  EXPECT_TRUE(host.accounted());
}

}  // namespace
}  // namespace sb
