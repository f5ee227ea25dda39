// The real engine (real loops, real sockets) against the in-process sink with its faults:
// the same ledger invariant as the property test, and the store agrees.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "engine/events.h"
#include "engine/send_run.h"
#include "smtp/sink_server.h"

namespace sb {
namespace {

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(fd);
  return ntohs(sa.sin_port);
}

bool wait_listening(uint16_t port) {
  for (int i = 0; i < 200; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(RealEngine, EveryRecipientSettlesOnceAgainstAFaultySink) {
  std::signal(SIGPIPE, SIG_IGN);  // as smtpblast does: a dropped connection is an error, not death
  const uint16_t port = free_port();
  SinkServerConfig sc;
  sc.listen = "127.0.0.1:" + std::to_string(port);
  sc.engine.reject_rcpt = 0.1;
  sc.engine.defer_rcpt = 0.1;
  sc.engine.drop_txn = 0.05;
  sc.engine.defer_txn = 0.05;
  sc.engine.seed = 7;
  std::atomic<bool> stop{false};
  std::thread sink([&] { (void)run_sink(sc, &stop); });
  ASSERT_TRUE(wait_listening(port));

  const std::string dir = ::testing::TempDir() + "/sb_real_engine_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const size_t n = 400;
  {
    std::ofstream csv(dir + "/list.csv");
    csv << "email,name\n";
    for (size_t i = 0; i < n; ++i) csv << "u" << i << "@example.com,N" << i << "\n";
    std::ofstream tpl(dir + "/t.eml");
    tpl << "From: sender@example.org\nSubject: hello {{name}}\n\nHi {{name}}\n";
  }
  auto relay = std::make_shared<RelaySetup>();
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_storage ss{};
  std::memcpy(&ss, &sa, sizeof sa);
  relay->addrs.push_back(ss);
  relay->host = "127.0.0.1";
  relay->name = "relay " + sc.listen;
  relay->tls = TlsMode::kNone;
  relay->helo = "test.localhost";
  RunConfig cfg;
  cfg.task_path = dir + "/task.db";
  cfg.template_path = dir + "/t.eml";
  cfg.recipients_path = dir + "/list.csv";
  cfg.relay = relay;
  cfg.connections = 4;
  cfg.workers = 2;
  cfg.max_attempts = 3;
  cfg.retry_delay_ms = 100;
  cfg.retry_max_ms = 400;
  cfg.commit_interval_ms = 50;
  SilentEvents events;
  RunResult r = run_send(cfg, events);
  stop.store(true);
  sink.join();

  EXPECT_EQ(r.setup_exit, 0);
  EXPECT_EQ(r.ledger_violations, 0u);
  EXPECT_EQ(r.claimed, n);
  EXPECT_EQ(r.settled, n);
  EXPECT_EQ(r.rep.task.get(RcptStatus::kInFlight), 0u);
  EXPECT_EQ(r.rep.task.get(RcptStatus::kSent) + r.rep.task.get(RcptStatus::kFailed) +
                r.rep.task.get(RcptStatus::kDeferred),
            n);
  EXPECT_EQ(r.rep.sent, r.rep.task.get(RcptStatus::kSent));
  EXPECT_GT(r.rep.failed, 0u);  // the sink rejected some
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
}  // namespace sb
