// Resolver: ARES_OPT_SOCK_STATE_CB → one uv_poll_t per socket → ares_process_fd, and one
// one-shot uv_timer_t re-armed from ares_timeout() after every event (as Node and Envoy do).
#include "dns/resolver.h"

#include <ctime>

#include <ares.h>
#include <arpa/inet.h>
#include <uv.h>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace sb::dns {

struct Resolver::Pending {
  Resolver* owner;
  QueryId id;
  QueryCallback cb;
  std::string name;
  RecordType type;
  bool cancelled = false;
  bool search = false;
};

namespace {

Error dns_error(std::string msg) { return make_error(ErrDomain::kAres, std::move(msg)); }

void free_poll(uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); }

std::string describe_status(int status) {
  switch (status) {
    case ARES_ETIMEOUT:
      return "timed out";
    case ARES_ESERVFAIL:
      return "server failure (SERVFAIL) from every DNS server";
    case ARES_EREFUSED:
      return "query refused by the DNS server";
    case ARES_ECONNREFUSED:
      return "DNS server unreachable (connection refused)";
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
      return "resolver shut down";
    default:
      return ares_strerror(status);
  }
}

}  // namespace

Result<ServerAddress> parse_server_address(std::string_view spec) {
  ServerAddress out;
  std::string host;
  std::string_view port;
  if (!spec.empty() && spec.front() == '[') {
    size_t close = spec.find(']');
    if (close == std::string_view::npos)
      return dns_error("bad DNS server '" + std::string(spec) + "': missing ']'");
    host = std::string(spec.substr(1, close - 1));
    std::string_view rest = spec.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return dns_error("bad DNS server '" + std::string(spec) + "'");
      port = rest.substr(1);
    }
  } else if (std::count(spec.begin(), spec.end(), ':') == 1) {
    size_t colon = spec.find(':');
    host = std::string(spec.substr(0, colon));
    port = spec.substr(colon + 1);
  } else {
    host = std::string(spec);  // IPv4, or a bare IPv6 address
  }
  if (inet_pton(AF_INET, host.c_str(), out.addr) == 1) {
    out.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), out.addr) == 1) {
    out.family = AF_INET6;
  } else {
    return dns_error("bad DNS server '" + std::string(spec) + "': not an IP address (IP[:PORT])");
  }
  if (spec.size() > 0 && port.data() != nullptr) {
    unsigned long p = 0;
    if (port.empty() || port.size() > 5)
      return dns_error("bad DNS server port in '" + std::string(spec) + "'");
    for (char c : port) {
      if (c < '0' || c > '9')
        return dns_error("bad DNS server port in '" + std::string(spec) + "'");
      p = p * 10 + static_cast<unsigned long>(c - '0');
    }
    if (p == 0 || p > 65535) return dns_error("bad DNS server port in '" + std::string(spec) + "'");
    out.port = static_cast<uint16_t>(p);
  }
  return out;
}

Resolver::Resolver(uv_loop_s* loop) : loop_(loop) {}

Result<std::unique_ptr<Resolver>> Resolver::create(uv_loop_s* loop, const ResolverConfig& cfg) {
  static std::once_flag once;
  static int init_status = ARES_SUCCESS;
  std::call_once(once, [] { init_status = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_status != ARES_SUCCESS) {
    return dns_error(std::string("c-ares initialisation failed: ") + ares_strerror(init_status));
  }
  if (cfg.timeout_ms <= 0 || cfg.tries <= 0)
    return dns_error("DNS timeout and tries must be positive");

  std::vector<ServerAddress> servers;
  for (const auto& s : cfg.servers) {
    auto a = parse_server_address(s);
    if (!a) return a.error();
    servers.push_back(a.value());
  }

  std::unique_ptr<Resolver> r(new Resolver(loop));
  r->max_in_flight_ = std::max<size_t>(1, cfg.max_in_flight);
  ares_options opts{};
  int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
  opts.sock_state_cb = &Resolver::on_sock_state;
  opts.sock_state_cb_data = r.get();
  opts.timeout = cfg.timeout_ms;
  opts.tries = cfg.tries;
  // NOCHECKRESP: c-ares 1.18 reports a SERVFAIL/REFUSED answer as "connection refused" after
  // trying the other servers; we want the real rcode in the message, and a server's
  // SERVFAIL is its resolver's final word anyway (the delivery is deferred, not bounced).
  opts.flags = ARES_FLAG_NOCHECKRESP;
  if (cfg.edns) {
    opts.flags |= ARES_FLAG_EDNS;
    opts.ednspsz = 1232;
    mask |= ARES_OPT_EDNSPSZ;
  }
  ares_channel ch = nullptr;
  int st = ares_init_options(&ch, &opts, mask);
  if (st != ARES_SUCCESS) return dns_error(std::string("c-ares channel: ") + ares_strerror(st));
  r->channel_ = ch;

  if (!servers.empty()) {
    std::vector<ares_addr_port_node> nodes(servers.size());
    for (size_t i = 0; i < servers.size(); ++i) {
      nodes[i].next = i + 1 < servers.size() ? &nodes[i + 1] : nullptr;
      nodes[i].family = servers[i].family;
      std::memcpy(&nodes[i].addr, servers[i].addr, servers[i].family == AF_INET ? 4 : 16);
      nodes[i].udp_port = servers[i].port;
      nodes[i].tcp_port = servers[i].port;
    }
    st = ares_set_servers_ports(ch, nodes.data());
    if (st != ARES_SUCCESS) {
      return dns_error(std::string("setting DNS servers: ") + ares_strerror(st));
    }
  }

  Resolver* self = r.get();
  r->timer_ = std::make_unique<Timer>(loop, [self] { self->on_timer(); });
  return r;
}

Resolver::~Resolver() {
  assert(ares_depth_ == 0 && "a Resolver must not be destroyed inside its own callback");
  shutdown();
}

QueryId Resolver::query(std::string_view name, RecordType type, QueryCallback cb) {
  return start(name, type, std::move(cb), false);
}

QueryId Resolver::search(std::string_view name, RecordType type, QueryCallback cb) {
  return start(name, type, std::move(cb), true);
}

QueryId Resolver::start(std::string_view name, RecordType type, QueryCallback cb, bool search) {
  if (shut_ || shutdown_requested_) return 0;
  auto* p = new Pending{this, next_id_++, std::move(cb), std::string(name), type};
  p->search = search;
  live_.emplace(p->id, p);
  ++started_;
  if (in_ares_ >= max_in_flight_) {
    // A burst of hundreds of questions at once overflows the UDP receive buffer (on loopback
    // each reply takes ~1 KB of it): the lost answers would cost a whole timeout each.
    waiting_.push_back(p);
    return p->id;
  }
  submit(p);
  return p->id;
}

void Resolver::submit(Pending* p) {
  ++in_ares_;
  // c-ares may complete a query inside ares_query (bad name, no servers); such results wait
  // in deferred_ for the timer, so a callback never runs inside query().
  ++ares_depth_;
  submitting_ = true;
  if (p->search) {
    ares_search(channel_, p->name.c_str(), 1 /* IN */, static_cast<int>(p->type),
                &Resolver::on_ares_done, p);
  } else {
    ares_query(channel_, p->name.c_str(), 1 /* IN */, static_cast<int>(p->type),
               &Resolver::on_ares_done, p);
  }
  submitting_ = false;
  --ares_depth_;
  after_ares();
}

void Resolver::cancel(QueryId id) {
  auto it = live_.find(id);
  if (it != live_.end()) it->second->cancelled = true;
}

void Resolver::on_ares_done(void* arg, int status, int /*timeouts*/, unsigned char* abuf,
                            int alen) {
  auto* p = static_cast<Pending*>(arg);
  Resolver* self = p->owner;
  std::string what = std::string(record_type_name(p->type)) + " lookup for " + p->name + ": ";
  auto make = [&]() -> Result<Answer> {
    bool has_packet = abuf != nullptr && alen > 0;
    if (has_packet &&
        (status == ARES_SUCCESS || status == ARES_ENODATA || status == ARES_ENOTFOUND ||
         status == ARES_ESERVFAIL || status == ARES_EREFUSED)) {
      auto r = parse_answer(abuf, static_cast<size_t>(alen));
      if (!r) return dns_error(what + r.error().message);
      if (status == ARES_ESERVFAIL || status == ARES_EREFUSED) {
        return dns_error(what + rcode_name(r->rcode) + " from the DNS server");
      }
      return r;
    }
    return dns_error(what + describe_status(status));
  };
  Result<Answer> r = make();
  if (self->submitting_) {
    self->deferred_.emplace_back(p, std::move(r));
    return;
  }
  self->deliver(p, std::move(r));
}

void Resolver::deliver(Pending* p, Result<Answer> r) {
  live_.erase(p->id);
  if (in_ares_ > 0) --in_ares_;
  // The freed slot goes to the oldest waiting question (not during a shutdown).
  while (!waiting_.empty() && in_ares_ < max_in_flight_ && !shutdown_requested_ && !shut_) {
    Pending* w = waiting_.front();
    waiting_.pop_front();
    submit(w);
  }
  if (!p->cancelled && p->cb) {
    ++ares_depth_;  // a shutdown() asked for inside the user's callback waits for us
    p->cb(std::move(r));
    --ares_depth_;
  }
  delete p;
}

void Resolver::on_sock_state(void* data, int fd, int readable, int writable) {
  auto* self = static_cast<Resolver*>(data);
  auto it = self->polls_.find(fd);
  if (!readable && !writable) {
    if (it != self->polls_.end()) {
      uv_poll_stop(it->second);
      it->second->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(it->second), free_poll);
      self->polls_.erase(it);
    }
    return;
  }
  uv_poll_t* h;
  if (it == self->polls_.end()) {
    h = new uv_poll_t;
    if (uv_poll_init_socket(self->loop_, h, fd) != 0) {
      // Without a poll handle this socket's answers are never read; c-ares' timer still fires
      // and fails the query (timeout), which is the honest outcome.
      delete h;
      return;
    }
    h->data = self;
    self->polls_.emplace(fd, h);
  } else {
    h = it->second;
  }
  int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
  uv_poll_start(h, events, &Resolver::on_poll);
}

uint64_t dns_thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {

// Adds the thread CPU time of a scope to a counter (what DNS costs the worker loop).
class CpuScope {
 public:
  explicit CpuScope(uint64_t& total) : total_(total), start_(dns_thread_cpu_ns()) {}
  ~CpuScope() { total_ += dns_thread_cpu_ns() - start_; }
  CpuScope(const CpuScope&) = delete;
  CpuScope& operator=(const CpuScope&) = delete;

 private:
  uint64_t& total_;
  uint64_t start_;
};

}  // namespace

void Resolver::on_poll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<Resolver*>(handle->data);
  if (self == nullptr || self->shut_) return;
  CpuScope cpu(self->cpu_ns_);
  int fd = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(handle), &fd);
  ares_socket_t rfd = ARES_SOCKET_BAD;
  ares_socket_t wfd = ARES_SOCKET_BAD;
  if (status < 0) {
    rfd = wfd = fd;  // let c-ares see the error on the socket and fail over
  } else {
    if (events & UV_READABLE) rfd = fd;
    if (events & UV_WRITABLE) wfd = fd;
  }
  ++self->ares_depth_;
  ares_process_fd(self->channel_, rfd, wfd);
  --self->ares_depth_;
  self->after_ares();
}

void Resolver::on_timer() {
  if (shut_) return;
  CpuScope cpu(cpu_ns_);
  auto ready = std::move(deferred_);
  deferred_.clear();
  for (auto& [p, r] : ready) deliver(p, std::move(r));
  ++ares_depth_;
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts, retries
  --ares_depth_;
  after_ares();
}

void Resolver::after_ares() {
  if (ares_depth_ > 0) return;
  if (shutdown_requested_) {
    do_shutdown();
    return;
  }
  rearm_timer();
}

void Resolver::rearm_timer() {
  if (shut_) return;
  if (!deferred_.empty()) {
    timer_->again(0);
    return;
  }
  timeval tv{};
  timeval* next = ares_timeout(channel_, nullptr, &tv);
  if (next == nullptr) {
    timer_->stop();
    return;
  }
  // Round up, so the timer never fires before c-ares considers the timeout due.
  uint64_t ms = static_cast<uint64_t>(next->tv_sec) * 1000 +
                static_cast<uint64_t>((next->tv_usec + 999) / 1000);
  timer_->again(ms);
}

void Resolver::shutdown() {
  if (shut_) return;
  shutdown_requested_ = true;
  if (ares_depth_ > 0) return;  // finished by after_ares() once c-ares has returned
  do_shutdown();
}

void Resolver::do_shutdown() {
  if (shut_) return;
  shutdown_requested_ = true;
  ++ares_depth_;
  // Results that completed inside ares_query first, then ares_destroy fails the rest
  // (ARES_EDESTRUCTION → "resolver shut down") and reports every socket closed.
  auto ready = std::move(deferred_);
  deferred_.clear();
  for (auto& [p, r] : ready) deliver(p, std::move(r));
  std::deque<Pending*> waiting;
  waiting.swap(waiting_);
  for (Pending* p : waiting) deliver(p, dns_error(std::string(record_type_name(p->type)) +
                                                 " lookup for " + p->name + ": resolver shut down"));
  if (channel_ != nullptr) {
    ares_destroy(channel_);
    channel_ = nullptr;
  }
  --ares_depth_;
  shut_ = true;
  for (auto& [fd, h] : polls_) {
    uv_poll_stop(h);
    h->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(h), free_poll);
  }
  polls_.clear();
  timer_.reset();  // closed now, freed by the loop's close callback
  for (auto& [id, p] : live_) delete p;  // none expected: ares_destroy completed them
  live_.clear();
}

}  // namespace sb::dns
