// PgConn and PgBlocking: libpq on a libuv loop, and libpq for threads that may wait.
#include "pg/pg_conn.h"

#include <libpq-fe.h>
#include <uv.h>

#include <charconv>
#include <deque>
#include <utility>

#include "loop/timer.h"

namespace sb {

// --- PgResult ---------------------------------------------------------------------------

PgResult::PgResult(pg_result* r) : r_(r) {}
PgResult::~PgResult() {
  if (r_) PQclear(r_);
}
PgResult::PgResult(PgResult&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (r_) PQclear(r_);
    r_ = std::exchange(o.r_, nullptr);
  }
  return *this;
}
int PgResult::rows() const { return r_ ? PQntuples(r_) : 0; }
int PgResult::cols() const { return r_ ? PQnfields(r_) : 0; }
bool PgResult::is_null(int row, int col) const { return !r_ || PQgetisnull(r_, row, col) != 0; }
std::string_view PgResult::text(int row, int col) const {
  if (is_null(row, col)) return {};
  return {PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col))};
}
int64_t PgResult::int64(int row, int col) const {
  std::string_view t = text(row, col);
  int64_t v = 0;
  std::from_chars(t.data(), t.data() + t.size(), v);
  return v;
}
uint64_t PgResult::affected() const {
  if (!r_) return 0;
  const char* t = PQcmdTuples(r_);
  uint64_t v = 0;
  std::from_chars(t, t + std::char_traits<char>::length(t), v);
  return v;
}

// --- conninfo ---------------------------------------------------------------------------

namespace {

std::string trimmed(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  // libpq's messages span lines ("...failed: FATAL:  password authentication failed ..."):
  // one line reads better in a log and a terminal.
  for (char& ch : s)
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  return s;
}

struct ConninfoOptions {
  PQconninfoOption* opts = nullptr;
  ~ConninfoOptions() {
    if (opts) PQconninfoFree(opts);
  }
};

}  // namespace

Status pg_check_conninfo(const std::string& conninfo) {
  char* err = nullptr;
  ConninfoOptions o{PQconninfoParse(conninfo.c_str(), &err)};
  if (!o.opts) {
    std::string msg = err ? trimmed(err) : "out of memory";
    if (err) PQfreemem(err);
    return make_error(ErrDomain::kConfig, "bad PostgreSQL connection string: " + msg);
  }
  for (PQconninfoOption* p = o.opts; p->keyword; ++p) {
    if (std::string_view(p->keyword) == "password" && p->val && *p->val)
      return make_error(ErrDomain::kConfig,
                        "a password in the PostgreSQL connection string is refused (it would sit "
                        "in argv and logs): use PGPASSFILE, ~/.pgpass or PGPASSWORD");
  }
  return {};
}

std::string pg_describe_conninfo(const std::string& conninfo) {
  ConninfoOptions o{PQconninfoParse(conninfo.c_str(), nullptr)};
  if (!o.opts) return "PostgreSQL";
  std::string host, port, db, user;
  for (PQconninfoOption* p = o.opts; p->keyword; ++p) {
    std::string_view k = p->keyword;
    std::string v = p->val ? p->val : "";
    if (k == "host" || (k == "hostaddr" && host.empty())) host = v;
    if (k == "port") port = v;
    if (k == "dbname") db = v;
    if (k == "user") user = v;
  }
  std::string out = "PostgreSQL";
  if (!host.empty()) out += " host " + host;
  if (!port.empty()) out += " port " + port;
  if (!db.empty()) out += " database " + db;
  if (!user.empty()) out += " user " + user;
  return out;
}

// --- PgConn -----------------------------------------------------------------------------

namespace {

Result<PgResult> to_result(PGresult* r, const std::string& where) {
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) return PgResult(r);
  std::string msg = trimmed(PQresultErrorMessage(r));
  if (st == PGRES_PIPELINE_ABORTED && msg.empty()) msg = "aborted by an earlier error";
  PQclear(r);
  return make_error(ErrDomain::kStore, where + ": " + msg);
}

}  // namespace

struct PgConn::Impl {
  struct Poll {
    uv_poll_t h;
    Impl* owner;
  };
  struct Pending {
    std::string sql;
    PgParams params;
    Reply reply;
  };
  enum class State { kIdle, kConnecting, kReady };

  uv_loop_s* loop;
  PGconn* c = nullptr;
  std::string where = "PostgreSQL";
  State state = State::kIdle;
  Poll* poll = nullptr;
  int fd = -1;
  int events = 0;
  Done done;
  std::deque<Pending> queue;  // the first `sent` are on the wire, in order
  size_t sent = 0;
  std::optional<Result<PgResult>> front;         // the first result of the query at the head
  std::vector<std::pair<Reply, Error>> refused;  // answered from a timer, not from query()
  Timer kick;                                    // answers refused queries from the loop
  Timer connect_kick;    // reports a connect() that failed at once, from the loop
  bool* dead = nullptr;  // set while a user callback runs: the callback may destroy us

  explicit Impl(uv_loop_s* l) : loop(l), kick(l), connect_kick(l) {}

  ~Impl() {
    if (dead) *dead = true;
    close_poll();
    if (c) PQfinish(c);
  }

  void close_poll() {
    if (!poll) return;
    poll->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->h),
             [](uv_handle_t* h) { delete reinterpret_cast<Poll*>(h); });
    poll = nullptr;
    fd = -1;
    events = 0;
  }

  // Polls PQsocket for `ev`; a new socket (libpq moved on to the next host or retried without
  // SSL) gets a new poll handle, since a uv_poll_t is bound to one descriptor for life. While
  // connecting every step gets a fresh handle: the new socket often reuses the old one's
  // number, and the closed descriptor has silently left epoll.
  bool arm(int ev) {
    if (state == State::kConnecting) close_poll();
    int s = PQsocket(c);
    if (s < 0) return false;
    if (s != fd) {
      close_poll();
      poll = new Poll{{}, this};
      if (uv_poll_init(loop, &poll->h, s) != 0) {
        delete poll;
        poll = nullptr;
        return false;
      }
      fd = s;
    }
    if (ev == events) return true;
    events = ev;
    uv_poll_start(&poll->h, ev, [](uv_poll_t* h, int status, int revents) {
      auto* p = reinterpret_cast<Poll*>(h);
      if (p->owner) p->owner->on_io(status, revents);
    });
    return true;
  }

  // Runs a user callback; false when it destroyed this object.
  template <class F>
  bool call(F&& f) {
    bool gone = false;
    bool* outer = dead;
    dead = &gone;
    f();
    if (gone) {
      if (outer) *outer = true;
      return false;
    }
    dead = outer;
    return true;
  }

  void start(const std::string& conninfo, Done d) {
    fail_all("reconnecting");
    close_poll();
    if (c) PQfinish(c);
    where = pg_describe_conninfo(conninfo);
    done = std::move(d);
    state = State::kConnecting;
    c = PQconnectStart(conninfo.c_str());
    if (!c || PQstatus(c) == CONNECTION_BAD || PQsetnonblocking(c, 1) != 0 || !arm(UV_WRITABLE)) {
      // Reported from the loop, as every other outcome of connect().
      connect_kick.start(0, [this] { connect_failed(); });
    }
  }

  void connect_failed() {
    std::string msg = c ? trimmed(PQerrorMessage(c)) : "out of memory";
    close_poll();
    if (c) PQfinish(c);
    c = nullptr;
    state = State::kIdle;
    Done d = std::move(done);
    done = nullptr;
    if (d) d(make_error(ErrDomain::kStore, "cannot connect to " + where + ": " + msg));
  }

  void on_io(int status, int revents) {
    if (state == State::kConnecting) {
      (void)status;
      (void)revents;
      switch (PQconnectPoll(c)) {
        case PGRES_POLLING_READING:
          if (!arm(UV_READABLE)) connect_failed();
          return;
        case PGRES_POLLING_WRITING:
          if (!arm(UV_WRITABLE)) connect_failed();
          return;
        case PGRES_POLLING_OK: break;
        default: connect_failed(); return;
      }
      if (PQenterPipelineMode(c) != 1) {
        connect_failed();
        return;
      }
      state = State::kReady;
      Done d = std::move(done);
      done = nullptr;
      if (d && !call([&] { d(Status{}); })) return;
      pump();
      return;
    }
    if (state != State::kReady) return;
    if (status < 0) {
      broke("poll failed");
      return;
    }
    if (revents & UV_READABLE) {
      if (PQconsumeInput(c) == 0) {
        broke(trimmed(PQerrorMessage(c)));
        return;
      }
      if (!drain()) return;
    }
    pump();
  }

  // Sends what is queued and flushes; polls for writable while libpq holds unsent bytes.
  void pump() {
    if (state != State::kReady) return;
    while (sent < queue.size()) {
      Pending& p = queue[sent];
      std::vector<const char*> values;
      values.reserve(p.params.size());
      for (const auto& v : p.params) values.push_back(v ? v->c_str() : nullptr);
      if (PQsendQueryParams(c, p.sql.c_str(), static_cast<int>(values.size()), nullptr,
                            values.data(), nullptr, nullptr, 0) != 1 ||
          PQpipelineSync(c) != 1) {
        broke(trimmed(PQerrorMessage(c)));
        return;
      }
      ++sent;
    }
    int f = PQflush(c);
    if (f < 0) {
      broke(trimmed(PQerrorMessage(c)));
      return;
    }
    if (!arm(f == 1 ? (UV_READABLE | UV_WRITABLE) : UV_READABLE)) broke("lost the socket");
  }

  // Hands every complete answer to its caller. False when a callback destroyed us.
  bool drain() {
    while (sent > 0 && state == State::kReady) {
      if (PQisBusy(c)) return true;
      PGresult* r = PQgetResult(c);
      if (!r) continue;  // the end of one statement's results; its sync point follows
      if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        if (!front) {
          front = to_result(r, where);
        } else {
          PQclear(r);
        }
        continue;
      }
      PQclear(r);
      Pending p = std::move(queue.front());
      queue.pop_front();
      --sent;
      Result<PgResult> res =
          front ? std::move(*front)
                : Result<PgResult>(make_error(ErrDomain::kStore, where + ": no result"));
      front.reset();
      if (!call([&] { p.reply(std::move(res)); })) return false;
    }
    return true;
  }

  void fail_all(const std::string& why) {
    std::deque<Pending> q = std::move(queue);
    queue.clear();
    sent = 0;
    front.reset();
    for (auto& p : q)
      if (!call([&] { p.reply(make_error(ErrDomain::kStore, where + ": " + why)); })) return;
  }

  void broke(const std::string& why) {
    close_poll();
    if (c) PQfinish(c);
    c = nullptr;
    state = State::kIdle;
    fail_all("connection lost: " + why);
  }

  void refuse(Reply r, std::string why) {
    refused.emplace_back(std::move(r), make_error(ErrDomain::kStore, where + ": " + why));
    if (!kick.active())
      kick.start(0, [this] {
        auto v = std::move(refused);
        refused.clear();
        for (auto& [reply, err] : v)
          if (!call([&] { reply(std::move(err)); })) return;
      });
  }
};

PgConn::PgConn(uv_loop_s* loop) : impl_(std::make_unique<Impl>(loop)) {}
PgConn::~PgConn() = default;

void PgConn::connect(const std::string& conninfo, Done done) {
  impl_->start(conninfo, std::move(done));
}

void PgConn::query(std::string sql, PgParams params, Reply reply) {
  if (impl_->state != Impl::State::kReady) {
    impl_->refuse(std::move(reply), "not connected");
    return;
  }
  impl_->queue.push_back({std::move(sql), std::move(params), std::move(reply)});
  impl_->pump();
}

bool PgConn::ready() const { return impl_->state == Impl::State::kReady; }
size_t PgConn::pending() const { return impl_->queue.size(); }
void PgConn::reset() { impl_->broke("closed"); }

// --- PgBlocking -------------------------------------------------------------------------

PgBlocking::PgBlocking(pg_conn* c, std::string conninfo)
    : c_(c), conninfo_(std::move(conninfo)), where_(pg_describe_conninfo(conninfo_)) {}

PgBlocking::~PgBlocking() { PQfinish(c_); }

Result<std::unique_ptr<PgBlocking>> PgBlocking::connect(const std::string& conninfo) {
  if (Status s = pg_check_conninfo(conninfo); !s) return s.error();
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (!c) return make_error(ErrDomain::kStore, "cannot connect to PostgreSQL: out of memory");
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = trimmed(PQerrorMessage(c));
    PQfinish(c);
    return make_error(ErrDomain::kStore,
                      "cannot connect to " + pg_describe_conninfo(conninfo) + ": " + msg);
  }
  // Quiet the server's NOTICEs ("relation already exists, skipping") on stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgBlocking>(new PgBlocking(c, conninfo));
}

Result<PgResult> PgBlocking::exec(const std::string& sql, const PgParams& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& v : params) values.push_back(v ? v->c_str() : nullptr);
  PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  if (!r) return make_error(ErrDomain::kStore, where_ + ": " + trimmed(PQerrorMessage(c_)));
  return to_result(r, where_);
}

Status PgBlocking::exec_script(const std::string& sql) {
  PGresult* r = PQexec(c_, sql.c_str());
  if (!r) return make_error(ErrDomain::kStore, where_ + ": " + trimmed(PQerrorMessage(c_)));
  auto res = to_result(r, where_);
  if (!res) return res.error();
  return {};
}

bool PgBlocking::broken() const { return PQstatus(c_) == CONNECTION_BAD; }

int PgBlocking::backend_pid() const { return PQbackendPID(c_); }

Status PgBlocking::reconnect() {
  PQreset(c_);
  if (PQstatus(c_) != CONNECTION_OK)
    return make_error(ErrDomain::kStore,
                      "cannot reconnect to " + where_ + ": " + trimmed(PQerrorMessage(c_)));
  return {};
}

}  // namespace sb
