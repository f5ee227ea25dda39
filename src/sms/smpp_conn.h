// SmppConn: one SMPP session over a libuv TCP stream, optionally TLS (implicit, from the start).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "base/outbox.h"
#include "base/result.h"
#include "loop/tcp_conn.h"
#include "sms/smpp_session.h"

struct uv_loop_s;

namespace sb {

class TlsContext;
class TlsEngine;
class SmppConn;

struct SmppConnConfig {
  // A numeric address: "127.0.0.1:2775", "[::1]:2775" (resolving a host name is the owner's).
  std::string address;
  // TLS from the first byte (SMPP has no STARTTLS); tls_ctx then verifies the SMSC as the
  // context says (its sni_host, or tls_host here).
  bool tls = false;
  std::shared_ptr<TlsContext> tls_ctx;
  std::string tls_host;
  uint32_t connect_timeout_ms = 10000;
  uint32_t handshake_timeout_ms = 10000;
  SmppConfig session;
};

class SmppConnOwner {
 public:
  virtual ~SmppConnOwner() = default;
  // The last call for `c`: its socket is closed, every message it was handed has had its
  // outcome, c.session().end() and c.why() say why it ended; c is freed after this returns.
  virtual void smpp_conn_closed(SmppConn& c) = 0;
};

// Owns itself: start() allocates, the close callback frees (after smpp_conn_closed). The
// config, host and owner must outlive it.
class SmppConn : public ConnListener {
 public:
  // Starts connecting; an address that does not parse is an error (nothing was started).
  static Result<SmppConn*> start(uv_loop_s* loop, const SmppConnConfig& cfg, SmppHost& host,
                                 SmppConnOwner& owner);
  // The host has messages again (after answering kWait).
  void poke();
  // Ends at once: open messages are deferred; `fatal` marks the end as a stop.
  void abort(std::string_view why, bool fatal);
  const SmppSession& session() const { return session_; }
  // Why the connection ended, for a user: the connect failure, the TLS failure, or the
  // session's end text ("" after a clean unbind).
  const std::string& why() const { return why_; }
  bool connected() const { return connected_; }
  // "TLSv1.3" once a handshake completed, else "".
  const std::string& tls_version() const { return tls_version_; }

  // ConnListener
  void on_connected() override;
  void on_read(std::string_view data) override;
  void on_broken(std::string_view why) override;
  void on_timer() override;
  void on_closed() override;

 private:
  SmppConn(const SmppConnConfig& cfg, SmppHost& host, SmppConnOwner& owner);
  ~SmppConn() override;
  void start_tls();
  void send_cipher();
  void sync();

  const SmppConnConfig& cfg_;
  SmppConnOwner& owner_;
  Outbox out_;
  Outbox enc_;
  SmppSession session_;
  TcpConn* tcp_ = nullptr;
  std::unique_ptr<TlsEngine> tls_;
  std::string plain_;
  std::string cipher_;
  std::string why_;
  std::string tls_version_;
  bool connected_ = false;
};

}  // namespace sb
