// PgServer: the PostgreSQL server of the pg tests: the ctest fixture's, or a private one.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "fakes/pg_test_server.h"

namespace sb::testing {

// Under ctest the fixture `pg_server` (tests/support/postgres.py) gives SB_TEST_PG_URL and
// PGPASSFILE: one server for the whole run. Run by hand without them, the first test that asks
// starts a private cluster (initdb + pg_ctl, as the postgres user when root: initdb refuses
// root) and stops it (pg_ctl -m immediate) when the binary exits.
class PgServer {
 public:
  static PgServer& get() {
    static PgServer s;
    return s;
  }
  bool up() const { return up_; }
  const std::string& why() const { return why_; }
  // A libpq URL of database `db` ("" = the test database), without a task.
  std::string url(const std::string& db = "") const {
    if (!fixture_.empty()) {
      if (db.empty()) return fixture_;
      size_t q = fixture_.find('?');
      size_t slash = fixture_.rfind('/', q);
      return fixture_.substr(0, slash + 1) + db + fixture_.substr(q);
    }
    return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" +
           (db.empty() ? "postgres" : db);
  }
  std::string conninfo(const std::string& db = "") const { return url(db); }
  // The URL naming a task, as --task takes it.
  std::string task_url(const std::string& task) const {
    std::string u = url();
    return u + (u.find('?') == std::string::npos ? "?" : "&") + "task=" + task;
  }

 private:
  static constexpr const char* kBin = "/usr/lib/postgresql/15/bin/";

  PgServer() {
    if (auto u = test_pg_url()) {
      fixture_ = *u;
      up_ = true;
      return;
    }
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
    // fsync off: a test cluster is thrown away; the unix socket stays in the test's directory.
    if (!run(ctl() + " -w -l " + dir_ + "/server.log -o \"-p " + std::to_string(port_) + " -k " +
             dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null 2>&1")) {
      why_ = "pg_ctl start failed (see " + dir_ + "/server.log)";
      return;
    }
    up_ = true;
  }
  ~PgServer() {
    if (dir_.empty()) return;
    if (up_) run(ctl() + " -m immediate stop >/dev/null 2>&1");
    run("rm -rf " + dir_);
  }
  std::string ctl() const { return as_ + kBin + "pg_ctl -D " + dir_ + "/data"; }
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
  std::string fixture_;  // SB_TEST_PG_URL
  std::string dir_;
  std::string as_;
  int port_ = 0;
};

}  // namespace sb::testing
