// The /metrics server over a real loopback socket, scraped while another thread counts (the
// TSan build checks the cells' single-writer rule and the server's thread).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

#include "metrics/http_server.h"
#include "metrics/run_metrics.h"

namespace sb::metrics {
namespace {

// A port the kernel just gave out (free again once the socket is closed).
uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One request, the whole answer (the server closes the connection).
std::string fetch(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  // Split in two writes: the server must wait for the blank line.
  size_t half = request.size() / 2;
  (void)!::write(fd, request.data(), half);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  (void)!::write(fd, request.data() + half, request.size() - half);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(MetricsServer, ServesScrapesWhileAWorkerCounts) {
  auto cells = std::make_shared<RunMetrics>();
  const uint16_t port = free_port();
  auto s = MetricsServer::start("127.0.0.1:" + std::to_string(port),
                                [cells] { return cells->expose(); });
  ASSERT_TRUE(s.ok()) << s.error().message;
  std::atomic<bool> stop{false};
  WorkerCells& w = cells->worker(0);
  std::thread writer([&] {
    while (!stop.load()) {
      w.granted.add();
      w.in_flight.set(1);
      w.delivery_latency.observe_us(1500);
    }
  });
  std::string last;
  for (int i = 0; i < 5; ++i) {
    last = fetch(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(last.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << last;
  }
  stop.store(true);
  writer.join();
  EXPECT_NE(last.find("smtpblast_throttle_granted_total "), std::string::npos);
  EXPECT_EQ(fetch(port, "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(fetch(port, "DELETE /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ((*s)->scrapes(), 5u);
  // A second server on the same address: in use, named.
  auto again =
      MetricsServer::start("127.0.0.1:" + std::to_string(port), [] { return std::string(); });
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.error().message.find(std::to_string(port)), std::string::npos);
}

}  // namespace
}  // namespace sb::metrics
