// SmppLink: one SMPP session (sms/smpp_session) over a TCP connection on a uv loop: bytes from
// the socket into the session, its PDUs out, its deadline on the connection's timer.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <string>

#include "base/outbox.h"
#include "loop/tcp_conn.h"
#include "sms/smpp_session.h"

struct uv_loop_s;

namespace sb {

class SmppLink : public ConnListener {
 public:
  // `cfg` and `host` must outlive the link; `on_end` runs once, after the connection closed
  // (end() then says why the session ended).
  SmppLink(uv_loop_s* loop, const SmppConfig& cfg, SmppHost& host, std::function<void()> on_end);
  ~SmppLink() override;
  SmppLink(const SmppLink&) = delete;
  SmppLink& operator=(const SmppLink&) = delete;

  void connect(const sockaddr_storage& addr);
  // The host has work again (after answering kWait), or is done (its next_message says kDone).
  void poke();
  // Ends at once (a stop, an abort): open messages come back deferred.
  void abort(const std::string& why);
  bool open() const { return conn_ != nullptr; }
  const SmppSession& session() const { return session_; }
  const SmppEnd& end() const { return session_.end(); }
  bool connected() const { return connected_; }

 private:
  void on_connected() override;
  void on_read(std::string_view data) override;
  void on_broken(std::string_view why) override;
  void on_timer() override;
  void on_closed() override;
  void flush();

  uv_loop_s* loop_;
  Outbox out_;
  SmppSession session_;
  TcpConn* conn_ = nullptr;
  std::function<void()> on_end_;
  bool connected_ = false;
  bool closing_ = false;
};

}  // namespace sb
