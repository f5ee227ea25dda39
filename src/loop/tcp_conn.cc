// TcpConn: libuv TCP stream plumbing. All uv ownership rules live here (STYLE.md §3).
#include "loop/tcp_conn.h"

#include <uv.h>

#include <cstring>
#include <new>

namespace sb {

namespace {
constexpr size_t kReadBuf = 64 * 1024;
constexpr size_t kMaxIov = 512;
}  // namespace

struct TcpConn::Handles {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t connect_req;
  uv_write_t write_req;
  std::vector<uv_buf_t> bufs;
  uv_loop_t* loop;
};

TcpConn* TcpConn::create(uv_loop_t* loop, ConnListener* listener) {
  return new TcpConn(loop, listener);
}

TcpConn::TcpConn(uv_loop_t* loop, ConnListener* listener)
    : h_(new Handles), listener_(listener), read_buf_(kReadBuf) {
  h_->loop = loop;
  uv_tcp_init(loop, &h_->tcp);
  uv_timer_init(loop, &h_->timer);
  h_->tcp.data = this;
  h_->timer.data = this;
  h_->connect_req.data = this;
  h_->write_req.data = this;
}

TcpConn::~TcpConn() { delete h_; }

uint64_t TcpConn::now_ms() const { return uv_now(h_->loop); }

std::string TcpConn::peer() const {
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(&h_->tcp, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    return std::string(ip) + ":" + std::to_string(port);
  }
  auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss);
  uv_ip6_name(a6, ip, sizeof ip);
  port = ntohs(a6->sin6_port);
  return "[" + std::string(ip) + "]:" + std::to_string(port);
}

void TcpConn::connect(const sockaddr* addr) {
  uv_tcp_nodelay(&h_->tcp, 1);
  int rc = uv_tcp_connect(&h_->connect_req, &h_->tcp, addr, [](uv_connect_t* req, int status) {
    auto* self = static_cast<TcpConn*>(req->data);
    if (self->closing_) return;
    if (status != 0) {
      self->local_resource_error_ = status == UV_EMFILE || status == UV_ENFILE;
      self->broken(describe_connect_error(status));
      return;
    }
    self->resume_read();
    self->listener_->on_connected();
  });
  if (rc != 0) {
    // A call that returns an error never calls its callback: report from the loop instead,
    // so the listener never sees a callback from inside its own connect() call.
    // (This is where running out of descriptors shows: the socket is created here.)
    local_resource_error_ = rc == UV_EMFILE || rc == UV_ENFILE;
    deferred_error_ = describe_connect_error(rc);
    uv_timer_start(&h_->timer, [](uv_timer_t* t) {
      auto* self = static_cast<TcpConn*>(t->data);
      self->broken(self->deferred_error_);
    }, 0, 0);
  }
}

bool TcpConn::accept_from(void* server_stream) {
  if (uv_accept(static_cast<uv_stream_t*>(server_stream),
                reinterpret_cast<uv_stream_t*>(&h_->tcp)) != 0) {
    close(false);
    return false;
  }
  uv_tcp_nodelay(&h_->tcp, 1);
  resume_read();
  return true;
}

void TcpConn::pause_read() {
  if (reading_ && !closing_) {
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&h_->tcp));
    reading_ = false;
  }
}

void TcpConn::resume_read() {
  if (reading_ || closing_) return;
  reading_ = true;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&h_->tcp),
      [](uv_handle_t* h, size_t, uv_buf_t* buf) {
        auto* self = static_cast<TcpConn*>(h->data);
        *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(self->read_buf_.size()));
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* self = static_cast<TcpConn*>(s->data);
        if (self->closing_) return;
        if (n > 0) {
          self->listener_->on_read(std::string_view(buf->base, static_cast<size_t>(n)));
        } else if (n == UV_EOF) {
          self->broken("connection closed by peer");
        } else if (n < 0) {
          self->broken(uv_strerror(static_cast<int>(n)));
        }
      });
}

void TcpConn::write(Outbox& out) {
  if (out.empty() || closing_) {
    out.clear();
    return;
  }
  if (pending_.empty()) {
    pending_.swap(out);  // the common case: no copy at all
  } else {
    pending_.append_from(out);
  }
  out.clear();
  if (!writing_) start_write();
}

void TcpConn::start_write() {
  while (!pending_.empty() && !closing_) {
    inflight_.swap(pending_);
    pending_.clear();
    auto& bufs = h_->bufs;
    bufs.clear();
    for (size_t i = 0; i < inflight_.slice_count(); ++i) {
      std::string_view s = inflight_.slice(i);
      bufs.push_back(uv_buf_init(const_cast<char*>(s.data()), static_cast<unsigned>(s.size())));
    }
    size_t total = inflight_.bytes();
    size_t off = 0;
    // Try writing synchronously first (one writev); uv_try_write takes at most IOV_MAX bufs.
    while (off < bufs.size()) {
      size_t cnt = std::min(kMaxIov, bufs.size() - off);
      int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&h_->tcp), bufs.data() + off,
                           static_cast<unsigned>(cnt));
      if (n == UV_EAGAIN) break;
      if (n < 0) {
        broken(std::string("write: ") + uv_strerror(n));
        return;
      }
      total -= static_cast<size_t>(n);
      size_t left = static_cast<size_t>(n);
      while (left > 0 && off < bufs.size()) {
        if (bufs[off].len <= left) {
          left -= bufs[off].len;
          ++off;
        } else {
          bufs[off].base += left;
          bufs[off].len -= static_cast<unsigned>(left);
          left = 0;
        }
      }
      if (n == 0) break;
    }
    if (total == 0) {
      inflight_.clear();
      continue;
    }
    writing_ = true;
    int rc = uv_write(&h_->write_req, reinterpret_cast<uv_stream_t*>(&h_->tcp), bufs.data() + off,
                      static_cast<unsigned>(bufs.size() - off), [](uv_write_t* req, int status) {
                        auto* self = static_cast<TcpConn*>(req->data);
                        self->writing_ = false;
                        self->inflight_.clear();
                        if (status != 0) {
                          if (!self->closing_) self->broken(std::string("write: ") + uv_strerror(status));
                          else if (self->close_after_write_) self->really_close();
                          return;
                        }
                        if (self->close_after_write_ && self->pending_.empty()) {
                          self->really_close();
                          return;
                        }
                        if (!self->closing_) self->start_write();
                      });
    if (rc != 0) {
      writing_ = false;
      broken(std::string("write: ") + uv_strerror(rc));
    }
    return;
  }
  if (close_after_write_ && !writing_) really_close();
}

void TcpConn::set_deadline(uint64_t at_ms) {
  // The timer already carries a failed connect's report (due at once) or the drain bound:
  // a deadline must not replace either (a lost EMFILE became "connect: timed out").
  if (closing_ || close_after_write_ || !deferred_error_.empty() || at_ms == deadline_) return;
  deadline_ = at_ms;
  if (at_ms == 0) {
    uv_timer_stop(&h_->timer);
    return;
  }
  uint64_t now = uv_now(h_->loop);
  uv_timer_start(&h_->timer, [](uv_timer_t* t) {
    auto* self = static_cast<TcpConn*>(t->data);
    self->deadline_ = 0;
    if (!self->closing_) self->listener_->on_timer();
  }, at_ms > now ? at_ms - now : 0, 0);
}

void TcpConn::broken(std::string why) {
  if (closing_ || broken_) return;
  broken_ = true;
  listener_->on_broken(why);
  close(false);
}

void TcpConn::close(bool flush_first) {
  if (closing_) return;
  if (flush_first && !close_after_write_ && (writing_ || !pending_.empty())) {
    close_after_write_ = true;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&h_->tcp));
    reading_ = false;
    // A peer that stopped reading would hold this close (and the run) forever: the drain
    // is bounded, then the connection is reset.
    deadline_ = 0;
    uv_timer_start(&h_->timer, [](uv_timer_t* t) {
      static_cast<TcpConn*>(t->data)->really_close();
    }, kDrainMs, 0);
    if (!writing_) start_write();
    return;
  }
  really_close();
}

void TcpConn::really_close() {
  if (closing_) return;
  closing_ = true;
  auto cb = [](uv_handle_t* h) { on_close_cb(h); };
  // Bytes still unsent (a peer that stopped reading, an aborted transaction): reset, so
  // neither this process nor the kernel keeps trying to deliver them.
  const bool unsent = writing_ || !pending_.empty();
  if (!unsent || uv_tcp_close_reset(&h_->tcp, cb) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&h_->tcp), cb);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->timer), cb);
}

std::string describe_connect_error(int uv_status) {
  if (uv_status == UV_EMFILE || uv_status == UV_ENFILE) {
    return std::string("connect: ") + uv_strerror(uv_status) + " (" + uv_err_name(uv_status) +
           "): this process is out of file descriptors; raise `ulimit -n` or lower "
           "--connections";
  }
  return std::string("connect: ") + uv_strerror(uv_status);
}

void TcpConn::on_close_cb(void* handle) {
  auto* self = static_cast<TcpConn*>(static_cast<uv_handle_t*>(handle)->data);
  if (--self->open_handles_ > 0) return;
  // Memory is freed only after every close callback (STYLE.md §3).
  ConnListener* l = self->listener_;
  delete self;
  l->on_closed();
}

bool parse_socket_address(const std::string& spec, void* out, std::string* error) {
  std::string host;
  std::string port;
  if (!spec.empty() && spec[0] == '[') {
    size_t e = spec.find(']');
    if (e == std::string::npos || e + 1 >= spec.size() || spec[e + 1] != ':') {
      *error = "expected [IPv6]:PORT in '" + spec + "'";
      return false;
    }
    host = spec.substr(1, e - 1);
    port = spec.substr(e + 2);
  } else {
    size_t c = spec.rfind(':');
    if (c == std::string::npos) {
      *error = "missing :PORT in '" + spec + "'";
      return false;
    }
    host = spec.substr(0, c);
    port = spec.substr(c + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p <= 0 || p > 65535) {
    *error = "bad port '" + port + "' in '" + spec + "'";
    return false;
  }
  auto* ss = static_cast<sockaddr_storage*>(out);
  std::memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host.c_str(), static_cast<int>(p), reinterpret_cast<sockaddr_in*>(ss)) == 0) return true;
  if (uv_ip6_addr(host.c_str(), static_cast<int>(p), reinterpret_cast<sockaddr_in6*>(ss)) == 0) return true;
  *error = "'" + host + "' is not an IP address";
  return false;
}

}  // namespace sb
