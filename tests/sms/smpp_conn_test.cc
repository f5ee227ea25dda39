// SmppConn on a real uv loop against a scripted SMSC on loopback (a blocking socket server on
// a thread, speaking the PDUs of smsc_bytes.h).
#include "sms/smpp_conn.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/ssl.h>

#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "loop/tls_context.h"
#include "sms/smsc_bytes.h"

namespace sb {
namespace {

struct Pdu {
  uint32_t id = 0, seq = 0;
  std::string body;
};

// The SMSC's side of the socket, plain or TLS (blocking OpenSSL over the accepted fd).
struct Io {
  int fd = -1;
  SSL* ssl = nullptr;
  bool read_full(char* p, size_t n) {
    while (n > 0) {
      int r = ssl ? SSL_read(ssl, p, static_cast<int>(n)) : static_cast<int>(::read(fd, p, n));
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  bool read_pdu(Pdu& p) {
    char h[16];
    if (!read_full(h, 16)) return false;
    std::string_view hv(h, 16);
    uint32_t len = test::get32(hv, 0);
    p.id = test::get32(hv, 4);
    p.seq = test::get32(hv, 12);
    p.body.resize(len - 16);
    return len == 16 || read_full(p.body.data(), p.body.size());
  }
  void write_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      int w = ssl ? SSL_write(ssl, s.data() + off, static_cast<int>(s.size() - off))
                  : static_cast<int>(::write(fd, s.data() + off, s.size() - off));
      if (w <= 0) return;
      off += static_cast<size_t>(w);
    }
  }
};

// A one-connection SMSC on 127.0.0.1, on an ephemeral port; `script` runs on the accepted
// connection (after a TLS handshake when `tls` is given). The destructor joins it.
class Smsc {
 public:
  explicit Smsc(std::function<void(Io&)> script, std::shared_ptr<TlsContext> tls = nullptr) {
    lfd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(lfd_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, script, tls] {
      Io io;
      io.fd = ::accept(lfd_, nullptr, nullptr);
      if (io.fd < 0) return;
      if (tls != nullptr) {
        io.ssl = SSL_new(tls->native());
        SSL_set_fd(io.ssl, io.fd);
        if (SSL_accept(io.ssl) == 1) script(io);
        SSL_free(io.ssl);
      } else {
        script(io);
      }
      ::close(io.fd);
    });
  }
  ~Smsc() {
    ::shutdown(lfd_, SHUT_RDWR);
    thread_.join();
    ::close(lfd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int lfd_;
  uint16_t port_ = 0;
  std::thread thread_;
};

// The usual SMSC: binds, accepts every submit_sm with a receipt, answers unbind.
void accept_all(Io& io, std::vector<Pdu>* seen) {
  Pdu p;
  while (io.read_pdu(p)) {
    if (seen) seen->push_back(p);
    if (p.id == smpp_cmd::kBindTransceiver) io.write_all(test::bind_resp(p.seq));
    if (p.id == smpp_cmd::kSubmitSm) {
      std::string id = "id" + std::to_string(p.seq);
      io.write_all(test::submit_resp(p.seq, 0, id) +
                   test::receipt(100 + p.seq, "447911123456", id, "DELIVRD"));
    }
    if (p.id == smpp_cmd::kUnbind) {
      io.write_all(test::pdu(smpp_cmd::kUnbindResp, 0, p.seq));
      return;
    }
  }
}

class Host : public SmppHost, public SmppConnOwner {
 public:
  std::deque<SmsMessage> msgs;
  size_t next = 0;
  std::vector<SmsVerdict> verdicts;
  std::vector<std::string> texts;
  std::vector<DeliveryReceipt> receipts;
  bool closed = false;
  SmppEnd end;
  std::string why;

  Next next_message(SmsMessage*& out) override {
    if (next == msgs.size()) return Next::kDone;
    out = &msgs[next++];
    return Next::kMessage;
  }
  void message_outcome(SmsMessage&, const SmsOutcome& o) override {
    verdicts.push_back(o.verdict);
    texts.emplace_back(o.text);
  }
  void on_receipt(const DeliveryReceipt& r) override { receipts.push_back(r); }
  void on_mobile_originated(const MobileOriginated&) override {}
  void smpp_conn_closed(SmppConn& c) override {
    closed = true;
    end = c.session().end();
    why = c.why();
  }
};

void run(SmppConnConfig& cfg, Host& host) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  auto c = SmppConn::start(&loop, cfg, host, host);
  ASSERT_TRUE(c.ok()) << c.error().message;
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  EXPECT_TRUE(host.closed);
  EXPECT_EQ(host.verdicts.size(), host.next) << "every message handed out has one outcome";
}

SmppConnConfig config(const std::string& address) {
  SmppConnConfig cfg;
  cfg.address = address;
  cfg.session.system_id = "user";
  cfg.session.password = "pw";
  cfg.session.source_addr = "Shop";
  cfg.connect_timeout_ms = 3000;
  cfg.session.response_timeout_ms = 3000;
  return cfg;
}

TEST(SmppConn, SendsAndUnbindsOverTcp) {
  std::vector<Pdu> seen;
  Host host;
  for (int i = 0; i < 3; ++i) host.msgs.push_back(SmsMessage{"+447911123456", "Hello", 0});
  {
    Smsc smsc([&](Io& io) { accept_all(io, &seen); });
    SmppConnConfig cfg = config(smsc.address());
    run(cfg, host);
  }
  EXPECT_EQ(host.verdicts, std::vector<SmsVerdict>(3, SmsVerdict::kSent));
  EXPECT_EQ(host.end.cause, SmppEndCause::kNone);
  EXPECT_EQ(host.why, "");
  // The receipts came before the unbind's answer; deliver_sm_resp went back for each.
  EXPECT_EQ(host.receipts.size(), 3u);
  int resps = 0;
  for (const Pdu& p : seen) resps += p.id == smpp_cmd::kDeliverSmResp;
  EXPECT_EQ(resps, 3);
}

TEST(SmppConn, ADroppedConnectionDefers) {
  Smsc smsc([&](Io& io) {
    Pdu p;
    while (io.read_pdu(p)) {
      if (p.id == smpp_cmd::kBindTransceiver) io.write_all(test::bind_resp(p.seq));
      if (p.id == smpp_cmd::kSubmitSm) return;  // and close
    }
  });
  Host host;
  host.msgs.push_back(SmsMessage{"+447911123456", "Hello", 0});
  SmppConnConfig cfg = config(smsc.address());
  run(cfg, host);
  ASSERT_EQ(host.verdicts.size(), 1u);
  EXPECT_EQ(host.verdicts[0], SmsVerdict::kDeferred);
  EXPECT_EQ(host.end.cause, SmppEndCause::kConnectionLost);
  EXPECT_FALSE(host.end.fatal);
}

TEST(SmppConn, BindRefusedIsAStopWithTheReason) {
  Smsc smsc([&](Io& io) {
    Pdu p;
    if (io.read_pdu(p)) io.write_all(test::bind_resp(p.seq, 0x0F));
    io.read_pdu(p);  // until the client closes
  });
  Host host;
  host.msgs.push_back(SmsMessage{"+447911123456", "Hello", 0});
  SmppConnConfig cfg = config(smsc.address());
  run(cfg, host);
  EXPECT_TRUE(host.end.fatal);
  EXPECT_NE(host.why.find("ESME_RINVSYSID"), std::string::npos) << host.why;
  EXPECT_EQ(host.next, 0u);
}

TEST(SmppConn, ConnectionRefusedSaysSo) {
  // A port nothing listens on: bound, then closed.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  Host host;
  SmppConnConfig cfg = config("127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  run(cfg, host);
  EXPECT_NE(host.why.find("connection refused"), std::string::npos) << host.why;
}

// The certificates of tools/make_test_certs.sh (as tests/loop/tls_engine_test.cc uses them).
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
    std::filesystem::remove_all(dir_, ec);
  }

 private:
  Certs() {
    std::filesystem::path src;
    if (const char* env = std::getenv("SMTPBLAST_SOURCE_DIR")) {
      src = env;
    } else {
      src = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
    }
    dir_ = std::filesystem::temp_directory_path() / ("sb-sms-tls-" + std::to_string(::getpid()));
    std::string cmd = "bash '" + (src / "tools" / "make_test_certs.sh").string() + "' '" +
                      dir_.string() + "' >/dev/null 2>&1";
    ok_ = std::system(cmd.c_str()) == 0 && std::filesystem::exists(dir_ / "server.pem");
  }
  std::filesystem::path dir_;
  bool ok_ = false;
};

std::shared_ptr<TlsContext> client_tls(const std::string& ca) {
  TlsClientConfig c;
  c.ca_file = Certs::get().file(ca);
  c.sni_host = "localhost";
  auto r = TlsContext::create_client(c);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r.value() : nullptr;
}

std::shared_ptr<TlsContext> server_tls() {
  auto r =
      TlsContext::create_server(Certs::get().file("server.pem"), Certs::get().file("server.key"));
  EXPECT_TRUE(r.ok());
  return r.ok() ? r.value() : nullptr;
}

TEST(SmppConn, SendsOverTls) {
  ASSERT_TRUE(Certs::get().ok()) << "tools/make_test_certs.sh failed";
  Host host;
  host.msgs.push_back(SmsMessage{"+447911123456", "Hello over TLS", 0});
  std::string version;
  {
    Smsc smsc([&](Io& io) { accept_all(io, nullptr); }, server_tls());
    SmppConnConfig cfg = config(smsc.address());
    cfg.tls = true;
    cfg.tls_ctx = client_tls("ca.pem");
    run(cfg, host);
  }
  EXPECT_EQ(host.verdicts, std::vector<SmsVerdict>{SmsVerdict::kSent});
  EXPECT_EQ(host.end.cause, SmppEndCause::kNone) << host.why;
  EXPECT_EQ(host.receipts.size(), 1u);
}

TEST(SmppConn, AnUntrustedSmscCertificateIsAStop) {
  ASSERT_TRUE(Certs::get().ok()) << "tools/make_test_certs.sh failed";
  Host host;
  host.msgs.push_back(SmsMessage{"+447911123456", "Hello", 0});
  {
    Smsc smsc([&](Io& io) { accept_all(io, nullptr); }, server_tls());
    SmppConnConfig cfg = config(smsc.address());
    cfg.tls = true;
    TlsClientConfig c;  // the system CAs only: the test CA is unknown
    c.sni_host = "localhost";
    auto ctx = TlsContext::create_client(c);
    ASSERT_TRUE(ctx.ok());
    cfg.tls_ctx = ctx.value();
    run(cfg, host);
  }
  EXPECT_TRUE(host.end.fatal) << host.why;
  EXPECT_NE(host.why.find("certificate"), std::string::npos) << host.why;
  EXPECT_EQ(host.next, 0u);
}

TEST(SmppConn, ABadAddressIsAConfigError) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  Host host;
  SmppConnConfig cfg = config("smsc.example:2775");
  auto c = SmppConn::start(&loop, cfg, host, host);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().domain, ErrDomain::kConfig);
  uv_loop_close(&loop);
}

}  // namespace
}  // namespace sb
