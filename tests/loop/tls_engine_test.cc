// Tests of the in-memory TLS engine: a client engine against a server engine, bytes pumped by hand.
#include "loop/tls_engine.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sb {
namespace {

namespace fs = std::filesystem;

// The certificates come from the same script the integration tests use, run once per binary.
class Certs {
 public:
  static const Certs& get() {
    static const Certs certs;
    return certs;
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  bool ok() const { return ok_; }
  ~Certs() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

 private:
  Certs() {
    fs::path src;
    if (const char* env = std::getenv("SMTPBLAST_SOURCE_DIR")) {
      src = env;
    } else {
      src = fs::path(__FILE__).parent_path().parent_path().parent_path();
    }
    fs::path script = src / "tools" / "make_test_certs.sh";
    dir_ = fs::temp_directory_path() / ("sb-tls-test-" + std::to_string(::getpid()));
    std::string cmd = "bash '" + script.string() + "' '" + dir_.string() + "'";
    ok_ = std::system(cmd.c_str()) == 0 && fs::exists(dir_ / "server.pem");
  }
  fs::path dir_;
  bool ok_ = false;
};

std::shared_ptr<TlsContext> server_ctx(const std::string& cert, TlsServerOptions opts = {}) {
  const Certs& c = Certs::get();
  auto r = TlsContext::create_server(c.file(cert + ".pem"), c.file(cert + ".key"), opts);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  return r.ok() ? r.value() : nullptr;
}

TlsClientConfig client_cfg(const std::string& host = "localhost") {
  TlsClientConfig cfg;
  cfg.ca_file = Certs::get().file("ca.pem");
  cfg.sni_host = host;
  return cfg;
}

std::shared_ptr<TlsContext> client_ctx(const TlsClientConfig& cfg) {
  auto r = TlsContext::create_client(cfg);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().describe());
  return r.ok() ? r.value() : nullptr;
}

// A client and a server engine joined by two in-memory "wires".
struct Pair {
  std::unique_ptr<TlsEngine> client;
  std::unique_ptr<TlsEngine> server;
  std::string c2s, s2c;  // ciphertext on the wire
  std::string client_plain, server_plain;
  std::string client_error, server_error;
  size_t chunk = SIZE_MAX;  // ciphertext is delivered in pieces of at most this many bytes

  Pair(std::shared_ptr<TlsContext> cctx, std::shared_ptr<TlsContext> sctx,
       std::string_view host = {}) {
    auto c = TlsEngine::create_client(std::move(cctx), host);
    auto s = TlsEngine::create_server(std::move(sctx));
    EXPECT_TRUE(c.ok() && s.ok());
    if (c.ok()) client = std::move(c).value();
    if (s.ok()) server = std::move(s).value();
  }

  static void deliver(std::string& wire, TlsEngine& to, std::string& plain, std::string& back,
                      std::string& error, size_t chunk) {
    std::string in;
    in.swap(wire);
    for (size_t off = 0; off < in.size() && error.empty();) {
      size_t n = std::min(chunk, in.size() - off);
      Status s = to.on_cipher_in(std::string_view(in).substr(off, n), plain, back);
      if (!s.ok()) error = s.error().message;
      off += n;
    }
  }

  // Moves bytes both ways until nobody has anything to say.
  void pump() {
    for (int rounds = 0; rounds < 1000 && (!c2s.empty() || !s2c.empty()); ++rounds) {
      // A failed engine's wire is dropped, as a closed socket would drop it.
      if (server_error.empty()) {
        deliver(c2s, *server, server_plain, s2c, server_error, chunk);
      } else {
        c2s.clear();
      }
      if (client_error.empty()) {
        deliver(s2c, *client, client_plain, c2s, client_error, chunk);
      } else {
        s2c.clear();
      }
    }
  }

  bool handshake() {
    Status cs = client->start_handshake(c2s);
    Status ss = server->start_handshake(s2c);
    EXPECT_TRUE(cs.ok() && ss.ok());
    pump();
    return client->handshake_done() && server->handshake_done() && client_error.empty() &&
           server_error.empty();
  }
};

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

class TlsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Certs::get().ok()) << "tools/make_test_certs.sh failed";
    ERR_clear_error();
  }
  // Whatever happened, OpenSSL's per-thread error queue must be empty afterwards.
  void TearDown() override { EXPECT_EQ(ERR_peek_error(), 0u); }
};

TEST_F(TlsEngineTest, HandshakeSucceedsWithCaFileAndMatchingName) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.handshake()) << p.client_error << " / " << p.server_error;
  TlsInfo i = p.client->info();
  EXPECT_EQ(i.protocol, "TLSv1.3");
  EXPECT_FALSE(i.cipher.empty());
  EXPECT_EQ(i.peer_subject, "CN=localhost");
  EXPECT_EQ(i.peer_issuer, "CN=smtpblast test CA");
  EXPECT_TRUE(i.verify_enabled);
  EXPECT_EQ(i.verify_code, X509_V_OK);
  EXPECT_EQ(i.verify_result, "ok");
  EXPECT_FALSE(i.resumed);
}

TEST_F(TlsEngineTest, IpLiteralIsCheckedAgainstIpSan) {
  Pair p(client_ctx(client_cfg("127.0.0.1")), server_ctx("server"));
  ASSERT_TRUE(p.handshake()) << p.client_error;
  Pair q(client_ctx(client_cfg("127.0.0.2")), server_ctx("server"));
  EXPECT_FALSE(q.handshake());
  EXPECT_NE(q.client_error.find("127.0.0.2"), std::string::npos) << q.client_error;
}

TEST_F(TlsEngineTest, DataRoundTripsBothWaysLargeAndOddSplits) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.handshake());
  const std::string up = random_bytes(1 << 20, 1);
  const std::string down = random_bytes((1 << 20) + 13, 2);
  // Application writes at odd sizes, ciphertext delivered at other odd sizes.
  const size_t write_sizes[] = {1, 3, 511, 4097, 16383, 16384, 16385, 70001};
  for (size_t off = 0, k = 0; off < up.size(); ++k) {
    size_t n = std::min(write_sizes[k % std::size(write_sizes)], up.size() - off);
    ASSERT_TRUE(p.client->write_plain(std::string_view(up).substr(off, n), p.c2s).ok());
    off += n;
  }
  for (size_t off = 0, k = 0; off < down.size(); ++k) {
    size_t n = std::min(write_sizes[(k + 3) % std::size(write_sizes)], down.size() - off);
    ASSERT_TRUE(p.server->write_plain(std::string_view(down).substr(off, n), p.s2c).ok());
    off += n;
  }
  p.chunk = 1237;
  p.pump();
  EXPECT_TRUE(p.client_error.empty() && p.server_error.empty());
  EXPECT_EQ(p.server_plain.size(), up.size());
  EXPECT_TRUE(p.server_plain == up);
  EXPECT_EQ(p.client_plain.size(), down.size());
  EXPECT_TRUE(p.client_plain == down);
}

TEST_F(TlsEngineTest, EverySplitFromOneToSevenBytes) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  for (size_t chunk = 1; chunk <= 7; ++chunk) {
    SCOPED_TRACE(chunk);
    Pair p(cctx, sctx);
    p.chunk = chunk;
    ASSERT_TRUE(p.handshake()) << p.client_error << " / " << p.server_error;
    const std::string msg = "EHLO client.example\r\n" + random_bytes(3000 + chunk, 3);
    ASSERT_TRUE(p.client->write_plain(msg, p.c2s).ok());
    ASSERT_TRUE(p.server->write_plain("250 ok\r\n", p.s2c).ok());
    p.pump();
    EXPECT_EQ(p.server_plain, msg);
    EXPECT_EQ(p.client_plain, "250 ok\r\n");
  }
}

TEST_F(TlsEngineTest, WritesBeforeHandshakeAreQueued) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.client->start_handshake(p.c2s).ok());
  ASSERT_TRUE(p.client->write_plain("EHLO early\r\n", p.c2s).ok());
  p.pump();
  ASSERT_TRUE(p.client->handshake_done());
  EXPECT_EQ(p.server_plain, "EHLO early\r\n");
}

TEST_F(TlsEngineTest, OutboxSlicesArriveInOrder) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.handshake());
  const std::string body = random_bytes(100000, 4);
  Outbox out;
  out.append("MAIL FROM:<a@b>\r\n");
  out.append_ref(std::string_view(body).substr(0, 20000));
  out.append("RCPT TO:<c@d>\r\n");
  out.append_ref(std::string_view(body).substr(20000, 5));
  out.append_ref(std::string_view(body).substr(20005));
  ASSERT_TRUE(p.client->write_plain(out, p.c2s).ok());
  p.pump();
  EXPECT_TRUE(p.server_plain == out.flatten());
}

TEST_F(TlsEngineTest, UnknownCaNamesTheIssuer) {
  Pair p(client_ctx(client_cfg()), server_ctx("unknown"));
  EXPECT_FALSE(p.handshake());
  EXPECT_TRUE(p.client->failed());
  const std::string& e = p.client_error;
  EXPECT_NE(e.find("TLS handshake with localhost failed: certificate verify failed"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("unable to get local issuer certificate"), std::string::npos) << e;
  EXPECT_NE(e.find("smtpblast unrelated test CA"), std::string::npos) << e;
  // The advice ("give --ca-file") is the CLI's: tests/cli/session_advice_test.cc.
  EXPECT_EQ(p.client->failure().cause, TlsFailureCause::kUntrustedIssuer);
  EXPECT_EQ(e.find("--"), std::string::npos) << e;
  // The alert reached the server, which fails too.
  EXPECT_NE(p.server_error.find("unknown ca"), std::string::npos) << p.server_error;
  // The engine keeps reporting the same error.
  std::string plain, out;
  Status again = p.client->on_cipher_in("x", plain, out);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, e);
  EXPECT_EQ(again.error().domain, ErrDomain::kSsl);
}

TEST_F(TlsEngineTest, SystemStoreAloneDoesNotTrustTheTestCa) {
  TlsClientConfig cfg = client_cfg();
  cfg.ca_file.clear();
  Pair p(client_ctx(cfg), server_ctx("server"));
  EXPECT_FALSE(p.handshake());
  EXPECT_NE(p.client_error.find("smtpblast test CA"), std::string::npos) << p.client_error;
}

TEST_F(TlsEngineTest, WrongNameNamesBothNames) {
  Pair p(client_ctx(client_cfg()), server_ctx("wrong"));
  EXPECT_FALSE(p.handshake());
  const std::string& e = p.client_error;
  EXPECT_NE(e.find("hostname mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("wrong.example"), std::string::npos) << e;
  EXPECT_NE(e.find("not localhost"), std::string::npos) << e;
}

std::string describe_for_test(const TlsFailure& f) {
  return std::string(tls_failure_cause_name(f.cause)) + "|" + f.text + "|" + f.hint;
}

TEST_F(TlsEngineTest, FailuresAreTypedAndWordedByTheDescriber) {
  struct Case {
    const char* cert;
    TlsFailureCause want;
  } cases[] = {{"wrong", TlsFailureCause::kHostnameMismatch},
               {"expired", TlsFailureCause::kCertExpired},
               {"unknown", TlsFailureCause::kUntrustedIssuer}};
  for (const Case& c : cases) {
    TlsClientConfig cfg = client_cfg();
    cfg.describe_failure = &describe_for_test;
    Pair p(client_ctx(cfg), server_ctx(c.cert));
    EXPECT_FALSE(p.handshake());
    const TlsFailure& f = p.client->failure();
    EXPECT_EQ(f.cause, c.want) << c.cert;
    EXPECT_EQ(p.client_error, describe_for_test(f)) << c.cert;
    EXPECT_EQ(tls_failure_text(f).find("--"), std::string::npos) << tls_failure_text(f);
  }
}

TEST_F(TlsEngineTest, ExpiredSaysExpiredAndWhen) {
  Pair p(client_ctx(client_cfg()), server_ctx("expired"));
  EXPECT_FALSE(p.handshake());
  const std::string& e = p.client_error;
  EXPECT_NE(e.find("certificate has expired"), std::string::npos) << e;
  EXPECT_NE(e.find("2020-01-02"), std::string::npos) << e;
}

TEST_F(TlsEngineTest, VerifyOffConnectsAndSaysSo) {
  TlsClientConfig cfg = client_cfg();
  cfg.verify = false;
  cfg.ca_file.clear();
  Pair p(client_ctx(cfg), server_ctx("unknown"));
  ASSERT_TRUE(p.handshake()) << p.client_error;
  TlsInfo i = p.client->info();
  EXPECT_FALSE(i.verify_enabled);
  // What verification would have said is still reported.
  EXPECT_EQ(i.verify_code, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(i.peer_subject, "CN=localhost");
}

TEST_F(TlsEngineTest, VerifyNeedsAHostName) {
  auto r = TlsEngine::create_client(client_ctx(client_cfg("")));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("host name"), std::string::npos);
}

TEST_F(TlsEngineTest, UnreadableCaFileIsAConfigError) {
  TlsClientConfig cfg = client_cfg();
  cfg.ca_file = "/nonexistent/ca.pem";
  auto r = TlsContext::create_client(cfg);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().domain, ErrDomain::kConfig);
  EXPECT_NE(r.error().message.find("/nonexistent/ca.pem"), std::string::npos);
}

TEST_F(TlsEngineTest, ServerLimitedToTls10IsRefused) {
  TlsServerOptions opts;
  opts.min_version = TLS1_VERSION;
  opts.max_version = TLS1_VERSION;
  opts.cipher_list = "DEFAULT:@SECLEVEL=0";  // OpenSSL 3 refuses TLS 1.0 at level 1 and up
  Pair p(client_ctx(client_cfg()), server_ctx("server", opts));
  EXPECT_FALSE(p.handshake());
  EXPECT_NE(p.client_error.find("smtpblast requires TLS 1.2 or newer"), std::string::npos)
      << p.client_error;
}

// A server that does not know the TLS 1.3 supported_versions extension answers with its own
// version in the ServerHello; this one is written by hand, as an old TLS 1.0 server would.
TEST_F(TlsEngineTest, Tls10ServerHelloIsNamed) {
  auto c = TlsEngine::create_client(client_ctx(client_cfg()));
  ASSERT_TRUE(c.ok());
  std::string hello;
  ASSERT_TRUE(c.value()->start_handshake(hello).ok());
  std::string sh = {0x02, 0x00, 0x00, 0x26, 0x03, 0x01};         // ServerHello, len 38, TLS 1.0
  sh += std::string(32, '\x11');                                 // random
  sh += std::string{0x00, static_cast<char>(0xc0), 0x13, 0x00};  // no session id, suite, null
  std::string rec = {0x16, 0x03, 0x01, 0x00, static_cast<char>(sh.size())};
  rec += sh;
  std::string plain, out;
  Status s = c.value()->on_cipher_in(rec, plain, out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(
      s.error().message.find("server offers only TLS 1.0; smtpblast requires TLS 1.2 or newer"),
      std::string::npos)
      << s.error().message;
}

TEST_F(TlsEngineTest, ResumesWithTls13) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  Pair first(cctx, sctx);
  ASSERT_TRUE(first.handshake());
  EXPECT_FALSE(first.client->info().resumed);
  EXPECT_TRUE(cctx->has_session("localhost"));  // the ticket arrived after the handshake
  // The first connection ends without close_notify, as SMTP connections usually do.
  first.client.reset();
  first.server.reset();
  Pair second(cctx, sctx);
  ASSERT_TRUE(second.handshake()) << second.client_error;
  TlsInfo i = second.client->info();
  EXPECT_TRUE(i.resumed);
  EXPECT_EQ(i.protocol, "TLSv1.3");
  EXPECT_EQ(i.peer_subject, "CN=localhost");
  EXPECT_EQ(i.verify_code, X509_V_OK);
  // Data flows on the resumed connection.
  ASSERT_TRUE(second.client->write_plain("QUIT\r\n", second.c2s).ok());
  second.pump();
  EXPECT_EQ(second.server_plain, "QUIT\r\n");
}

// A pool's connections churn: every new one should resume, not only every other one.
TEST_F(TlsEngineTest, EveryLaterConnectionResumesWithTls13) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  int resumed = 0;
  for (int n = 0; n < 6; ++n) {
    Pair p(cctx, sctx);
    ASSERT_TRUE(p.handshake()) << p.client_error;
    // Like an SMTP session: a little data after the handshake, so the tickets arrive.
    ASSERT_TRUE(p.client->write_plain("QUIT\r\n", p.c2s).ok());
    p.pump();
    if (p.client->info().resumed) ++resumed;
  }
  EXPECT_EQ(resumed, 5);
}

// Two connections opened at once both resume: each gets its own stored ticket.
TEST_F(TlsEngineTest, ConcurrentConnectionsShareTheStoredSession) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  {
    Pair p(cctx, sctx);
    ASSERT_TRUE(p.handshake());
  }
  Pair a(cctx, sctx);
  Pair b(cctx, sctx);
  ASSERT_TRUE(a.handshake()) << a.client_error;
  ASSERT_TRUE(b.handshake()) << b.client_error;
  EXPECT_TRUE(a.client->info().resumed);
  EXPECT_TRUE(b.client->info().resumed);
}

TEST_F(TlsEngineTest, ResumesWithTls12) {
  TlsServerOptions opts;
  opts.max_version = TLS1_2_VERSION;
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server", opts);
  Pair first(cctx, sctx);
  ASSERT_TRUE(first.handshake());
  EXPECT_EQ(first.client->info().protocol, "TLSv1.2");
  first.client->shutdown(first.c2s);
  first.pump();
  first.client.reset();
  Pair second(cctx, sctx);
  ASSERT_TRUE(second.handshake()) << second.client_error;
  EXPECT_TRUE(second.client->info().resumed);
  EXPECT_EQ(second.client->info().protocol, "TLSv1.2");
}

TEST_F(TlsEngineTest, NoResumptionWhenDisabledOrForAnotherHost) {
  auto sctx = server_ctx("server");
  TlsClientConfig cfg = client_cfg();
  cfg.allow_resumption = false;
  auto off = client_ctx(cfg);
  Pair a(off, sctx);
  ASSERT_TRUE(a.handshake());
  Pair b(off, sctx);
  ASSERT_TRUE(b.handshake());
  EXPECT_FALSE(b.client->info().resumed);

  // A session verified for one name is never offered to another.
  auto on = client_ctx(client_cfg());
  Pair c(on, sctx, "localhost");
  ASSERT_TRUE(c.handshake());
  Pair d(on, sctx, "127.0.0.1");
  ASSERT_TRUE(d.handshake());
  EXPECT_FALSE(d.client->info().resumed);
}

TEST_F(TlsEngineTest, SessionOfAFailedConnectionIsNotResumed) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  {
    Pair first(cctx, sctx);
    ASSERT_TRUE(first.handshake());
    ASSERT_TRUE(first.server->write_plain("250 ok\r\n", first.s2c).ok());
    first.s2c[first.s2c.size() - 3] ^= 0x40;  // bad record MAC: a fatal alert
    first.pump();
    ASSERT_FALSE(first.client_error.empty());
  }
  Pair second(cctx, sctx);
  ASSERT_TRUE(second.handshake()) << second.client_error;
  EXPECT_FALSE(second.client->info().resumed);
  // The full handshake brought fresh tickets; the next connection resumes again.
  Pair third(cctx, sctx);
  ASSERT_TRUE(third.handshake());
  EXPECT_TRUE(third.client->info().resumed);
}

// Worker threads share one client context (and its session map) and one server context.
TEST_F(TlsEngineTest, ThreadsShareOneContext) {
  auto cctx = client_ctx(client_cfg());
  auto sctx = server_ctx("server");
  constexpr int kThreads = 4;
  constexpr int kConns = 15;
  std::vector<int> ok(kThreads, 0), resumed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kConns; ++i) {
        Pair p(cctx, sctx);
        if (!p.handshake()) continue;
        if (!p.client->write_plain("NOOP\r\n", p.c2s).ok()) continue;
        p.pump();
        ok[t] += p.server_plain == "NOOP\r\n" ? 1 : 0;
        resumed[t] += p.client->info().resumed ? 1 : 0;
        if (i % 5 == 4) cctx->forget_sessions();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  int total_ok = 0, total_resumed = 0;
  for (int t = 0; t < kThreads; ++t) {
    total_ok += ok[t];
    total_resumed += resumed[t];
  }
  EXPECT_EQ(total_ok, kThreads * kConns);
  EXPECT_GT(total_resumed, kThreads * kConns / 2);
}

TEST_F(TlsEngineTest, GarbageFromServerIsAnErrorNotACrash) {
  auto cctx = client_ctx(client_cfg());
  for (uint32_t seed = 0; seed < 50; ++seed) {
    auto c = TlsEngine::create_client(cctx);
    ASSERT_TRUE(c.ok());
    std::string hello, plain, out;
    ASSERT_TRUE(c.value()->start_handshake(hello).ok());
    std::string junk = random_bytes(1 + seed * 37, seed);
    if (seed == 0) junk = "220 smtp.example.com ESMTP\r\n";  // plaintext SMTP on a TLS port
    Status s = c.value()->on_cipher_in(junk, plain, out);
    if (seed == 0) {
      ASSERT_FALSE(s.ok());
      // The advice ("use --tls starttls") is the CLI's: tests/cli/session_advice_test.cc.
      EXPECT_EQ(c.value()->failure().cause, TlsFailureCause::kPlaintextGreeting);
      EXPECT_NE(s.error().message.find("plaintext SMTP greeting"), std::string::npos)
          << s.error().message;
    }
    if (s.ok()) continue;  // a short prefix may still look like a record header
    EXPECT_TRUE(c.value()->failed());
    EXPECT_TRUE(plain.empty());
  }
  // And garbage into a server engine.
  auto sctx = server_ctx("server");
  auto srv = TlsEngine::create_server(sctx);
  ASSERT_TRUE(srv.ok());
  std::string plain, out;
  EXPECT_FALSE(srv.value()->on_cipher_in("EHLO x\r\n", plain, out).ok());
}

TEST_F(TlsEngineTest, CorruptedRecordAfterHandshakeFails) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.handshake());
  ASSERT_TRUE(p.server->write_plain("250 ok\r\n", p.s2c).ok());
  p.s2c[p.s2c.size() - 3] ^= 0x40;
  p.pump();
  EXPECT_TRUE(p.client_plain.empty());
  EXPECT_NE(p.client_error.find("TLS connection with localhost failed"), std::string::npos)
      << p.client_error;
}

TEST_F(TlsEngineTest, ShutdownSendsCloseNotify) {
  Pair p(client_ctx(client_cfg()), server_ctx("server"));
  ASSERT_TRUE(p.handshake());
  p.client->shutdown(p.c2s);
  EXPECT_FALSE(p.c2s.empty());
  p.pump();
  EXPECT_TRUE(p.server->peer_closed());
  EXPECT_TRUE(p.server_error.empty());
  EXPECT_FALSE(p.client->write_plain("late", p.c2s).ok());
}

TEST_F(TlsEngineTest, FailureDoesNotLeakIntoTheNextConnection) {
  auto sctx_bad = server_ctx("expired");
  auto sctx = server_ctx("server");
  auto cctx = client_ctx(client_cfg());
  Pair bad(cctx, sctx_bad);
  EXPECT_FALSE(bad.handshake());
  EXPECT_EQ(ERR_peek_error(), 0u);
  Pair good(cctx, sctx);
  EXPECT_TRUE(good.handshake()) << good.client_error;
}

}  // namespace
}  // namespace sb
