// Connection pool: keeps up to N SMTP sessions to one destination open on one worker loop.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "loop/timer.h"
#include "smtp/session.h"

struct uv_loop_s;

namespace sb {

class TlsContext;

// Hosts (by IP) whose opportunistic TLS handshake failed in this run: later connections to
// them go plaintext from the start. Shared by every pool of a run; thread-safe.
class PlaintextHosts {
 public:
  void add(const std::string& ip) {
    std::lock_guard<std::mutex> g(mu_);
    ips_.insert(ip);
  }
  bool contains(const std::string& ip) const {
    std::lock_guard<std::mutex> g(mu_);
    return ips_.count(ip) != 0;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> ips_;
};

struct PoolConfig {
  std::vector<sockaddr_storage> addrs;  // tried in turn
  // Per address (same order), the host name TLS sends as SNI; empty: tls_host for all.
  std::vector<std::string> addr_names;
  // Direct delivery: stay on the first address that works (MX preference order) and move to
  // the next only when a connection to it fails; one connection at a time until a session has
  // reached the point of sending mail. Without it, connections go round-robin over addrs.
  bool failover = false;
  // --tls opportunistic: a failed handshake puts the host here and the pool reconnects to it
  // in plaintext (never plaintext on the connection whose handshake failed). May be null.
  std::shared_ptr<PlaintextHosts> plaintext_hosts;
  std::string name;  // for messages: "relay 127.0.0.1:2525"
  uint32_t connections = 1;
  uint32_t connect_timeout_ms = 30000;
  // Consecutive failures to reach the point of sending mail before the pool gives up.
  uint32_t max_connect_failures = 10;
  // Consecutive connect or greeting timeouts before it gives up (each costs a timeout);
  // 0: only max_connect_failures counts.
  uint32_t max_timeouts = 2;
  SessionConfig session;
  // TLS (session.tls != kNone): the context shared by all connections (certificate checks,
  // resumption) and the name to verify and send as SNI.
  std::shared_ptr<TlsContext> tls;
  std::string tls_host;
  bool keep_transcript = false;  // the check verb
};

class PoolHost : public SessionHost {
 public:
  // Whether another connection is worth opening (work queued, or due soon).
  virtual bool has_work() = 0;
  // The pool cannot reach its destination any more (connect failures in a row, greeting
  // refused ...); no connection is open and none will be opened.
  // `fatal`: a session ended in a way reconnecting cannot cure (credentials, TLS).
  virtual void pool_failed(const std::string& why, bool fatal) = 0;
  // Every connection has closed and has_work() said no.
  virtual void pool_idle() = 0;
  // Milliseconds to wait before a new connection may open (a connect-rate limit); 0 = now.
  virtual uint64_t connect_delay_ms() { return 0; }
  // Asked just before each new connection: false keeps it unopened (a budget shared with
  // other pools is used up); the host pokes the pool again when the budget frees up.
  virtual bool reserve_connection() { return true; }
  // A session reached the point of sending mail (once per connection); its conn_info() has
  // the connect and TLS handshake times.
  virtual void session_ready(const Session& s) { (void)s; }
  // A connection ended (every one opened ends here once); `tls` describes its TLS ("" without).
  virtual void session_ended(const Session& s, const std::string& tls) {
    (void)s;
    (void)tls;
  }
  // A TLS handshake completed on one of the pool's connections (for the metrics).
  virtual void tls_established(bool resumed) { (void)resumed; }
};

struct PoolStats {
  uint64_t connections_opened = 0;
  uint64_t connections_failed = 0;
  uint64_t tls_downgrades = 0;  // opportunistic TLS failed: reconnected in plaintext
  uint64_t sessions_ready = 0;
};

class ConnectionPool {
 public:
  ConnectionPool(uv_loop_s* loop, const PoolConfig& cfg, PoolHost& host);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // Work is available: wakes idle sessions and opens connections up to the limit.
  void poke();
  // Closes every connection at once; open recipients come back deferred.
  void abort(const std::string& why);
  // A stop (SIGTERM): connections that have nothing in flight (still connecting, greeting,
  // logging in) close at once; the others finish what they carry and QUIT. Nothing new opens.
  void stop(const std::string& why);
  size_t open_connections() const { return conns_.size(); }
  const PoolStats& stats() const { return stats_; }

 private:
  class Conn;
  void open_one();
  void open_more();   // opens connections up to the limits, while there is work
  void conn_ready();  // a session reached the point of sending mail
  void conn_closed(Conn* c);
  void schedule_retry();
  void arm_retry(uint64_t delay_ms);
  void on_retry();

  uv_loop_s* loop_;
  PoolConfig cfg_;
  PoolHost& host_;
  std::vector<Conn*> conns_;
  Timer retry_timer_;
  uint32_t failures_ = 0;
  uint32_t next_addr_ = 0;
  bool retry_armed_ = false;
  bool proven_ = false;  // a session reached the point of sending mail since the last failure
  bool failed_ = false;
  bool aborting_ = false;
  bool stopping_ = false;
  uint32_t refusals_ = 0;          // connections refused in a row
  uint32_t timeouts_ = 0;          // connect or greeting timeouts in a row
  uint32_t fd_cap_ = 0;            // out of descriptors: at most this many open; 0 = no cap
  bool first_login_here_ = false;  // this pool holds the run's first login attempt
  std::string last_failure_;
  std::string failure_;
  bool fatal_ = false;
  PoolStats stats_;
};

}  // namespace sb
