#include "sms/smpp_conn.h"

#include <sys/socket.h>

#include "loop/tls_context.h"
#include "loop/tls_engine.h"

namespace sb {

Result<SmppConn*> SmppConn::start(uv_loop_s* loop, const SmppConnConfig& cfg, SmppHost& host,
                                  SmppConnOwner& owner) {
  sockaddr_storage addr{};
  std::string error;
  if (!parse_socket_address(cfg.address, &addr, &error)) {
    return make_error(ErrDomain::kConfig, "SMSC address '" + cfg.address + "': " + error);
  }
  if (cfg.tls && cfg.tls_ctx == nullptr) {
    return make_error(ErrDomain::kConfig, "SMSC over TLS without a TLS context");
  }
  auto* c = new SmppConn(cfg, host, owner);
  c->tcp_ = TcpConn::create(loop, c);
  c->tcp_->connect(reinterpret_cast<const sockaddr*>(&addr));
  c->tcp_->set_deadline(c->tcp_->now_ms() + cfg.connect_timeout_ms);
  return c;
}

SmppConn::SmppConn(const SmppConnConfig& cfg, SmppHost& host, SmppConnOwner& owner)
    : cfg_(cfg), owner_(owner), session_(cfg.session, host, out_) {}

SmppConn::~SmppConn() = default;

void SmppConn::on_connected() {
  connected_ = true;
  if (cfg_.tls) {
    start_tls();  // the bind goes over TLS once the handshake is done
    return;
  }
  session_.on_connected(tcp_->now_ms());
  sync();
}

void SmppConn::start_tls() {
  auto e = TlsEngine::create_client(cfg_.tls_ctx, cfg_.tls_host);
  if (!e.ok()) {
    why_ = e.error().message;
    session_.force_close(why_, true, tcp_->now_ms());
    sync();
    return;
  }
  tls_ = std::move(e).value();
  cipher_.clear();
  Status st = tls_->start_handshake(cipher_);
  send_cipher();
  if (!st.ok()) {
    why_ = st.error().message;
    session_.force_close(why_, true, tcp_->now_ms());
    sync();
    return;
  }
  tcp_->set_deadline(tcp_->now_ms() + cfg_.handshake_timeout_ms);
}

void SmppConn::send_cipher() {
  if (cipher_.empty()) return;
  enc_.append(cipher_);
  cipher_.clear();
  tcp_->write(enc_);
}

void SmppConn::on_read(std::string_view data) {
  if (tls_ == nullptr) {
    session_.on_data(data, tcp_->now_ms());
    sync();
    return;
  }
  plain_.clear();
  cipher_.clear();
  bool was_done = tls_->handshake_done();
  Status st = tls_->on_cipher_in(data, plain_, cipher_);
  send_cipher();
  if (!st.ok()) {
    // A certificate, name or version failure will not go away by reconnecting: a stop.
    why_ = st.error().message;
    session_.force_close(why_, !was_done, tcp_->now_ms());
    sync();
    return;
  }
  if (!was_done && tls_->handshake_done()) {
    tls_version_ = tls_->info().protocol;
    session_.on_connected(tcp_->now_ms());
  }
  if (!plain_.empty()) session_.on_data(plain_, tcp_->now_ms());
  sync();
}

void SmppConn::on_broken(std::string_view why) {
  if (!connected_) {
    why_ = why.find("connection refused") != std::string_view::npos
               ? "connection refused by " + cfg_.address + " (no SMSC listens there)"
               : std::string(why) + " (" + cfg_.address + ")";
    session_.force_close(why_, false, tcp_->now_ms());
    return;
  }
  session_.on_closed(why, tcp_->now_ms());
  if (why_.empty()) why_ = session_.end().text;
}

void SmppConn::on_timer() {
  if (!connected_) {
    why_ = "connect to " + cfg_.address + ": timed out after " +
           std::to_string(cfg_.connect_timeout_ms / 1000) + " s";
    session_.force_close(why_, false, tcp_->now_ms());
    tcp_->close(false);
    return;
  }
  if (tls_ != nullptr && !tls_->handshake_done()) {
    why_ = "timed out during the TLS handshake with " + cfg_.address;
    session_.force_close(why_, false, tcp_->now_ms());
    tcp_->close(false);
    return;
  }
  session_.on_timer(tcp_->now_ms());
  sync();
}

void SmppConn::on_closed() {
  if (why_.empty()) why_ = session_.end().text;
  owner_.smpp_conn_closed(*this);
  delete this;
}

void SmppConn::poke() {
  if (tcp_->closing()) return;
  session_.poke(tcp_->now_ms());
  sync();
}

void SmppConn::abort(std::string_view why, bool fatal) {
  if (tcp_->closing()) return;
  why_ = std::string(why);
  session_.force_close(why, fatal, tcp_->now_ms());
  tcp_->close(false);
}

// After every event: the session's output to the socket (through TLS when it is on), its
// deadline on the timer, and the close when it is finished.
void SmppConn::sync() {
  if (tcp_->closing()) return;
  if (!out_.empty()) {
    if (tls_ != nullptr) {
      if (tls_->handshake_done()) {
        cipher_.clear();
        (void)tls_->write_plain(out_, cipher_);
        out_.clear();
        send_cipher();
      }
    } else {
      tcp_->write(out_);
    }
  }
  if (session_.wants_close()) {
    if (why_.empty()) why_ = session_.end().text;
    if (tls_ != nullptr && session_.end().cause == SmppEndCause::kNone) {
      cipher_.clear();
      tls_->shutdown(cipher_);
      send_cipher();
    }
    // Only a clean end (unbind answered) waits for the output to drain; a peer that broke
    // the protocol or timed out may have stopped reading.
    tcp_->close(session_.end().cause == SmppEndCause::kNone ||
                session_.end().cause == SmppEndCause::kUnbound);
    return;
  }
  if (tls_ != nullptr && !tls_->handshake_done()) return;  // the handshake deadline holds
  tcp_->set_deadline(session_.deadline_ms());
}

}  // namespace sb
