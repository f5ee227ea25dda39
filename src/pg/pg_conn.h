// PgConn: a libpq connection driven asynchronously on a libuv loop; PgBlocking: the same for
// threads that may block (CLI verbs, the store thread).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

struct pg_conn;
struct pg_result;
struct uv_loop_s;

namespace sb {

// One query's parameters as text; nullopt is SQL NULL.
using PgParams = std::vector<std::optional<std::string>>;

// The rows (or command status) of one statement. Owns the PGresult.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(pg_result* r);
  ~PgResult();
  PgResult(PgResult&& o) noexcept;
  PgResult& operator=(PgResult&& o) noexcept;
  PgResult(const PgResult&) = delete;
  PgResult& operator=(const PgResult&) = delete;

  int rows() const;
  int cols() const;
  bool is_null(int row, int col) const;
  std::string_view text(int row, int col) const;
  int64_t int64(int row, int col) const;  // 0 for NULL or text that is not a number
  uint64_t affected() const;              // rows an INSERT/UPDATE/DELETE touched

 private:
  pg_result* r_ = nullptr;
};

// The conninfo (key=value or postgresql:// URL) checked without connecting: a syntax error,
// or a password written into it (passwords come from PGPASSFILE, ~/.pgpass or PGPASSWORD, so
// they never sit in argv, logs or the store), is a kConfig error.
Status pg_check_conninfo(const std::string& conninfo);
// "host H port P database D user U" of a conninfo, for messages (never the password).
std::string pg_describe_conninfo(const std::string& conninfo);

// Asynchronous: PQconnectStart/PQconnectPoll and PQsendQueryParams in pipeline mode, with a
// uv_poll on PQsocket (re-armed when the socket changes across PQconnectPoll calls, as it does
// when libpq tries the next address or falls back from SSL). Queries are pipelined: several go
// out before the first answer, each followed by its own sync point so each is its own implicit
// transaction and one failing does not abort the next. Callbacks run on the loop, in the order
// the queries were sent. Not thread-safe: use it only on its loop's thread.
class PgConn {
 public:
  using Done = std::function<void(Status)>;
  using Reply = std::function<void(Result<PgResult>)>;

  explicit PgConn(uv_loop_s* loop);
  // Closes the connection; callbacks of queries still pending are not called.
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Starts connecting; `done` runs once, with a kStore error naming the server and its message
  // when the connection cannot be made.
  void connect(const std::string& conninfo, Done done);
  // Queues a query (one statement). Before the connection is up, or after it broke, `reply`
  // gets a kStore error (on the loop, never from inside this call).
  void query(std::string sql, PgParams params, Reply reply);
  bool ready() const;
  size_t pending() const;
  // Drops the connection: pending replies get a kStore error; connect() may be called again.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Blocking: for code that may wait (CLI verbs, the journal thread), never a worker loop.
class PgBlocking {
 public:
  static Result<std::unique_ptr<PgBlocking>> connect(const std::string& conninfo);
  ~PgBlocking();
  PgBlocking(const PgBlocking&) = delete;
  PgBlocking& operator=(const PgBlocking&) = delete;

  Result<PgResult> exec(const std::string& sql, const PgParams& params = {});
  // Several statements with no parameters (a schema), in one implicit transaction.
  Status exec_script(const std::string& sql);
  // True after a query failed because the connection broke (the caller may reconnect).
  bool broken() const;
  // Reconnects with the same conninfo after the server went away.
  Status reconnect();
  const std::string& where() const { return where_; }
  // The server process serving this connection (PQbackendPID); 0 when there is none.
  int backend_pid() const;

 private:
  PgBlocking(pg_conn* c, std::string conninfo);
  pg_conn* c_;
  std::string conninfo_;
  std::string where_;  // pg_describe_conninfo(conninfo_)
};

}  // namespace sb
