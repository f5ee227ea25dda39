// PgConn on a real libuv loop against a private PostgreSQL; PgBlocking; conninfo checks.
#include "pg/pg_conn.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <string>
#include <vector>

#include "pg/pg_server.h"

namespace sb {
namespace {

using testing::PgServer;

#define NEED_PG() \
  if (!PgServer::get().up()) GTEST_SKIP() << PgServer::get().why()

struct Loop {
  uv_loop_t loop;
  Loop() { uv_loop_init(&loop); }
  ~Loop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks
    uv_loop_close(&loop);
  }
  void run() { uv_run(&loop, UV_RUN_DEFAULT); }
};

TEST(PgConninfo, RefusesPasswordAndBadSyntax) {
  EXPECT_TRUE(pg_check_conninfo("postgresql://u@127.0.0.1/db").ok());
  Status pw = pg_check_conninfo("postgresql://u:secret@127.0.0.1/db");
  ASSERT_FALSE(pw.ok());
  EXPECT_EQ(pw.error().domain, ErrDomain::kConfig);
  EXPECT_EQ(pw.error().message.find("secret"), std::string::npos);
  Status bad = pg_check_conninfo("postgresql://u@127.0.0.1/db?nosuchoption=1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("nosuchoption"), std::string::npos);
  EXPECT_EQ(pg_describe_conninfo("host=h port=5 dbname=d user=u"),
            "PostgreSQL host h port 5 database d user u");
}

TEST(PgConn, PipelinedQueriesAnswerInOrderAndAnErrorStaysLocal) {
  NEED_PG();
  Loop l;
  PgConn c(&l.loop);
  std::vector<std::string> got;
  c.connect(PgServer::get().conninfo(), [&](Status s) {
    ASSERT_TRUE(s.ok()) << s.error().message;
    for (int i = 0; i < 5; ++i) {
      std::string sql = i == 2 ? "SELECT no_such_column" : "SELECT $1::int + 1";
      c.query(sql, {std::to_string(i)}, [&, i](Result<PgResult> r) {
        if (i == 2) {
          ASSERT_FALSE(r.ok());
          EXPECT_NE(r.error().message.find("no_such_column"), std::string::npos);
          got.push_back("err");
        } else {
          ASSERT_TRUE(r.ok()) << r.error().message;
          got.push_back(std::string(r->text(0, 0)));
        }
        if (got.size() == 5) c.reset();
      });
    }
  });
  l.run();
  EXPECT_EQ(got, (std::vector<std::string>{"1", "2", "err", "4", "5"}));
}

TEST(PgConn, RefusedConnectionNamesTheServer) {
  Loop l;
  PgConn c(&l.loop);
  std::string err;
  // Port 1 on loopback: nothing listens there.
  c.connect("host=127.0.0.1 port=1 dbname=x user=y connect_timeout=2",
            [&](Status s) { err = s.ok() ? "ok" : s.error().message; });
  l.run();
  EXPECT_NE(err.find("127.0.0.1"), std::string::npos) << err;
  EXPECT_NE(err.find("refused"), std::string::npos) << err;
}

TEST(PgConn, FollowsTheSocketToTheNextHost) {
  NEED_PG();
  Loop l;
  PgConn c(&l.loop);
  bool ok = false;
  // The first host fails, libpq opens a new socket for the next: the poll must follow. The
  // ctest fixture's server is on a unix socket (host= in the URL's query), a private one on
  // 127.0.0.1.
  std::string ci = PgServer::get().url();
  if (size_t h = ci.find("host="); h != std::string::npos) {
    ci.insert(h + 5, "/nonexistent-sb-dir,");
    size_t p = ci.find("port=");
    size_t end = ci.find('&', p);
    std::string port = ci.substr(p + 5, end == std::string::npos ? std::string::npos : end - p - 5);
    ci.insert(p + 5, port + ",");
  } else {
    size_t at = ci.find('@');
    ci.insert(at + 1, "127.0.0.1:1,");
  }
  c.connect(ci, [&](Status s) {
    ASSERT_TRUE(s.ok()) << s.error().message << " (" << ci << ")";
    c.query("SELECT 42", {}, [&](Result<PgResult> r) {
      ok = r.ok() && r->int64(0, 0) == 42;
      c.reset();
    });
  });
  l.run();
  EXPECT_TRUE(ok);
}

TEST(PgConn, QueryBeforeConnectIsAnsweredFromTheLoop) {
  Loop l;
  PgConn c(&l.loop);
  bool called = false;
  c.query("SELECT 1", {}, [&](Result<PgResult> r) {
    called = true;
    EXPECT_FALSE(r.ok());
  });
  EXPECT_FALSE(called);
  l.run();
  EXPECT_TRUE(called);
}

TEST(PgBlocking, ExecAndErrors) {
  NEED_PG();
  auto c = PgBlocking::connect(PgServer::get().conninfo());
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto r = (*c)->exec("SELECT $1::text || 'b', NULL", {"a"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text(0, 0), "ab");
  EXPECT_TRUE(r->is_null(0, 1));
  auto bad = (*c)->exec("SELEC 1");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("syntax"), std::string::npos);
  auto nodb = PgBlocking::connect(PgServer::get().url("no_such_db"));
  ASSERT_FALSE(nodb.ok());
  EXPECT_NE(nodb.error().message.find("no_such_db"), std::string::npos);
}

}  // namespace
}  // namespace sb
