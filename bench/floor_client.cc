// floor_client: the least work an SMTP client can do per message, to measure the floor of the
// relay benchmark's "CPU per message" (bench/bench_floor.sh). No task store, no rendering, no
// TLS: one pre-rendered message, N connections on one epoll loop, replies only counted.
//
//   floor_client HOST PORT CONNS COUNT MESSAGE_FILE [--no-wait | --bdat] [--window W]
//
// Default: RFC 2920 pipelining as smtpblast does it into a server without CHUNKING: MAIL, RCPT
// and DATA in one write; after the 354, the body, "." and the next MAIL/RCPT/DATA in one write
// (DATA ends a pipelined group, so the body waits for the 354). --no-wait writes 32 whole
// transactions (commands and bodies) at once without waiting for any reply: faster, but not
// allowed by RFC 2920 (a real server may refuse the body). --bdat is the compliant floor into a
// server with CHUNKING (RFC 3030; EHLO's reply must list it): MAIL, RCPT and "BDAT size LAST"
// with the body need no reply before the next command (RFC 2920 §3.1 lets only EHLO, DATA,
// VRFY, EXPN, TURN, QUIT and NOOP end a group; RFC 3030 §4.2 lets BDAT be pipelined), so a
// window of 32 transactions goes out in one write; the client waits only for EHLO's reply and
// reads a window's replies before writing the next (neither side can then fill the other's
// socket buffer, the deadlock RFC 2920 §3.1 warns of). --window W: W transactions a write
// instead of 32 (the floor at smtpblast's window). Prints one line:
//   messages=N wall_s=W user_s=U sys_s=S cpu_per_1000=C
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Conn {
  int fd = -1;
  std::string out;  // not yet written
  size_t out_off = 0;
  std::string partial;     // an incomplete reply line
  int phase = 0;           // 0 greeting, 1 EHLO, 2 mail
  long finals_wanted = 0;  // final reply lines to wait for before the next write
  long to_send = 0;        // messages this connection still has to start
  long in_body = 0;        // transactions whose body is written (no-wait: batch size)
  bool done = false;
  bool chunking = false;  // EHLO's reply listed CHUNKING
};

std::string g_cmds;  // MAIL, RCPT, DATA
std::string g_body;  // message + ".\r\n"
bool g_no_wait = false;
bool g_bdat = false;  // g_cmds ends with "BDAT n LAST", g_body is the bare message
long g_window = 32;   // transactions a write with --no-wait and --bdat

void flush(Conn& c) {
  while (c.out_off < c.out.size()) {
    ssize_t n = ::write(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
    if (n < 0) {
      if (errno == EAGAIN) return;
      std::perror("write");
      std::exit(1);
    }
    c.out_off += static_cast<size_t>(n);
  }
  c.out.clear();
  c.out_off = 0;
}

// Called when every reply waited for has come.
void advance(Conn& c) {
  if (c.phase == 0) {
    c.phase = 1;
    c.out += "EHLO floor.example.test\r\n";
    c.finals_wanted = 1;
    return;
  }
  if (c.phase == 1) {
    c.phase = 2;
    if (g_no_wait || g_bdat) {
      if (g_bdat && !c.chunking) {
        std::fprintf(stderr, "floor_client: --bdat: the server does not offer CHUNKING\n");
        std::exit(1);
      }
      c.in_body = 0;
    } else {
      c.out += g_cmds;  // the first MAIL/RCPT/DATA
      --c.to_send;
      c.finals_wanted = 3;  // 250 250 354
      return;
    }
  }
  if (g_no_wait || g_bdat) {
    if (c.to_send == 0) {
      c.out += "QUIT\r\n";
      c.done = true;
      c.finals_wanted = 1;
      return;
    }
    long k = c.to_send < g_window ? c.to_send : g_window;
    for (long i = 0; i < k; ++i) {
      c.out += g_cmds;
      c.out += g_body;
    }
    c.to_send -= k;
    c.finals_wanted = (g_bdat ? 3 : 4) * k;  // MAIL RCPT BDAT; MAIL RCPT DATA end-of-data
    return;
  }
  // The 354 came: body, and the next transaction's commands in the same write.
  c.out += g_body;
  if (c.to_send == 0) {
    c.out += "QUIT\r\n";
    c.done = true;
    c.finals_wanted = 2;
    return;
  }
  c.out += g_cmds;
  --c.to_send;
  c.finals_wanted = 4;  // 250 (data) 250 250 354
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: floor_client HOST PORT CONNS COUNT MESSAGE_FILE [--no-wait | --bdat] "
                 "[--window W]\n");
    return 2;
  }
  const char* host = argv[1];
  int port = std::atoi(argv[2]);
  int nconns = std::atoi(argv[3]);
  long count = std::atol(argv[4]);
  g_no_wait = argc > 6 && std::strcmp(argv[6], "--no-wait") == 0;
  g_bdat = argc > 6 && std::strcmp(argv[6], "--bdat") == 0;
  if (argc > 8 && std::strcmp(argv[7], "--window") == 0) g_window = std::atol(argv[8]);
  if (g_window < 1) g_window = 1;
  std::ifstream f(argv[5], std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string raw = ss.str();
  for (size_t i = 0; i < raw.size(); ++i) {  // LF → CRLF
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) g_body += '\r';
    g_body += raw[i];
  }
  if (g_body.size() < 2 || g_body.compare(g_body.size() - 2, 2, "\r\n") != 0) g_body += "\r\n";
  g_cmds = "MAIL FROM:<sender@example.test>\r\nRCPT TO:<rcpt@example.test>\r\n";
  if (g_bdat) {
    g_cmds += "BDAT " + std::to_string(g_body.size()) + " LAST\r\n";  // the body as it is
  } else {
    g_body += ".\r\n";  // the benchmark message has no line starting with "."
    g_cmds += "DATA\r\n";
  }

  auto t0 = std::chrono::steady_clock::now();
  int ep = epoll_create1(0);
  std::vector<Conn> conns(static_cast<size_t>(nconns));
  for (int i = 0; i < nconns; ++i) {
    Conn& c = conns[static_cast<size_t>(i)];
    c.to_send = count / nconns + (i < count % nconns ? 1 : 0);
    c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host, &a.sin_addr);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      std::perror("connect");
      return 1;
    }
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c.fd, F_SETFL, O_NONBLOCK);
    c.finals_wanted = 1;  // the greeting
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }
  int open = nconns;
  std::vector<epoll_event> evs(64);
  char buf[65536];
  while (open > 0) {
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 10000);
    if (n <= 0) {
      std::fprintf(stderr, "floor_client: stalled\n");
      return 1;
    }
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[evs[static_cast<size_t>(e)].data.u32];
      if (c.fd < 0) continue;
      if (evs[static_cast<size_t>(e)].events & EPOLLOUT) {
        flush(c);
        if (c.out.empty()) {
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u32 = evs[static_cast<size_t>(e)].data.u32;
          epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
        }
      }
      ssize_t r = ::read(c.fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN)) {
        ::close(c.fd);
        c.fd = -1;
        --open;
        continue;
      }
      if (r < 0) continue;
      // Count final reply lines ("250 ..." not "250-...").
      c.partial.append(buf, static_cast<size_t>(r));
      size_t start = 0;
      for (size_t nl; (nl = c.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
        if (c.phase == 1 && nl - start >= 12 && c.partial.compare(start + 4, 8, "CHUNKING") == 0) {
          c.chunking = true;
        }
        if (nl - start >= 4 && c.partial[start + 3] == ' ') {
          if (c.partial[start] == '4' || c.partial[start] == '5') {
            std::fprintf(stderr, "floor_client: %s\n", c.partial.substr(start, nl - start).c_str());
            return 1;
          }
          --c.finals_wanted;
        }
      }
      c.partial.erase(0, start);
      if (c.finals_wanted <= 0) {
        if (c.done) {
          ::close(c.fd);
          c.fd = -1;
          --open;
          continue;
        }
        advance(c);
        flush(c);
        epoll_event ev{};
        ev.events = EPOLLIN | (c.out.empty() ? 0u : static_cast<uint32_t>(EPOLLOUT));
        ev.data.u32 = evs[static_cast<size_t>(e)].data.u32;
        epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev);
      }
    }
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double user =
      static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
  double sys =
      static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
  std::printf("messages=%ld wall_s=%.3f user_s=%.3f sys_s=%.3f cpu_per_1000=%.5f\n", count, wall,
              user, sys, (user + sys) / static_cast<double>(count) * 1000.0);
  return 0;
}
