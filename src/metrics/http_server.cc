// The /metrics endpoint: request heads parsed here, connections on a loop thread of their own
// (the worker loops carry the mail and the coordinator's thread waits on SQLite commits:
// neither should wait for a scrape, nor a scrape for them).
#include "metrics/http_server.h"

#include <pthread.h>

#include <csignal>
#include <set>

#include "base/signal_mask.h"
#include "loop/tcp_conn.h"
#include "loop/tcp_listener.h"
#include "loop/worker.h"
#include "metrics/exposition.h"

namespace sb::metrics {

namespace {

constexpr uint64_t kIdleMs = 10000;  // a client that sends no complete request in this long

std::string reply(int code, std::string_view reason, std::string_view type, std::string_view body,
                  std::string_view extra = {}) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " ";
  r.append(reason).append("\r\nContent-Type: ").append(type);
  r.append("\r\nContent-Length: ").append(std::to_string(body.size()));
  r.append("\r\nConnection: close\r\n").append(extra).append("\r\n").append(body);
  return r;
}

// The server's thread never takes the run's signals (base/signal_mask.h).
void start_without_signals(Worker& w) {
  with_signals_blocked([&] { w.start(); });
}

}  // namespace

RequestHead parse_request_head(std::string_view received) {
  RequestHead h;
  size_t end = received.find("\r\n\r\n");
  size_t end_lf = received.find("\n\n");  // bare-LF clients (RFC 9112 §2.2 allows reading LF)
  if (end == std::string_view::npos && end_lf == std::string_view::npos) {
    h.state = received.size() > kMaxHead ? RequestHead::State::kTooLarge
                                         : RequestHead::State::kIncomplete;
    return h;
  }
  size_t eol = received.find('\n');
  std::string_view line = received.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // METHOD SP TARGET SP HTTP/x.y
  size_t s1 = line.find(' ');
  size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
  if (s1 == std::string_view::npos || s2 == std::string_view::npos || s1 == 0 || s2 == s1 + 1 ||
      line.substr(s2 + 1).rfind("HTTP/1.", 0) != 0) {
    h.state = RequestHead::State::kBad;
    return h;
  }
  h.method = line.substr(0, s1);
  h.target = line.substr(s1 + 1, s2 - s1 - 1);
  h.state = RequestHead::State::kComplete;
  return h;
}

std::string respond(const RequestHead& head, const std::function<std::string()>& render) {
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  if (head.state == RequestHead::State::kTooLarge) {
    return reply(431, "Request Header Fields Too Large", kText, "request head too large\n");
  }
  if (head.state != RequestHead::State::kComplete) {
    return reply(400, "Bad Request", kText, "bad request\n");
  }
  std::string_view path = head.target;
  if (size_t q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path != "/metrics") {
    return reply(404, "Not Found", kText, "not found: the metrics are at /metrics\n");
  }
  if (head.method != "GET") {
    return reply(405, "Method Not Allowed", kText, "only GET\n", "Allow: GET\r\n");
  }
  return reply(200, "OK", kContentType, render());
}

// ---- the server

struct MetricsServer::Impl {
  class Conn;
  explicit Impl(Render r) : worker(0), render(std::move(r)) {}
  Worker worker;
  Render render;
  std::unique_ptr<TcpListener> listener;
  std::set<Conn*> conns;
  std::shared_ptr<std::atomic<uint64_t>> scrapes;
  uint16_t port = 0;
};

class MetricsServer::Impl::Conn final : public ConnListener {
 public:
  explicit Conn(Impl& s) : srv_(s), tcp_(TcpConn::create(s.worker.loop(), this)) {
    srv_.conns.insert(this);
  }
  TcpConn* tcp() { return tcp_; }
  void start() { tcp_->set_deadline(tcp_->now_ms() + kIdleMs); }
  void on_connected() override {}
  void on_read(std::string_view data) override {
    if (answered_) return;  // Connection: close; anything after the first request is ignored
    in_.append(data);
    RequestHead h = parse_request_head(in_);
    if (h.state == RequestHead::State::kIncomplete) return;
    answered_ = true;
    std::string r = respond(h, srv_.render);
    if (r.rfind("HTTP/1.1 200 ", 0) == 0) srv_.scrapes->fetch_add(1);
    out_.append(r);
    tcp_->write(out_);
    tcp_->close(true);
  }
  void on_broken(std::string_view) override {}
  void on_timer() override { tcp_->close(false); }
  void on_closed() override {
    srv_.conns.erase(this);
    delete this;
  }
  void close_now() { tcp_->close(false); }

 private:
  Impl& srv_;
  TcpConn* tcp_;
  std::string in_;
  Outbox out_;
  bool answered_ = false;
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& addr,
                                                            Render render) {
  std::unique_ptr<MetricsServer> s(new MetricsServer());
  s->impl_ = std::make_unique<Impl>(std::move(render));
  s->scrapes_ = s->impl_->scrapes = std::make_shared<std::atomic<uint64_t>>(0);
  Impl* impl = s->impl_.get();
  // Bound before the loop runs, on this thread: an address that cannot be used is known
  // before the run sends anything.
  auto l = TcpListener::listen(impl->worker.loop(), addr, [impl](TcpListener& lis) {
    auto* c = new Impl::Conn(*impl);
    if (lis.accept(c->tcp())) c->start();  // on failure the conn closes and frees itself
  });
  if (!l.ok()) {
    // Started all the same, so that its destructor can stop it and free the handles.
    start_without_signals(impl->worker);
    return make_error(l.error().domain, "--metrics: " + l.error().message);
  }
  impl->listener = std::move(l).value();
  impl->port = impl->listener->port();
  start_without_signals(impl->worker);
  return s;
}

MetricsServer::~MetricsServer() {
  if (!impl_) return;
  Impl* impl = impl_.get();
  impl->worker.post([impl] {
    impl->listener.reset();
    std::set<Impl::Conn*> copy = impl->conns;
    for (Impl::Conn* c : copy) c->close_now();
  });
  impl->worker.stop_and_join();
}

uint16_t MetricsServer::port() const { return impl_->port; }

}  // namespace sb::metrics
