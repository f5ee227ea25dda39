// A listening socket: bind, listen, accept into TcpConn; freed in its close callback.
#include "loop/tcp_listener.h"

#include <netinet/in.h>
#include <uv.h>

#include "loop/tcp_conn.h"

namespace sb {

struct TcpListener::Handle {
  uv_tcp_t tcp{};
  TcpListener* owner = nullptr;
};

Result<std::unique_ptr<TcpListener>> TcpListener::listen(uv_loop_s* loop, const std::string& addr,
                                                         OnAccept on_accept) {
  sockaddr_storage ss{};
  std::string err;
  if (!parse_socket_address(addr, &ss, &err)) return make_error(ErrDomain::kConfig, err);
  std::unique_ptr<TcpListener> l(new TcpListener());
  l->on_accept_ = std::move(on_accept);
  l->h_ = new Handle;
  l->h_->owner = l.get();
  uv_tcp_init(loop, &l->h_->tcp);
  l->h_->tcp.data = l->h_;
  int rc = uv_tcp_bind(&l->h_->tcp, reinterpret_cast<const sockaddr*>(&ss), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->h_->tcp), 128, [](uv_stream_t* s, int st) {
      auto* h = static_cast<Handle*>(s->data);
      if (st != 0 || h->owner == nullptr) return;
      h->owner->on_accept_(*h->owner);
    });
  }
  if (rc != 0) {
    // The destructor closes the handle.
    return make_error(ErrDomain::kSys, "cannot listen on " + addr + ": " + uv_strerror(rc) + " (" +
                                           uv_err_name(rc) + ")");
  }
  sockaddr_storage bound{};
  int len = sizeof bound;
  if (uv_tcp_getsockname(&l->h_->tcp, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    l->port_ = bound.ss_family == AF_INET6
                   ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                   : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  return l;
}

TcpListener::~TcpListener() {
  if (h_ == nullptr) return;
  h_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->tcp),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

bool TcpListener::accept(TcpConn* conn) { return conn->accept_from(&h_->tcp); }

}  // namespace sb
