// TcpListener: one listening TCP socket on a uv loop; each connection it accepts becomes a
// TcpConn of the caller's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/result.h"

struct uv_loop_s;

namespace sb {

class TcpConn;

class TcpListener {
 public:
  // Runs once per incoming connection; it calls accept() to adopt it (or not, to drop it).
  using OnAccept = std::function<void(TcpListener&)>;

  // Binds `addr` ("127.0.0.1:9464", "[::1]:9464"; numeric, no DNS) and listens. Call it on the
  // loop's thread, or before the loop runs. Errors name the address: kConfig when it is not
  // an address, kSys when it cannot be bound (in use, not local, no permission).
  static Result<std::unique_ptr<TcpListener>> listen(uv_loop_s* loop, const std::string& addr,
                                                     OnAccept on_accept);
  // Closes the socket (on the loop's thread); the handle's memory goes in its close callback.
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // Inside OnAccept: the pending connection becomes `conn`'s stream; false when accepting
  // failed (the conn is then closing).
  bool accept(TcpConn* conn);
  uint16_t port() const { return port_; }

 private:
  TcpListener() = default;
  struct Handle;
  Handle* h_ = nullptr;
  OnAccept on_accept_;
  uint16_t port_ = 0;
};

}  // namespace sb
