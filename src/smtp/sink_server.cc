// The sink server: one listener on one loop; each connection feeds its own SinkEngine.
#include "smtp/sink_server.h"

#include <uv.h>

#include <cstdio>
#include <memory>

#include "loop/tcp_conn.h"

namespace sb {

namespace {

struct Server;

class SinkConn : public ConnListener {
 public:
  SinkConn(Server& s, uint64_t id);
  bool start(uv_stream_t* listener);
  void on_connected() override {}
  void on_read(std::string_view data) override;
  void on_broken(std::string_view) override {}
  void on_timer() override;
  void on_closed() override;

 private:
  void flush();
  Server& srv_;
  SinkEngine engine_;
  TcpConn* tcp_;
  std::string reply_;
  Outbox out_;
  bool closing_after_ = false;
  bool delaying_ = false;
};

struct Server {
  SinkServerConfig cfg;
  SinkCounters counters;
  uv_loop_t* loop = nullptr;
  uv_tcp_t listener{};
  uv_signal_t sigint{}, sigterm{};
  uv_timer_t stats{}, poll_stop{};
  FILE* record = nullptr;
  SinkLimits limits;
  uint64_t next_id = 0;
  std::atomic<bool>* stop = nullptr;
  uint64_t open = 0;
  bool stopping = false;
  uint64_t started_ms = 0;  // uv_now when listening began
};

SinkConn::SinkConn(Server& s, uint64_t id)
    : srv_(s), engine_(s.cfg.engine, s.counters, id), tcp_(TcpConn::create(s.loop, this)) {
  ++srv_.open;
  engine_.set_limits(&s.limits);
}

bool SinkConn::start(uv_stream_t* listener) {
  if (!tcp_->accept_from(listener)) return false;
  engine_.start(reply_);
  flush();
  return true;
}

void SinkConn::on_read(std::string_view data) {
  if (closing_after_) return;
  engine_.set_now(tcp_->now_ms() - srv_.started_ms);
  bool keep = engine_.on_data(data, reply_);
  if (srv_.record != nullptr) {
    std::string rec = engine_.take_recorded();
    if (!rec.empty()) {
      std::fwrite(rec.data(), 1, rec.size(), srv_.record);
      std::fflush(srv_.record);
    }
  }
  if (!keep) closing_after_ = true;
  flush();
}

void SinkConn::flush() {
  if (srv_.cfg.engine.reply_delay_ms > 0 && !reply_.empty()) {
    if (!delaying_) {
      delaying_ = true;
      tcp_->set_deadline(tcp_->now_ms() + srv_.cfg.engine.reply_delay_ms);
    }
    return;
  }
  if (!reply_.empty()) {
    out_.append(reply_);
    reply_.clear();
    tcp_->write(out_);
  }
  if (closing_after_) tcp_->close(true);
}

void SinkConn::on_timer() {
  delaying_ = false;
  if (!reply_.empty()) {
    out_.append(reply_);
    reply_.clear();
    tcp_->write(out_);
  }
  if (closing_after_) tcp_->close(true);
}

void SinkConn::on_closed() {
  --srv_.open;
  delete this;
}

void on_signal(uv_signal_t* s, int) {
  auto* srv = static_cast<Server*>(s->data);
  srv->stopping = true;
  uv_stop(srv->loop);
}

}  // namespace

std::string sink_counters_json(const SinkCounters& c, uint64_t uptime_ms) {
  char buf[768];
  std::snprintf(buf, sizeof buf,
                "{\"uptime_ms\":%llu,\"connections\":%llu,\"messages\":%llu,\"recipients\":%llu,\"bytes\":%llu,"
                "\"rejected_rcpts\":%llu,\"deferred_rcpts\":%llu,\"dropped\":%llu,"
                "\"rate_limited\":%llu,\"first_ms\":%lld,\"last_ms\":%lld,\"fault_421_ms\":%lld,"
                "\"messages_before_421\":%llu}",
                static_cast<unsigned long long>(uptime_ms),
                static_cast<unsigned long long>(c.connections),
                static_cast<unsigned long long>(c.messages),
                static_cast<unsigned long long>(c.recipients),
                static_cast<unsigned long long>(c.bytes),
                static_cast<unsigned long long>(c.rejected_rcpts),
                static_cast<unsigned long long>(c.deferred_rcpts),
                static_cast<unsigned long long>(c.dropped),
                static_cast<unsigned long long>(c.rate_limited), static_cast<long long>(c.first_ms),
                static_cast<long long>(c.last_ms), static_cast<long long>(c.fault_421_ms),
                static_cast<unsigned long long>(c.messages_before_421));
  return buf;
}

Status run_sink(const SinkServerConfig& cfg, std::atomic<bool>* stop) {
  auto srv = std::make_unique<Server>();
  srv->cfg = cfg;
  srv->stop = stop;
  sockaddr_storage addr{};
  std::string err;
  if (!parse_socket_address(cfg.listen, &addr, &err)) {
    return make_error(ErrDomain::kConfig, "--listen: " + err);
  }
  if (!cfg.record_path.empty()) {
    srv->record = std::fopen(cfg.record_path.c_str(), "ab");
    if (srv->record == nullptr) {
      return make_error(ErrDomain::kConfig, "--record: cannot open " + cfg.record_path);
    }
    srv->cfg.engine.record = true;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  srv->loop = &loop;
  uv_tcp_init(&loop, &srv->listener);
  srv->listener.data = srv.get();
  int rc = uv_tcp_bind(&srv->listener, reinterpret_cast<sockaddr*>(&addr), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(&srv->listener), 1024,
                   [](uv_stream_t* l, int status) {
                     auto* s = static_cast<Server*>(l->data);
                     if (status != 0 || s->stopping) return;
                     auto* c = new SinkConn(*s, ++s->next_id);
                     c->start(l);  // on failure the conn closes and frees itself
                   });
  }
  Status result;
  if (rc != 0) {
    result = make_error(ErrDomain::kSys, "cannot listen on " + cfg.listen + ": " + uv_strerror(rc));
  } else {
    uv_signal_init(&loop, &srv->sigint);
    uv_signal_init(&loop, &srv->sigterm);
    srv->sigint.data = srv->sigterm.data = srv.get();
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_timer_init(&loop, &srv->stats);
    srv->stats.data = srv.get();
    srv->started_ms = uv_now(&loop);
    if (cfg.stats_interval_ms > 0) {
      uv_timer_start(&srv->stats, [](uv_timer_t* t) {
        auto* s = static_cast<Server*>(t->data);
        // uptime_ms: a late timer makes a longer interval; rates divide by the real one.
        std::fprintf(stderr, "%s\n",
                     sink_counters_json(s->counters, uv_now(s->loop) - s->started_ms).c_str());
      }, cfg.stats_interval_ms, cfg.stats_interval_ms);
    }
    uv_timer_init(&loop, &srv->poll_stop);
    srv->poll_stop.data = srv.get();
    if (stop != nullptr) {
      uv_timer_start(&srv->poll_stop, [](uv_timer_t* t) {
        auto* s = static_cast<Server*>(t->data);
        if (s->stop->load()) {
          s->stopping = true;
          uv_stop(s->loop);
        }
      }, 50, 50);
    }
    std::fprintf(stderr, "smtpblast sink listening on %s\n", cfg.listen.c_str());
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  // At exit every handle is closed without callbacks: open connections are abandoned with the
  // process (their peers see the connection drop, as from a killed server).
  uv_walk(&loop, [](uv_handle_t* h, void*) {
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  }, nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (result.ok()) {
    std::printf("%s\n", sink_counters_json(srv->counters, uv_now(&loop) - srv->started_ms).c_str());
  }
  std::fflush(stdout);
  if (srv->record != nullptr) std::fclose(srv->record);
  uv_loop_close(&loop);
  return result;
}

}  // namespace sb
