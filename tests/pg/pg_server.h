// PgServer: a private PostgreSQL cluster for one test binary (initdb + pg_ctl, loopback only).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace sb::testing {

// Started on first use and stopped (pg_ctl -m immediate) when the binary exits. initdb refuses
// to run as root, so as root the cluster belongs to the postgres user (runuser). Tests that
// need it skip when it cannot start (no PostgreSQL installed), saying why.
class PgServer {
 public:
  static PgServer& get() {
    static PgServer s;
    return s;
  }
  bool up() const { return up_; }
  const std::string& why() const { return why_; }
  int port() const { return port_; }
  std::string conninfo(const std::string& db = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=postgres";
  }
  std::string url(const std::string& db = "postgres") const {
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  // pg_ctl stop -m immediate, then start again on the same port (a crashed server).
  bool restart() { return run(ctl() + " -m immediate stop >/dev/null 2>&1") && run(start_cmd()); }

 private:
  static constexpr const char* kBin = "/usr/lib/postgresql/15/bin/";

  PgServer() {
    if (access((std::string(kBin) + "initdb").c_str(), X_OK) != 0) {
      why_ = "PostgreSQL 15 is not installed (tools/bootstrap.sh)";
      return;
    }
    char tmpl[] = "/tmp/sb-pgtest-XXXXXX";
    if (!mkdtemp(tmpl)) {
      why_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    as_ = getuid() == 0 ? "runuser -u postgres -- " : "";
    if (getuid() == 0) run("chown postgres " + dir_);
    port_ = free_port();
    if (!run(as_ + kBin + "initdb -D " + dir_ + "/data -A trust -U postgres >" + dir_ +
             "/initdb.log 2>&1")) {
      why_ = "initdb failed (see " + dir_ + "/initdb.log)";
      return;
    }
    if (!run(start_cmd())) {
      why_ = "pg_ctl start failed (see " + dir_ + "/server.log)";
      return;
    }
    up_ = true;
  }
  ~PgServer() {
    if (!dir_.empty()) {
      if (up_) run(ctl() + " -m immediate stop >/dev/null 2>&1");
      run("rm -rf " + dir_);
    }
  }
  std::string ctl() const { return as_ + kBin + "pg_ctl -D " + dir_ + "/data"; }
  std::string start_cmd() const {
    // fsync off: a test cluster is thrown away; the unix socket stays in the test's directory.
    return ctl() + " -w -l " + dir_ + "/server.log -o \"-p " + std::to_string(port_) + " -k " +
           dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60\" start" +
           " >/dev/null 2>&1";
  }
  static bool run(const std::string& cmd) { return std::system(cmd.c_str()) == 0; }
  static int free_port() {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    int port = ntohs(a.sin_port);
    close(s);
    return port;
  }

  bool up_ = false;
  std::string why_;
  std::string dir_;
  std::string as_;
  int port_ = 0;
};

}  // namespace sb::testing
