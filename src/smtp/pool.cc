// Connection pool: opens sessions, replaces those that QUIT after M messages, backs off when
// the destination fails, and reports when it is idle or unreachable.
#include "smtp/pool.h"

#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>

#include "base/clock.h"
#include "loop/tcp_conn.h"
#include "loop/tls_engine.h"

namespace sb {

namespace {

std::string format_ip(const sockaddr* a) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr, ip, sizeof ip);
  } else {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a)->sin_addr, ip, sizeof ip);
  }
  return ip;
}

std::string format_peer(const sockaddr* a) {
  if (a->sa_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(a);
    return "[" + format_ip(a) + "]:" + std::to_string(ntohs(v6->sin6_port));
  }
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(a);
  return format_ip(a) + ":" + std::to_string(ntohs(v4->sin_port));
}

}  // namespace

// One connection: a TcpConn carrying a Session. Lives until the TcpConn's close callback.
class ConnectionPool::Conn : public ConnListener {
 public:
  Conn(ConnectionPool& pool, const sockaddr* addr, uint32_t addr_index)
      : pool_(pool),
        scfg_(pool.cfg_.session),
        session_(scfg_, pool.host_, out_),
        addr_index_(addr_index),
        ip_(format_ip(addr)) {
    static std::atomic<uint64_t> next_id{1};
    info_.id = next_id.fetch_add(1, std::memory_order_relaxed);
    info_.peer = format_peer(addr);
    info_.ip = ip_;
    info_.port =
        ntohs(addr->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port
                                          : reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    if (scfg_.tls == TlsMode::kOpportunistic && pool.cfg_.plaintext_hosts != nullptr &&
        pool.cfg_.plaintext_hosts->contains(ip_)) {
      scfg_.tls = TlsMode::kNone;  // its handshake failed earlier in this run
    }
    session_.set_conn_info(&info_);
    session_.keep_transcript(pool.cfg_.keep_transcript);
    tcp_ = TcpConn::create(pool.loop_, this);
    started_us_ = SystemClock::mono_now_us();
    tcp_->connect(addr);
    tcp_->set_deadline(tcp_->now_ms() + pool.cfg_.connect_timeout_ms);
  }

  void on_connected() override {
    connected_ = true;
    info_.connect_us = SystemClock::mono_now_us() - started_us_;
    if (scfg_.tls == TlsMode::kImplicit) {
      start_tls();  // the greeting comes over TLS
      return;
    }
    session_.on_connected(tcp_->now_ms());
    sync();
  }
  void on_read(std::string_view data) override {
    if (tls_ != nullptr) {
      plain_.clear();
      cipher_.clear();
      bool was_done = tls_->handshake_done();
      Status st = tls_->on_cipher_in(data, plain_, cipher_);
      send_cipher();
      if (!st.ok()) {
        if (!was_done && downgrade()) {
          session_.on_tls_failed(st.error().message + "; reconnecting without TLS", false);
        } else {
          // Certificate, name and version failures will not go away by reconnecting.
          session_.on_tls_failed(st.error().message, !was_done);
        }
        sync();
        return;
      }
      if (!was_done && tls_->handshake_done()) {
        TlsInfo ti = tls_->info();
        info_.tls_version = ti.protocol;
        pool_.host_.tls_established(ti.resumed);
        session_.on_tls_ready(tcp_->now_ms());
        if (scfg_.tls == TlsMode::kImplicit) session_.on_connected(tcp_->now_ms());
      }
      // The handshake's time, for the load generator (the session's reaction included: µs).
      if (!was_done && tls_->handshake_done())
        info_.tls_us = SystemClock::mono_now_us() - started_us_;
      if (!plain_.empty()) session_.on_data(plain_, tcp_->now_ms());
      sync();
      return;
    }
    session_.on_data(data, tcp_->now_ms());
    sync();
  }
  void on_broken(std::string_view why) override {
    if (!connected_) {
      // The TCP connect itself failed: say what happened to which address ("connection
      // refused by 127.0.0.1:25"), not "connection lost before the final reply".
      refused_ = why.find("connection refused") != std::string_view::npos;
      local_ = tcp_->local_resource_error();
      why_ = refused_ ? "connection refused by " + info_.peer +
                            " (nothing listens there, or a "
                            "firewall rejects the connection)"
             : local_ ? std::string(why)
                      : std::string(why) + " (" + info_.peer + ")";
      session_.force_close(why_, false, tcp_->now_ms());
      return;
    }
    session_.on_closed(why, tcp_->now_ms());
    if (why_.empty())
      why_ = session_.end_reason().empty() ? std::string(why) : session_.end_reason();
  }
  void on_timer() override {
    if (tls_ != nullptr && !tls_->handshake_done()) {
      (void)downgrade();
      session_.on_tls_failed("timed out during the TLS handshake", false);
      sync();
      return;
    }
    if (!connected_seen()) {
      timed_out_ = true;
      why_ =
          "connect: timed out after " + std::to_string(pool_.cfg_.connect_timeout_ms / 1000) + " s";
      session_.on_closed(why_, tcp_->now_ms());
      tcp_->close(false);
      return;
    }
    session_.on_timer(tcp_->now_ms());
    // A reply that never came before the session could send mail (a server that accepts and
    // never greets): the pool stops opening connections in parallel to such a host.
    if (session_.wants_close() && !session_.ready_reached()) timed_out_ = true;
    sync();
  }
  void on_closed() override { pool_.conn_closed(this); }

  void poke() {
    if (tcp_->closing()) return;
    session_.poke(tcp_->now_ms());
    sync();
  }
  void abort(const std::string& why) {
    if (tcp_->closing()) return;
    session_.on_closed(why, tcp_->now_ms());
    tcp_->close(false);
  }
  // A stop: nothing of this connection is in flight yet (it has not reached the point of
  // sending mail), so it closes now instead of waiting out a greeting or login.
  bool stop_if_idle(const std::string& why) {
    if (tcp_->closing() || session_.ready_reached()) return false;
    abort(why);
    return true;
  }
  const Session& session() const { return session_; }
  const std::string& why() const { return why_; }
  bool refused() const { return refused_; }
  bool timed_out() const { return timed_out_; }
  bool local_resource_error() const { return local_; }
  uint32_t addr_index() const { return addr_index_; }
  bool downgraded() const { return downgraded_; }
  std::string tls_summary() const {
    if (tls_ == nullptr || !tls_->handshake_done()) return "";
    TlsInfo i = tls_->info();
    std::string s = i.protocol + " " + i.cipher;
    if (!i.peer_subject.empty())
      s += ", certificate " + i.peer_subject + " issued by " + i.peer_issuer;
    s += i.verify_enabled ? ", verification " + i.verify_result
                          : ", verification OFF (would be: " + i.verify_result + ")";
    if (i.resumed) s += ", session resumed";
    return s;
  }

 private:
  bool connected_seen() const { return connected_; }
  // Opportunistic TLS whose handshake failed: this connection ends (no plaintext on it, since
  // an attacker can make a handshake fail), and the host is remembered for plaintext.
  bool downgrade() {
    if (scfg_.tls != TlsMode::kOpportunistic || pool_.cfg_.plaintext_hosts == nullptr) return false;
    pool_.cfg_.plaintext_hosts->add(ip_);
    downgraded_ = true;
    return true;
  }
  void start_tls() {
    const std::string& name =
        addr_index_ < pool_.cfg_.addr_names.size() && !pool_.cfg_.addr_names[addr_index_].empty()
            ? pool_.cfg_.addr_names[addr_index_]
            : pool_.cfg_.tls_host;
    auto e = TlsEngine::create_client(pool_.cfg_.tls, name);
    if (!e.ok()) {
      session_.on_tls_failed(e.error().message, true);
      sync();
      return;
    }
    tls_ = std::move(e).value();
    started_us_ = SystemClock::mono_now_us();  // the connect is timed: now the handshake
    cipher_.clear();
    Status st = tls_->start_handshake(cipher_);
    send_cipher();
    if (!st.ok()) {
      session_.on_tls_failed(st.error().message, true);
      sync();
      return;
    }
    tcp_->set_deadline(tcp_->now_ms() + pool_.cfg_.session.timeouts.ehlo);
  }
  void send_cipher() {
    if (cipher_.empty()) return;
    enc_.append(cipher_);
    cipher_.clear();
    tcp_->write(enc_);
  }

  // After every event: hand the session's output to the socket (through TLS when it is on),
  // follow its deadline, and close when it is finished.
  void sync() {
    if (session_.wants_tls() && tls_ == nullptr) start_tls();
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
    if (!ready_seen_ && session_.ready_reached()) {
      ready_seen_ = true;
      pool_.host_.session_ready(session_);
      pool_.conn_ready();
    }
    if (session_.wants_close()) {
      if (why_.empty()) why_ = session_.end_reason();
      // Only a clean end (QUIT answered) flushes what is queued. After a fatal reply, a
      // protocol error or a timeout the peer may have stopped reading: waiting for the
      // output to drain would hold the run forever, so the connection is reset.
      tcp_->close(session_.end_reason().empty());
      return;
    }
    if (tls_ != nullptr && !tls_->handshake_done()) return;  // the handshake deadline holds
    tcp_->set_deadline(session_.deadline_ms());
  }

  ConnectionPool& pool_;
  Outbox out_;
  Outbox enc_;
  std::unique_ptr<TlsEngine> tls_;
  std::string plain_;
  std::string cipher_;
  ConnInfo info_;       // before session_: the session points to it
  SessionConfig scfg_;  // the pool's, TLS turned off for a host that failed opportunistic TLS
  Session session_;
  TcpConn* tcp_;
  uint32_t addr_index_;
  std::string ip_;
  std::string why_;
  bool connected_ = false;
  uint64_t started_us_ = 0;  // when the connect, then the TLS handshake, began
  bool refused_ = false;
  bool timed_out_ = false;
  bool local_ = false;
  bool downgraded_ = false;
  bool ready_seen_ = false;
};

ConnectionPool::ConnectionPool(uv_loop_t* loop, const PoolConfig& cfg, PoolHost& host)
    : loop_(loop), cfg_(cfg), host_(host), retry_timer_(loop, [this] { on_retry(); }) {}

ConnectionPool::~ConnectionPool() = default;

void ConnectionPool::poke() {
  if (failed_ || aborting_) return;
  // By index: a poked session that reaches MAIL may open connections (conn_ready).
  for (size_t i = 0, n = conns_.size(); i < n; ++i) conns_[i]->poke();
  open_more();
}

void ConnectionPool::conn_ready() {
  // Failover: the host works; the other connections the limit allows may open now.
  if (proven_ || failed_ || aborting_) return;
  proven_ = true;
  failures_ = 0;
  open_more();
}

void ConnectionPool::open_more() {
  while (!retry_armed_ && conns_.size() < cfg_.connections && host_.has_work()) {
    // One connection probes the destination until a session is ready: a relay that accepts
    // and never greets (or refuses) costs one connection's timeout, not N in parallel.
    // Direct delivery fails over to the next address from this one connection too.
    if (!proven_ && !conns_.empty()) break;
    // Out of file descriptors: no more connections than those open now (none: retried).
    if (fd_cap_ != 0 && conns_.size() >= fd_cap_) break;
    if (Credentials* cr = cfg_.session.credentials; cr != nullptr && !cr->verified()) {
      // The first login of the run decides whether the credentials work: one connection,
      // on one pool, tries it; the others wait (a short timer re-checks).
      if (!first_login_here_ && !cr->claim_first_login()) {
        arm_retry(100);
        break;
      }
      if (!cr->verified()) {
        first_login_here_ = true;
        if (!conns_.empty()) break;
      }
    }
    if (uint64_t wait = host_.connect_delay_ms(); wait > 0) {
      arm_retry(wait);
      break;
    }
    if (!host_.reserve_connection()) break;
    open_one();
  }
}

void ConnectionPool::open_one() {
  uint32_t i =
      (cfg_.failover ? next_addr_ : next_addr_++) % static_cast<uint32_t>(cfg_.addrs.size());
  ++stats_.connections_opened;
  conns_.push_back(new Conn(*this, reinterpret_cast<const sockaddr*>(&cfg_.addrs[i]), i));
}

void ConnectionPool::stop(const std::string& why) {
  stopping_ = true;
  retry_timer_.stop();
  retry_armed_ = false;
  std::vector<Conn*> copy = conns_;
  for (Conn* c : copy) c->stop_if_idle(why);
  // Sessions under way finish their transactions and QUIT (the host has nothing more).
  for (size_t i = 0, n = conns_.size(); i < n && i < conns_.size(); ++i) conns_[i]->poke();
  if (conns_.empty()) host_.pool_idle();
}

void ConnectionPool::abort(const std::string& why) {
  aborting_ = true;
  std::vector<Conn*> copy = conns_;
  for (Conn* c : copy) c->abort(why);
  retry_timer_.stop();
  retry_armed_ = false;
  if (conns_.empty()) host_.pool_idle();
}

void ConnectionPool::conn_closed(Conn* c) {
  conns_.erase(std::find(conns_.begin(), conns_.end(), c));
  host_.session_ended(c->session(), c->tls_summary());
  if (first_login_here_) {
    first_login_here_ = false;
    // Ended before the credentials were known good (not a 535: that is fatal): let the
    // next connection, on any pool, try.
    if (Credentials* cr = cfg_.session.credentials;
        cr != nullptr && !cr->verified() && !c->session().fatal()) {
      cr->release_first_login();
    }
  }
  const bool reached = c->session().ready_reached();
  const bool downgraded = c->downgraded() && !reached;
  if (c->session().fatal() && !failed_) {
    // Reconnecting cannot cure this (credentials, TLS refused or unverifiable): stop now.
    failed_ = true;
    fatal_ = true;
    failure_ = cfg_.name + ": " + c->session().end_reason();
    std::vector<Conn*> copy = conns_;
    for (Conn* o : copy) o->abort("giving up on " + cfg_.name);
  }
  if (reached) {
    ++stats_.sessions_ready;
    failures_ = 0;
    proven_ = true;
  } else if (downgraded) {
    ++stats_.tls_downgrades;  // not the host's failure: it is tried again, in plaintext
  } else {
    proven_ = false;
    if (cfg_.failover && c->addr_index() == next_addr_ % cfg_.addrs.size()) {
      next_addr_ = (next_addr_ + 1) % static_cast<uint32_t>(cfg_.addrs.size());
    }
    ++stats_.connections_failed;
    ++failures_;
    last_failure_ = c->why().empty() ? "connection closed before the greeting" : c->why();
  }
  const bool refused = c->refused();
  const bool timed_out = c->timed_out();
  const bool local = c->local_resource_error();
  delete c;
  if (aborting_ || stopping_) {
    if (conns_.empty()) host_.pool_idle();
    return;
  }
  if (!reached && !downgraded) {
    refusals_ = refused ? refusals_ + 1 : 0;
    timeouts_ = timed_out ? timeouts_ + 1 : 0;
    if (local) {
      // Our own descriptor limit, not the destination's fault: keep the connections that
      // are open and open no more than that; with none open it counts as a failure (the run
      // must end rather than spin), named as what it is.
      if (!conns_.empty()) {
        --failures_;
        --stats_.connections_failed;
        fd_cap_ = static_cast<uint32_t>(conns_.size());
        proven_ = true;
      }
    }
  }
  // Each greeting or connect timeout costs minutes: a host that timed out twice in a row is
  // given up (direct delivery still tries each of its addresses once).
  if (!failed_ && cfg_.max_timeouts != 0 && timeouts_ >= cfg_.max_timeouts &&
      !(cfg_.failover && failures_ < cfg_.addrs.size())) {
    failed_ = true;
    failure_ =
        cfg_.name + ": " + std::to_string(timeouts_) +
        " connections in a row timed out before the server was ready; last: " + last_failure_;
    std::vector<Conn*> copy = conns_;
    for (Conn* o : copy) o->abort("giving up on " + cfg_.name);
  }
  if (!failed_ && failures_ >= cfg_.max_connect_failures) {
    failed_ = true;
    failure_ =
        cfg_.name + ": " + std::to_string(failures_) + " connection attempts in a row failed";
    if (refusals_ >= failures_) {
      failure_ += " (every one refused: is the server running, and is this the right port?)";
    } else if (refusals_ > 0) {
      failure_ += " (the last " + std::to_string(refusals_) + " refused)";
    }
    failure_ += "; last: " + last_failure_;
    std::vector<Conn*> copy = conns_;
    for (Conn* o : copy) o->abort("giving up on " + cfg_.name);
  }
  if (failed_) {
    if (conns_.empty()) host_.pool_failed(failure_, fatal_);  // once, after the last close
    return;
  }
  if (!reached && !downgraded &&
      !(cfg_.failover && failures_ < cfg_.addrs.size())) {  // failover: the next MX at once
    schedule_retry();
  } else if (host_.has_work()) {
    poke();
  }
  if (conns_.empty() && !retry_armed_ && !host_.has_work()) host_.pool_idle();
}

void ConnectionPool::schedule_retry() {
  if (retry_armed_) return;
  // Exponential backoff from 100 ms to 5 s: a restarting relay is retried quickly, a dead
  // one is not hammered.
  arm_retry(std::min<uint64_t>(5000, 100ull << std::min<uint32_t>(failures_ - 1, 6)));
}

void ConnectionPool::arm_retry(uint64_t delay_ms) {
  retry_armed_ = true;
  retry_timer_.again(delay_ms);
}

void ConnectionPool::on_retry() {
  retry_armed_ = false;
  if (failed_ || aborting_) return;
  if (!host_.has_work()) {
    if (conns_.empty()) host_.pool_idle();
    return;
  }
  poke();
}

}  // namespace sb
