// The session's STARTTLS and AUTH dialogue against scripted servers (TLS itself is faked:
// the driver's part is to call on_tls_ready).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fakes/fake_session_host.h"
#include "smtp/session.h"

namespace sb {
namespace {

using testing::FakeSessionHost;

class FakeCredentials : public Credentials {
 public:
  FakeCredentials(std::string user, std::string secret, bool oauth)
      : user_(std::move(user)), secret_(std::move(secret)), oauth_(oauth) {}
  const std::string& user() const override { return user_; }
  std::string secret() const override { return secret_; }
  bool is_oauth() const override { return oauth_; }
  bool refresh(std::string* error) override {
    ++refreshes;
    if (next_secret.empty()) {
      *error = "token command failed";
      return false;
    }
    secret_ = next_secret;
    return true;
  }
  std::string next_secret;
  int refreshes = 0;

 private:
  std::string user_;
  std::string secret_;
  bool oauth_;
};

std::string unbase64(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return out;
}

struct Harness {
  explicit Harness(SessionConfig c) : cfg(std::move(c)), session(cfg, host, out) {
    session.keep_transcript(true);
  }
  std::string take() {
    std::string s = out.flatten();
    out.clear();
    return s;
  }
  void feed(std::string_view s) { session.on_data(s, now); }
  SessionConfig cfg;
  FakeSessionHost host;
  Outbox out;
  Session session;
  uint64_t now = 1000;
};

SessionConfig tls_config(Credentials* cr = nullptr) {
  SessionConfig c;
  c.helo = "client.test";
  c.tls = TlsMode::kStartTls;
  c.credentials = cr;
  return c;
}

const char* kEhloTls = "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
const char* kEhloAfterTls = "250-mx\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n";

// Greeting, EHLO, STARTTLS, handshake, EHLO again: returns what follows the second EHLO.
std::string through_tls(Harness& h, const char* ehlo_after = kEhloAfterTls) {
  h.session.on_connected(h.now);
  h.feed("220 mx ESMTP\r\n");
  EXPECT_EQ(h.take(), "EHLO client.test\r\n");
  h.feed(kEhloTls);
  EXPECT_EQ(h.take(), "STARTTLS\r\n");
  h.feed("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(h.session.wants_tls());
  h.session.on_tls_ready(h.now);
  EXPECT_TRUE(h.session.tls_active());
  EXPECT_EQ(h.take(), "EHLO client.test\r\n");
  h.feed(ehlo_after);
  return h.take();
}

TEST(SessionTls, StartTlsThenAuthPlainThenMail) {
  FakeCredentials cr("user@example.test", "s3cret-pass", false);
  Harness h(tls_config(&cr));
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  // base64("\0user@example.test\0s3cret-pass")
  EXPECT_EQ(through_tls(h), "AUTH PLAIN AHVzZXJAZXhhbXBsZS50ZXN0AHMzY3JldC1wYXNz\r\n");
  h.feed("235 2.7.0 Authentication successful\r\n");
  EXPECT_TRUE(h.session.authenticated());
  EXPECT_NE(h.take().find("MAIL FROM:<a@x.test>"), std::string::npos);
  // The transcript never shows the secret.
  EXPECT_EQ(h.session.transcript().find("AHVzZXJ"), std::string::npos);
  EXPECT_NE(h.session.transcript().find("C: AUTH PLAIN <redacted>"), std::string::npos);
}

TEST(SessionTls, ResponseInjectionAfterStartTlsDropsTheConnection) {
  Harness h(tls_config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.take();
  h.feed(kEhloTls);
  h.take();
  h.feed("220 go ahead\r\n250 injected\r\n");  // one segment
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_TRUE(h.session.fatal());
  EXPECT_NE(h.session.end_reason().find("injection"), std::string::npos);
  EXPECT_EQ(h.take(), "");
  EXPECT_EQ(h.host.handed_out, 0u);
}

TEST(SessionTls, InjectionSplitAcrossReadsIsCaughtToo) {
  Harness h(tls_config());
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.feed(kEhloTls);
  h.take();
  h.feed("220 go ahead\r\n250 inj");  // a partial line behind the 220
  EXPECT_TRUE(h.session.fatal());
}

TEST(SessionTls, StartTlsMissingIsFatalAndSendsNothing) {
  Harness h(tls_config());
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.take();
  h.feed("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_TRUE(h.session.fatal());
  EXPECT_NE(h.session.end_reason().find("does not offer STARTTLS"), std::string::npos);
  EXPECT_EQ(h.take(), "");
}

TEST(SessionTls, StartTls454IsTemporary) {
  Harness h(tls_config());
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.feed(kEhloTls);
  h.take();
  h.feed("454 4.7.0 TLS not available due to temporary reason\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_FALSE(h.session.fatal());
}

TEST(SessionTls, OpportunisticFallsBackOnlyWhenRefusedBeforeTheHandshake) {
  SessionConfig c = tls_config();
  c.tls = TlsMode::kOpportunistic;
  Harness h(c);
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.feed(kEhloTls);
  EXPECT_EQ(h.take(), "EHLO client.test\r\nSTARTTLS\r\n");
  h.feed("454 4.7.0 not now\r\n");
  EXPECT_NE(h.take().find("MAIL FROM"), std::string::npos);
  // A failed handshake never falls back on the same connection.
  Harness h2(c);
  h2.session.on_connected(h2.now);
  h2.feed("220 mx\r\n");
  h2.feed(kEhloTls);
  h2.feed("220 go\r\n");
  h2.session.on_tls_failed("handshake failure", false);
  EXPECT_TRUE(h2.session.wants_close());
}

TEST(SessionTls, AuthOfferedOnlyBeforeTlsIsRefused) {
  FakeCredentials cr("u", "p", false);
  Harness h(tls_config(&cr));
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.feed("250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
  EXPECT_EQ(h.take(), "EHLO client.test\r\nSTARTTLS\r\n");
  h.feed("220 go\r\n");
  h.session.on_tls_ready(h.now);
  h.take();
  h.feed("250-mx\r\n250 PIPELINING\r\n");  // no AUTH after TLS
  EXPECT_TRUE(h.session.fatal());
  EXPECT_NE(h.session.end_reason().find("does not offer AUTH after STARTTLS"), std::string::npos);
  EXPECT_EQ(h.take(), "");
}

TEST(SessionTls, NoCredentialsOverPlaintext) {
  FakeCredentials cr("u", "p", false);
  SessionConfig c = tls_config(&cr);
  c.tls = TlsMode::kNone;
  Harness h(c);
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.take();
  h.feed("250-mx\r\n250 AUTH PLAIN\r\n");
  EXPECT_TRUE(h.session.fatal());
  EXPECT_NE(h.session.end_reason().find("unencrypted"), std::string::npos);
  EXPECT_EQ(h.take(), "");
  // Unless asked for by name.
  c.allow_plaintext_auth = true;
  Harness h2(c);
  h2.session.on_connected(h2.now);
  h2.feed("220 mx\r\n");
  h2.take();
  h2.feed("250-mx\r\n250 AUTH PLAIN\r\n");
  EXPECT_EQ(h2.take().rfind("AUTH PLAIN ", 0), 0u);
}

TEST(SessionTls, WrongPasswordIsFatalAfterOneAttempt) {
  FakeCredentials cr("u", "wrong", false);
  Harness h(tls_config(&cr));
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  through_tls(h);
  h.feed("535 5.7.8 Error: authentication failed\r\n");
  EXPECT_TRUE(h.session.fatal());
  EXPECT_NE(h.session.end_reason().find("authentication failed"), std::string::npos);
  EXPECT_EQ(h.take(), "");
  EXPECT_EQ(h.host.handed_out, 0u);
}

TEST(SessionTls, Auth454IsTemporary) {
  FakeCredentials cr("u", "p", false);
  Harness h(tls_config(&cr));
  through_tls(h);
  h.feed("454 4.7.0 Temporary authentication failure\r\n");
  EXPECT_TRUE(h.session.wants_close());
  EXPECT_FALSE(h.session.fatal());
}

TEST(SessionTls, AuthLogin) {
  FakeCredentials cr("user", "pass", false);
  SessionConfig c = tls_config(&cr);
  c.auth = AuthMech::kLogin;
  Harness h(c);
  EXPECT_EQ(through_tls(h), "AUTH LOGIN\r\n");
  h.feed("334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(h.take(), "dXNlcg==\r\n");
  h.feed("334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(h.take(), "cGFzcw==\r\n");
  h.feed("235 ok\r\n");
  EXPECT_TRUE(h.session.authenticated());
  EXPECT_EQ(h.session.transcript().find("cGFzcw=="), std::string::npos);
}

TEST(SessionTls, ExpiredOauthTokenIsRefreshedOncePerConnection) {
  FakeCredentials cr("user@example.test", "old-token", true);
  cr.next_secret = "new-token";
  Harness h(tls_config(&cr));
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  std::string first = through_tls(h);
  EXPECT_EQ(first.rfind("AUTH XOAUTH2 ", 0), 0u);
  h.feed("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n");
  EXPECT_EQ(h.take(), "\r\n");
  h.feed("535 5.7.8 Username and Password not accepted\r\n");
  EXPECT_EQ(cr.refreshes, 1);
  std::string second = h.take();
  EXPECT_EQ(second.rfind("AUTH XOAUTH2 ", 0), 0u);
  // The SASL XOAUTH2 initial response, byte for byte.
  EXPECT_EQ(unbase64(first.substr(13)), std::string("user=user@example.test\x01"
                                                    "auth=Bearer old-token\x01\x01"));
  EXPECT_EQ(unbase64(second.substr(13)), std::string("user=user@example.test\x01"
                                                     "auth=Bearer new-token\x01\x01"));
  h.feed("235 2.7.0 Accepted\r\n");
  EXPECT_TRUE(h.session.authenticated());
  EXPECT_NE(h.take().find("MAIL FROM"), std::string::npos);
}

TEST(SessionTls, OauthTokenRejectedTwiceIsFatal) {
  FakeCredentials cr("u", "old", true);
  cr.next_secret = "also-bad";
  Harness h(tls_config(&cr));
  through_tls(h);
  h.feed("535 5.7.8 no\r\n");
  h.take();
  h.feed("535 5.7.8 no\r\n");
  EXPECT_EQ(cr.refreshes, 1);
  EXPECT_TRUE(h.session.fatal());
}

TEST(SessionTls, ProbeSendsMailRcptRsetAndNoMessage) {
  Harness h(tls_config());
  h.cfg.tls = TlsMode::kNone;
  Harness p(h.cfg);
  p.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  // Mark the queued transaction as a probe through the host's next handout.
  p.session.on_connected(p.now);
  p.feed("220 mx\r\n");
  p.take();
  struct ProbeHost : FakeSessionHost {
    Next next_txn(bool bdat, Txn*& out) override {
      Next n = FakeSessionHost::next_txn(bdat, out);
      if (n == Next::kTxn) out->probe = true;
      return n;
    }
  };
  ProbeHost ph;
  ph.add("a@x.test", {"b@y.test"}, "m\r\n");
  Outbox ob;
  SessionConfig c;
  c.helo = "client.test";
  Session s(c, ph, ob);
  s.on_connected(1);
  s.on_data("220 mx\r\n", 1);  // the EHLO reply comes in a later read: it answers EHLO
  s.on_data("250-mx\r\n250 PIPELINING\r\n", 1);
  std::string sent = ob.flatten();
  ob.clear();
  EXPECT_NE(sent.find("MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRSET\r\n"), std::string::npos);
  EXPECT_EQ(sent.find("DATA"), std::string::npos);
  s.on_data("250 ok\r\n250 2.1.5 ok\r\n250 reset\r\n", 2);
  ASSERT_EQ(ph.outcomes.size(), 1u);
  EXPECT_EQ(ph.outcomes[0].verdict, Verdict::kSent);
  EXPECT_TRUE(ph.accounted());
}

// --- why a session ended: typed, worded by the peer's role, advice left to the CLI --------

TEST(SessionEnd, TlsAndAuthEndsAreTypedAndFreeOfFlagNames) {
  FakeCredentials cr("u", "p", false);
  struct Case {
    const char* name;
    TlsMode tls;
    Credentials* cred;
    std::vector<std::string> dialogue;  // after the greeting
    EndCause want;
    bool transient;
  } cases[] = {
      {"starttls missing",
       TlsMode::kStartTls,
       nullptr,
       {"250-mx\r\n250 PIPELINING\r\n"},
       EndCause::kStartTlsNotOffered,
       false},
      {"starttls 554",
       TlsMode::kStartTls,
       nullptr,
       {kEhloTls, "554 5.7.0 no\r\n"},
       EndCause::kStartTlsRefused,
       false},
      {"starttls 454",
       TlsMode::kStartTls,
       nullptr,
       {kEhloTls, "454 4.7.0 later\r\n"},
       EndCause::kStartTlsRefused,
       true},
      {"plaintext auth",
       TlsMode::kNone,
       &cr,
       {"250-mx\r\n250 AUTH PLAIN\r\n"},
       EndCause::kPlaintextAuthRefused,
       false},
  };
  for (const Case& c : cases) {
    SessionConfig cfg = tls_config(c.cred);
    cfg.tls = c.tls;
    Harness h(cfg);
    h.session.on_connected(h.now);
    h.feed("220 mx\r\n");
    for (const std::string& d : c.dialogue) h.feed(d);
    EXPECT_TRUE(h.session.wants_close()) << c.name;
    EXPECT_EQ(h.session.end().cause, c.want) << c.name;
    EXPECT_EQ(h.session.end().transient, c.transient) << c.name;
    EXPECT_EQ(h.session.end().text, h.session.end_reason()) << c.name;
    EXPECT_EQ(h.session.end_reason().find("--"), std::string::npos) << h.session.end_reason();
  }
}

TEST(SessionEnd, AuthEndsAreTyped) {
  FakeCredentials cr("u", "p", false);
  {
    Harness h(tls_config(&cr));
    through_tls(h, "250-mx\r\n250 PIPELINING\r\n");
    EXPECT_EQ(h.session.end().cause, EndCause::kAuthNotOffered);
  }
  {
    Harness h(tls_config(&cr));
    through_tls(h, "250-mx\r\n250 AUTH CRAM-MD5\r\n");
    EXPECT_EQ(h.session.end().cause, EndCause::kAuthNoMechanism);
  }
  {
    Harness h(tls_config(&cr));
    through_tls(h);
    h.feed("535 5.7.8 bad credentials\r\n");
    EXPECT_EQ(h.session.end().cause, EndCause::kAuthFailed);
    EXPECT_EQ(h.session.end().code, 535);
    EXPECT_EQ(h.session.end_reason().find("--"), std::string::npos) << h.session.end_reason();
  }
  {
    Harness h(tls_config(&cr));
    through_tls(h);
    h.feed("454 4.7.0 later\r\n");
    EXPECT_EQ(h.session.end().cause, EndCause::kAuthTemporary);
    EXPECT_TRUE(h.session.end().transient);
  }
  {
    Harness h(tls_config());
    h.session.on_connected(h.now);
    h.feed("220 mx\r\n");
    h.feed(kEhloTls);
    h.feed("220 go\r\n");
    h.session.on_tls_failed("certificate verify failed", true);
    EXPECT_EQ(h.session.end().cause, EndCause::kTlsHandshakeFailed);
    EXPECT_EQ(h.session.fatal_cause(), FatalCause::kTls);
  }
}

TEST(SessionEnd, WordsNameThePeersRole) {
  FakeCredentials cr("u", "p", false);
  for (PeerRole role : {PeerRole::kRelay, PeerRole::kMailExchanger}) {
    const std::string the = std::string("the ") + peer_role_name(role);
    SessionConfig c = tls_config();
    c.peer = role;
    Harness h(c);
    h.session.on_connected(h.now);
    h.feed("220 mx\r\n");
    h.feed(kEhloTls);
    h.feed("554 5.7.0 no\r\n");
    EXPECT_EQ(h.session.end_reason(), the + " refused STARTTLS: 554 5.7.0 no");
    EXPECT_EQ(h.session.end().peer, role);

    SessionConfig a = tls_config(&cr);
    a.peer = role;
    Harness k(a);
    through_tls(k, "250-mx\r\n250 PIPELINING\r\n");
    EXPECT_EQ(k.session.end_reason(), the +
                                          " does not offer AUTH after STARTTLS; cannot "
                                          "authenticate");
  }
  EXPECT_STREQ(peer_role_name(PeerRole::kMailExchanger), "mail exchanger");
}

std::string describe_for_test(const SessionEnd& e) {
  return std::string(end_cause_name(e.cause)) + "|" + e.text;
}

TEST(SessionEnd, DescriberWordsTheReasonAndTheRecipientsOutcome) {
  SessionConfig c = tls_config();
  c.tls = TlsMode::kNone;
  c.describe_end = &describe_for_test;
  Harness h(c);
  h.host.add("a@x.test", {"b@y.test"}, "m\r\n");
  h.session.on_connected(h.now);
  h.feed("220 mx\r\n");
  h.feed("250-mx\r\n250 PIPELINING\r\n");
  EXPECT_NE(h.take().find("MAIL FROM"), std::string::npos);
  h.session.on_timer(h.session.deadline_ms());
  EXPECT_EQ(h.session.end().cause, EndCause::kTimeout);
  EXPECT_EQ(h.session.end_reason(), "timeout|" + h.session.end().text);
  ASSERT_EQ(h.host.outcomes.size(), 1u);
  EXPECT_EQ(h.host.outcomes[0].verdict, Verdict::kDeferred);
  EXPECT_EQ(h.host.outcomes[0].text, h.session.end_reason());
}

}  // namespace
}  // namespace sb
