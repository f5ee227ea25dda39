// Resolver: c-ares driven by one worker's libuv loop; raw answers go to answer_parser.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "dns/answer_parser.h"
#include "loop/timer.h"

struct uv_loop_s;
struct uv_poll_s;
struct ares_channeldata;

namespace sb::dns {

struct ResolverConfig {
  // "IP", "IP:PORT", "IPv6", "[IPv6]:PORT" (--dns-server). Empty: the system's resolv.conf.
  std::vector<std::string> servers;
  // The first try's timeout per server; c-ares doubles it on each later round.
  int timeout_ms = 5000;
  int tries = 3;
  bool edns = true;
  // Questions handed to c-ares at once; the rest wait their turn (see Resolver::start).
  size_t max_in_flight = 64;  // advertise a 1232-byte UDP payload, so big MX sets rarely need TCP
};

// A parsed answer (which may carry NXDOMAIN or NODATA), or an error when no usable answer came
// (timeout, SERVFAIL/REFUSED from every server, network error, malformed packet).
using QueryCallback = std::function<void(Result<Answer>)>;
using QueryId = uint64_t;

// One per worker loop; not thread-safe. Callbacks run on the loop thread, never from inside
// query()/search(), never after cancel(id), and never after shutdown() returned.
class Resolver {
 public:
  static Result<std::unique_ptr<Resolver>> create(uv_loop_s* loop, const ResolverConfig& cfg);
  ~Resolver();  // shutdown() if not done; must not run inside one of this resolver's callbacks
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Asks for `name` (absolute; no search list). Returns 0 after shutdown(): then `cb` is
  // never called. Otherwise `cb` is called exactly once unless cancelled.
  QueryId query(std::string_view name, RecordType type, QueryCallback cb);
  // Like query() but applies the resolv.conf search list (ares_search).
  QueryId search(std::string_view name, RecordType type, QueryCallback cb);
  // The answer is no longer wanted: its callback will not run. c-ares cancels only
  // channel-wide, so the lookup itself runs to its end and is dropped then.
  void cancel(QueryId id);
  // Ends every lookup: pending callbacks run now with an error ("resolver shut down"), then
  // the sockets and the timer are closed (their memory is freed by the loop's close callbacks,
  // so the Resolver itself may be destroyed right after). Safe inside a callback: it then
  // takes effect when c-ares returns.
  void shutdown();

  size_t pending() const { return live_.size(); }
  uint64_t queries_started() const { return started_; }
  // Thread CPU time spent in c-ares processing and answer handling (parsing, the callbacks
  // they run) on this loop: what DNS costs, for the benchmark's share.
  uint64_t cpu_ns() const { return cpu_ns_; }

 private:
  struct Pending;
  Resolver(uv_loop_s* loop);
  QueryId start(std::string_view name, RecordType type, QueryCallback cb, bool search);
  static void on_sock_state(void* data, int fd, int readable, int writable);
  static void on_ares_done(void* arg, int status, int timeouts, unsigned char* abuf, int alen);
  static void on_poll(uv_poll_s* handle, int status, int events);
  void on_timer();
  void deliver(Pending* p, Result<Answer> r);
  void submit(Pending* p);  // hands a question to c-ares
  void after_ares();  // re-arms the timer, or finishes a shutdown asked for inside c-ares
  void rearm_timer();
  void do_shutdown();

  uv_loop_s* loop_;
  ares_channeldata* channel_ = nullptr;
  std::unique_ptr<Timer> timer_;  // null once shut down
  std::unordered_map<int, uv_poll_s*> polls_;
  std::unordered_map<QueryId, Pending*> live_;
  std::vector<std::pair<Pending*, Result<Answer>>> deferred_;  // completed inside ares_query
  QueryId next_id_ = 1;
  uint64_t started_ = 0;
  uint64_t cpu_ns_ = 0;
  std::deque<Pending*> waiting_;  // questions beyond max_in_flight_, in order
  size_t in_ares_ = 0;            // questions c-ares has now
  size_t max_in_flight_ = 64;
  int ares_depth_ = 0;  // > 0 while inside a c-ares call that may run callbacks
  bool submitting_ = false;
  bool shutdown_requested_ = false;
  bool shut_ = false;
};

// CPU time of the calling thread, in ns (CLOCK_THREAD_CPUTIME_ID).
uint64_t dns_thread_cpu_ns();

// Parses one --dns-server entry; exposed for the CLI's validation and for tests.
struct ServerAddress {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t addr[16] = {};
  uint16_t port = 53;
};
Result<ServerAddress> parse_server_address(std::string_view spec);

}  // namespace sb::dns
