// latency_proxy: a TCP proxy on loopback that adds a fixed one-way delay, for the latency
// benchmark (bench/bench_latency.py, issue 17 goal 3); this machine's kernel has no netem.
//
//   latency_proxy --listen HOST:PORT --target HOST:PORT --delay-ms D
//
// Every chunk read from either side is held D ms and then written to the other side, in order,
// so a request/reply round trip through the proxy costs 2·D on top of loopback. Bandwidth is
// not limited (a chunk is only delayed, never split into slower pieces), like a long fat pipe.
// One epoll loop, one timerfd; prints "listening HOST:PORT" once ready. A half close (EOF) is
// delayed like data and then passed on with shutdown(SHUT_WR). Stops on SIGTERM/SIGINT.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>

namespace {

using Nanos = int64_t;

Nanos now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Chunk {
  Nanos due = 0;
  std::string data;  // empty: the peer's EOF, passed on as shutdown(SHUT_WR)
  size_t off = 0;
};

// One direction of a proxied connection: bytes read from `from` wait in `queue` until due.
struct Pipe {
  int from = -1;
  int to = -1;
  std::deque<Chunk> queue;
  size_t queued_bytes = 0;
  bool eof_read = false;
  bool eof_sent = false;
  bool blocked = false;  // the last write hit EAGAIN: wait for EPOLLOUT on `to`
};

struct Session {
  int client = -1;
  int server = -1;
  bool connected = false;
  bool client_watched = false;  // registered with epoll (a socket with no interest is not:
  bool server_watched = false;  // a peer's level-triggered HUP would spin the loop)
  Pipe up;                      // client -> server
  Pipe down;                    // server -> client
};

// Reading stops while this many bytes wait in one direction (keeps memory bounded; far above
// the bandwidth-delay product of a benchmark run).
constexpr size_t kMaxQueued = 64u << 20;

int g_epoll = -1;
int g_timer = -1;
Nanos g_delay = 0;
Nanos g_armed = 0;  // when the timerfd fires next (0: disarmed)
std::unordered_map<int, std::shared_ptr<Session>> g_by_fd;
// Chunks become due in arrival order, so one FIFO of (due, session) is a valid timer queue.
std::deque<std::pair<Nanos, std::weak_ptr<Session>>> g_due;
volatile sig_atomic_t g_stop = 0;

bool parse_hostport(const std::string& s, sockaddr_storage* ss, socklen_t* len) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), s.substr(colon + 1).c_str(), &hints, &res) != 0) return false;
  std::memcpy(ss, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

void arm(Nanos due) {
  if (g_armed != 0 && g_armed <= due) return;
  itimerspec its{};
  Nanos rel = due - now_ns();
  if (rel < 1000) rel = 1000;
  its.it_value.tv_sec = rel / 1000000000;
  its.it_value.tv_nsec = rel % 1000000000;
  timerfd_settime(g_timer, 0, &its, nullptr);
  g_armed = due;
}

void set_interest(int fd, uint32_t events, bool* watched) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (events == 0) {
    if (*watched) epoll_ctl(g_epoll, EPOLL_CTL_DEL, fd, nullptr);
    *watched = false;
    return;
  }
  epoll_ctl(g_epoll, *watched ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  *watched = true;
}

void watch(Session& s) {
  // Interest: read while the direction out of a socket is open and not over the cap; write
  // while a due chunk could not be written completely.
  auto mask = [](const Pipe& in, const Pipe& out) {
    uint32_t m = 0;
    if (!in.eof_read && in.queued_bytes < kMaxQueued) m |= EPOLLIN | EPOLLRDHUP;
    if (out.blocked) m |= EPOLLOUT;
    return m;
  };
  set_interest(s.client, mask(s.up, s.down), &s.client_watched);
  if (s.connected) set_interest(s.server, mask(s.down, s.up), &s.server_watched);
}

void close_session(const std::shared_ptr<Session>& s) {
  for (int fd : {s->client, s->server}) {
    if (fd < 0) continue;
    epoll_ctl(g_epoll, EPOLL_CTL_DEL, fd, nullptr);
    g_by_fd.erase(fd);
    ::close(fd);
  }
  s->client = s->server = -1;
}

// Writes the due chunks of one direction; false when the session must close.
bool drain(Pipe& p, Nanos now) {
  p.blocked = false;
  while (!p.queue.empty() && p.queue.front().due <= now) {
    Chunk& c = p.queue.front();
    if (c.data.empty()) {
      ::shutdown(p.to, SHUT_WR);
      p.eof_sent = true;
      p.queue.pop_front();
      continue;
    }
    while (c.off < c.data.size()) {
      ssize_t n = ::send(p.to, c.data.data() + c.off, c.data.size() - c.off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno != EAGAIN) return false;
        p.blocked = true;
        return true;
      }
      c.off += static_cast<size_t>(n);
    }
    p.queued_bytes -= c.data.size();
    p.queue.pop_front();
  }
  return true;
}

bool done(const Session& s) { return s.up.eof_sent && s.down.eof_sent; }

// Reads what is there; false when the session must close.
bool fill(const std::shared_ptr<Session>& sp, Pipe& p) {
  char buf[65536];
  for (;;) {
    if (p.eof_read || p.queued_bytes >= kMaxQueued) return true;
    ssize_t n = ::recv(p.from, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN) return true;
      return false;
    }
    Nanos due = now_ns() + g_delay;
    if (n == 0) {
      p.eof_read = true;
      p.queue.push_back(Chunk{due, std::string(), 0});
    } else {
      p.queue.push_back(Chunk{due, std::string(buf, static_cast<size_t>(n)), 0});
      p.queued_bytes += static_cast<size_t>(n);
    }
    g_due.emplace_back(due, sp);
    arm(due);
  }
}

void on_timer() {
  uint64_t ticks;
  [[maybe_unused]] ssize_t r = ::read(g_timer, &ticks, sizeof ticks);
  g_armed = 0;
  Nanos now = now_ns();
  while (!g_due.empty() && g_due.front().first <= now) {
    auto sp = g_due.front().second.lock();
    g_due.pop_front();
    if (!sp || sp->client < 0 || !sp->connected) continue;
    if (!drain(sp->up, now) || !drain(sp->down, now) || done(*sp)) {
      close_session(sp);
      continue;
    }
    watch(*sp);
  }
  if (!g_due.empty()) arm(g_due.front().first);
}

void add_fd(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev);
}

void on_accept(int lfd, const sockaddr_storage& target, socklen_t tlen) {
  for (;;) {
    int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c < 0) return;
    int s = ::socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto sp = std::make_shared<Session>();
    sp->client = c;
    sp->server = s;
    sp->up.from = c;
    sp->up.to = s;
    sp->down.from = s;
    sp->down.to = c;
    g_by_fd[c] = sp;
    g_by_fd[s] = sp;
    // The connect itself is not delayed: SMTP's first round trip is the greeting, which is.
    int r = ::connect(s, reinterpret_cast<const sockaddr*>(&target), tlen);
    if (r < 0 && errno != EINPROGRESS) {
      std::perror("connect");
      ::close(c);
      ::close(s);
      g_by_fd.erase(c);
      g_by_fd.erase(s);
      continue;
    }
    // The client is read once the server side is up (watch() registers it then).
    add_fd(s, EPOLLOUT);
    sp->server_watched = true;
  }
}

void on_event(int fd, uint32_t events) {
  auto it = g_by_fd.find(fd);
  if (it == g_by_fd.end()) return;
  std::shared_ptr<Session> sp = it->second;
  Session& s = *sp;
  if (fd == s.server && !s.connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close_session(sp);
      return;
    }
    s.connected = true;
  }
  Nanos now = now_ns();
  bool ok = true;
  if (events & EPOLLERR) ok = false;
  if (ok && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
    ok = fill(sp, fd == s.client ? s.up : s.down);
  }
  if (ok && (events & EPOLLOUT)) ok = drain(fd == s.client ? s.down : s.up, now);
  if (!ok || done(s)) {
    close_session(sp);
    return;
  }
  watch(s);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_at, target_at;
  long delay_ms = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 < argc && a == "--listen") {
      listen_at = argv[++i];
    } else if (i + 1 < argc && a == "--target") {
      target_at = argv[++i];
    } else if (i + 1 < argc && a == "--delay-ms") {
      char* end = nullptr;
      delay_ms = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || delay_ms < 0) delay_ms = -2;
    } else {
      std::fprintf(stderr, "latency_proxy: unknown argument '%s'\n", a.c_str());
      delay_ms = -2;
      break;
    }
  }
  sockaddr_storage lss{}, tss{};
  socklen_t llen = 0, tlen = 0;
  if (delay_ms < 0 || !parse_hostport(listen_at, &lss, &llen) ||
      !parse_hostport(target_at, &tss, &tlen)) {
    std::fprintf(stderr,
                 "usage: latency_proxy --listen HOST:PORT --target HOST:PORT --delay-ms D\n"
                 "  (numeric addresses; D: one-way delay in ms, >= 0)\n");
    return 2;
  }
  g_delay = static_cast<Nanos>(delay_ms) * 1000000;
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int lfd = ::socket(lss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&lss), llen) != 0 || ::listen(lfd, 4096) != 0) {
    std::fprintf(stderr, "latency_proxy: cannot listen on %s: %s\n", listen_at.c_str(),
                 std::strerror(errno));
    return 1;
  }
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  g_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  add_fd(lfd, EPOLLIN);
  add_fd(g_timer, EPOLLIN);
  std::printf("listening %s\n", listen_at.c_str());
  std::fflush(stdout);

  epoll_event evs[256];
  while (!g_stop) {
    int n = epoll_wait(g_epoll, evs, 256, 1000);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == lfd) {
        on_accept(lfd, tss, tlen);
      } else if (fd == g_timer) {
        on_timer();
      } else {
        on_event(fd, evs[i].events);
      }
    }
  }
  return 0;
}
