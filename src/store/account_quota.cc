// The shared account quota file: one DailyQuota state per account, changed under SQLite's lock.
#include "store/account_quota.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "store/sqlite_util.h"
#include "throttle/daily_quota.h"

namespace sb {

struct AccountQuota::Impl {
  SqliteDb db;
  Stmt get, put;
};

namespace {

Status sql_error(const std::string& path, sqlite3* db, const char* what) {
  return make_error(ErrDomain::kStore, "quota store " + path + ": " + what + ": " +
                                           (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

// mkdir -p for the directories above `path`, new ones 0700 (the file says who sends what).
Status make_parent_dirs(const std::string& path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string dir = path.substr(0, pos);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return make_error(ErrDomain::kStore, "quota store " + path + ": cannot create " + dir +
                                               ": " + std::strerror(errno));
    }
  }
  return {};
}

}  // namespace

std::string AccountQuota::default_path() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return std::string(state) + "/smtpblast/quota.db";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') {
    return std::string(home) + "/.local/state/smtpblast/quota.db";
  }
  return "";
}

AccountQuota::AccountQuota(std::unique_ptr<Impl> impl, std::string path)
    : impl_(std::move(impl)), path_(std::move(path)) {}
AccountQuota::~AccountQuota() = default;

Result<std::unique_ptr<AccountQuota>> AccountQuota::open(const std::string& path) {
  if (path.empty()) {
    return make_error(ErrDomain::kConfig, "no quota store: set HOME or XDG_STATE_HOME, or give "
                                          "--quota-store FILE");
  }
  // Absolute, so that `status` run from elsewhere finds the file the task names.
  std::string abs = path;
  if (abs[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) != nullptr) abs = std::string(cwd) + "/" + path;
  }
  if (auto d = make_parent_dirs(abs); !d.ok()) return d.error();
  auto impl = std::make_unique<Impl>();
  if (sqlite3_open_v2(abs.c_str(), &impl->db.h,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return sql_error(abs, impl->db.h, "cannot open").error();
  }
  sqlite3* db = impl->db.h;
  const std::string& path_abs = abs;
  // Several senders at once: wait for the lock rather than fail. FULL: a reservation is on
  // disk before its messages start, even across a power loss.
  sqlite3_busy_timeout(db, 30000);
  const char* setup =
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
      "CREATE TABLE IF NOT EXISTS account_quota ("
      "  account TEXT PRIMARY KEY, state TEXT NOT NULL, updated_ms INTEGER NOT NULL)";
  if (sqlite3_exec(db, setup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sql_error(path_abs, db, "cannot set up (is it a smtpblast quota store?)").error();
  }
  if (impl->get.prepare(db, "SELECT state FROM account_quota WHERE account = ?1") != SQLITE_OK ||
      impl->put.prepare(db, "INSERT INTO account_quota(account, state, updated_ms) "
                            "VALUES(?1, ?2, ?3) ON CONFLICT(account) DO UPDATE SET "
                            "state = excluded.state, updated_ms = excluded.updated_ms") !=
          SQLITE_OK) {
    return sql_error(path_abs, db, "cannot prepare").error();
  }
  return std::unique_ptr<AccountQuota>(new AccountQuota(std::move(impl), abs));
}

namespace {

// Runs `change` on the account's quota inside one write transaction and stores the result.
template <class F>
Status update(sqlite3* db, Stmt& get, Stmt& put, const std::string& path,
              const std::string& account, uint64_t limit, uint64_t now, F&& change) {
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sql_error(path, db, "cannot lock");
  }
  auto rollback = [&](Status s) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  };
  DailyQuota q(limit);
  get.reset();
  get.bind_text(1, account);
  int rc = sqlite3_step(get.get());
  if (rc == SQLITE_ROW) {
    // A state this program cannot read is not a reason to send over the limit: refuse.
    if (auto r = q.restore(get.col_text(0)); !r.ok()) {
      get.reset();
      return rollback(make_error(ErrDomain::kStore, "quota store " + path + ", account " +
                                                        account + ": " + r.error().message));
    }
  } else if (rc != SQLITE_DONE) {
    get.reset();
    return rollback(sql_error(path, db, "cannot read"));
  }
  get.reset();
  bool write = change(q);
  if (write) {
    std::string state = q.serialise(now);
    put.reset();
    put.bind_text(1, account);
    put.bind_text(2, state);
    put.bind(3, static_cast<int64_t>(now));
    if (sqlite3_step(put.get()) != SQLITE_DONE) {
      put.reset();
      return rollback(sql_error(path, db, "cannot write"));
    }
    put.reset();
  }
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return rollback(sql_error(path, db, "cannot commit"));
  }
  return {};
}

}  // namespace

Result<AccountQuota::Grant> AccountQuota::reserve(const std::string& account, uint64_t limit,
                                                  uint64_t want, uint64_t now) {
  Grant g;
  if (limit == 0) return make_error(ErrDomain::kConfig, "account quota without a limit");
  Status s = update(impl_->db.h, impl_->get, impl_->put, path_, account, limit, now,
                    [&](DailyQuota& q) {
                      g.granted = std::min(want, q.remaining(now));
                      if (g.granted > 0) {
                        q.take(now, g.granted);
                      } else {
                        g.resume_at = q.check(now, 1);
                      }
                      g.used = q.count(now);
                      return g.granted > 0;
                    });
  if (!s.ok()) return s.error();
  return g;
}

Status AccountQuota::give_back(const std::string& account, uint64_t charged_at, uint64_t n,
                               uint64_t now) {
  if (n == 0) return {};
  return update(impl_->db.h, impl_->get, impl_->put, path_, account, 1, now, [&](DailyQuota& q) {
    q.refund(charged_at, n);
    return true;
  });
}

Result<uint64_t> AccountQuota::used(const std::string& account, uint64_t now) {
  uint64_t n = 0;
  Status s = update(impl_->db.h, impl_->get, impl_->put, path_, account, 1, now,
                    [&](DailyQuota& q) {
                      n = q.count(now);
                      return false;
                    });
  if (!s.ok()) return s.error();
  return n;
}

}  // namespace sb
