// Test helpers for src/dns: packets built with ldns, a canned UDP DNS responder, dnsmasq.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace sb::dns::testing {

// A response to `qname`/`qtype` with the given rcode and records in presentation format
// ("mx.test. 300 IN MX 10 a.test."). Returns the wire bytes.
inline std::vector<uint8_t> build_answer(const std::string& qname, uint16_t qtype, int rcode,
                                         const std::vector<std::string>& answer,
                                         const std::vector<std::string>& authority = {},
                                         uint16_t id = 0x4242) {
  ldns_rdf* name = ldns_dname_new_frm_str(qname.c_str());
  ldns_pkt* p =
      ldns_pkt_query_new(name, static_cast<ldns_rr_type>(qtype), LDNS_RR_CLASS_IN, LDNS_RD);
  ldns_pkt_set_id(p, id);
  ldns_pkt_set_qr(p, true);
  ldns_pkt_set_ra(p, true);
  ldns_pkt_set_rcode(p, static_cast<uint8_t>(rcode));
  auto push = [p](const std::vector<std::string>& rrs, ldns_pkt_section sec) {
    for (const auto& s : rrs) {
      ldns_rr* rr = nullptr;
      if (ldns_rr_new_frm_str(&rr, s.c_str(), 3600, nullptr, nullptr) != LDNS_STATUS_OK)
        std::abort();
      ldns_pkt_push_rr(p, sec, rr);
    }
  };
  push(answer, LDNS_SECTION_ANSWER);
  push(authority, LDNS_SECTION_AUTHORITY);
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns_pkt2wire(&wire, p, &size) != LDNS_STATUS_OK) std::abort();
  std::vector<uint8_t> out(wire, wire + size);
  free(wire);
  ldns_pkt_free(p);
  return out;
}

inline std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// A UDP DNS responder on 127.0.0.1 that answers from a handler, on its own thread. The handler
// gets (qname, qtype) and returns the records; returning an rcode < 0 drops the query (a dead
// server). Queries are counted per "name/type".
class FakeDnsServer {
 public:
  struct Reply {
    int rcode = 0;
    std::vector<std::string> answer;
    std::vector<std::string> authority;
  };
  using Handler = std::function<Reply(const std::string& qname, uint16_t qtype)>;

  explicit FakeDnsServer(Handler h) : handler_(std::move(h)) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~FakeDnsServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int count(const std::string& name, uint16_t type) {
    std::lock_guard<std::mutex> g(mu_);
    return counts_[name + "/" + std::to_string(type)];
  }
  int total() {
    std::lock_guard<std::mutex> g(mu_);
    int n = 0;
    for (auto& [k, v] : counts_) n += v;
    return n;
  }

 private:
  void run() {
    uint8_t buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      sockaddr_in from{};
      socklen_t flen = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n <= 0) continue;
      ldns_pkt* q = nullptr;
      if (ldns_wire2pkt(&q, buf, static_cast<size_t>(n)) != LDNS_STATUS_OK) continue;
      ldns_rr* qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
      char* qn = ldns_rdf2str(ldns_rr_owner(qrr));
      std::string qname(qn);
      free(qn);
      auto qtype = static_cast<uint16_t>(ldns_rr_get_type(qrr));
      uint16_t id = ldns_pkt_id(q);
      ldns_pkt_free(q);
      {
        std::lock_guard<std::mutex> g(mu_);
        ++counts_[qname + "/" + std::to_string(qtype)];
      }
      Reply r = handler_(qname, qtype);
      if (r.rcode < 0) continue;
      auto wire = build_answer(qname, qtype, r.rcode, r.answer, r.authority, id);
      sendto(fd_, wire.data(), wire.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
    }
  }

  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

// dnsmasq (Debian's dnsmasq-base) serving a config on a free 127.0.0.1 port; stopped by PID in
// the destructor, which also runs when a test fails.
class Dnsmasq {
 public:
  explicit Dnsmasq(const std::string& config) {
    char tmpl[] = "/tmp/sb-dnsmasq-XXXXXX";
    dir_ = mkdtemp(tmpl);
    conf_ = dir_ + "/dnsmasq.conf";
    log_ = dir_ + "/queries.log";
    std::ofstream(conf_) << config;
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) start_on_free_port();
  }
  ~Dnsmasq() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::remove(conf_.c_str());
    std::remove(log_.c_str());
    rmdir(dir_.c_str());
  }
  bool running() const { return pid_ > 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Queries dnsmasq logged for "query[TYPE] name".
  int logged_queries(const std::string& type, const std::string& name) const {
    std::ifstream f(log_);
    std::string line;
    std::string needle = "query[" + type + "] " + name + " from";
    int n = 0;
    while (std::getline(f, line)) n += line.find(needle) != std::string::npos;
    return n;
  }

 private:
  static uint16_t free_udp_port() {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
  }
  static bool port_taken(uint16_t port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool taken = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0;
    close(fd);
    return taken;
  }
  void start_on_free_port() {
    port_ = free_udp_port();
    std::vector<std::string> args = {"/usr/sbin/dnsmasq",
                                     "--no-daemon",
                                     "--port=" + std::to_string(port_),
                                     "--listen-address=127.0.0.1",
                                     "--bind-interfaces",
                                     "--no-resolv",
                                     "--no-hosts",
                                     "--log-queries",
                                     "--log-facility=" + log_,
                                     "--conf-file=" + conf_,
                                     "--pid-file=" + dir_ + "/pid"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return;
    for (int i = 0; i < 200; ++i) {  // up to 2 s for it to bind
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return;  // exited: port clash, retry
      if (port_taken(port_)) {
        pid_ = pid;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }

  std::string dir_, conf_, log_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Runs the loop until done() or the deadline; a 10 ms ticker only bounds the wait and never
// drives c-ares.
inline bool run_until(uv_loop_t* loop, const std::function<bool()>& done, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 10, 10);
  while (!done() && std::chrono::steady_clock::now() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return done();
}

// Closes whatever is left and runs the close callbacks (so ASan sees every handle freed).
inline void drain_loop(uv_loop_t* loop) {
  for (int i = 0; i < 5; ++i) uv_run(loop, UV_RUN_NOWAIT);
}

}  // namespace sb::dns::testing
