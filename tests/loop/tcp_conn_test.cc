// TcpConn against the local process's limits: a connect that fails for want of a file
// descriptor is reported as such, at once, and not replaced by the connect deadline.
#include "loop/tcp_conn.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <string>
#include <vector>

namespace sb {
namespace {

class Recorder : public ConnListener {
 public:
  TcpConn* conn = nullptr;
  std::string broken;
  bool local = false;
  bool timer = false;
  bool closed = false;
  void on_connected() override {}
  void on_read(std::string_view) override {}
  void on_broken(std::string_view why) override {
    broken = std::string(why);
    local = conn->local_resource_error();
  }
  void on_timer() override {
    timer = true;
    conn->close(false);
  }
  void on_closed() override { closed = true; }
};

TEST(TcpConn, OutOfDescriptorsIsSaidAtOnceNotAsATimeout) {
  uv_loop_t loop;
  ASSERT_EQ(uv_loop_init(&loop), 0);
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 8), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len), 0);

  Recorder r;
  r.conn = TcpConn::create(&loop, &r);
  // Use up every descriptor this process may open.
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  int top = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) top = fd;
  }
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(top + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY)) >= 0;) fillers.push_back(fd);

  r.conn->connect(reinterpret_cast<sockaddr*>(&a));  // socket() fails here: EMFILE
  // Descriptors back before the loop runs the report: UBSan's vptr check of the listener call
  // needs one (with none left it reports a bogus "invalid vptr").
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  r.conn->set_deadline(r.conn->now_ms() + 3000);  // must not replace the report
  uv_run(&loop, UV_RUN_DEFAULT);

  ::close(lfd);
  uv_loop_close(&loop);

  EXPECT_TRUE(r.closed);
  EXPECT_FALSE(r.timer) << "the EMFILE report was lost and the deadline fired instead";
  EXPECT_NE(r.broken.find("too many open files"), std::string::npos) << r.broken;
  EXPECT_NE(r.broken.find("EMFILE"), std::string::npos) << r.broken;
  EXPECT_NE(r.broken.find("ulimit -n"), std::string::npos) << r.broken;
  EXPECT_TRUE(r.local);
}

TEST(TcpConn, DescribeConnectError) {
  EXPECT_EQ(describe_connect_error(UV_ECONNREFUSED), "connect: connection refused");
  EXPECT_NE(describe_connect_error(UV_ENFILE).find("ENFILE"), std::string::npos);
}

}  // namespace
}  // namespace sb
