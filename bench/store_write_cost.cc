// Instructions per recipient of the ways to write outcomes into a task's recipients table (issue
// 17): an UPDATE per row, a packed log row per commit, and folding that log into the table by
// rebuilding it. Standalone, run under callgrind; subtract `setup` from each mode:
//   g++ -O2 -std=c++20 bench/store_write_cost.cc -lsqlite3 -o /tmp/swc
//   for m in setup update log rebuild rebuild-noindex; do
//     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$m /tmp/swc $m /tmp/swc.db; done
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
namespace {
constexpr int N = 20000;     // recipients, as bench_instructions.py -n 20000
constexpr int BATCH = 1000;  // outcomes a commit
sqlite3 *db;
void ex(const char *sql) {
  char *e = nullptr;
  if (sqlite3_exec(db, sql, 0, 0, &e) != SQLITE_OK) {
    fprintf(stderr, "%s: %s\n", sql, e);
    exit(1);
  }
}
sqlite3_stmt *prep(const char *sql) {
  sqlite3_stmt *s;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, 0)) {
    fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    exit(1);
  }
  return s;
}
void step(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    fprintf(stderr, "step: %s\n", sqlite3_errmsg(db));
    exit(1);
  }
  sqlite3_reset(s);
}
const char *reply = "250 2.0.0 Ok: queued as 4ABCDEF1234";
}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: store_write_cost setup|update|log|rebuild|rebuild-noindex DB\n");
    return 2;
  }
  const char *mode = argv[1];
  std::string path = argv[2];
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  for (const char *suffix : {"", "-wal", "-shm"}) unlink((path + suffix).c_str());
  sqlite3_open(path.c_str(), &db);
  ex("PRAGMA journal_mode=WAL");
  ex("PRAGMA synchronous=NORMAL");
  ex("PRAGMA cache_size=-65536");
  ex("CREATE TABLE recipients(id INTEGER PRIMARY KEY, email TEXT NOT NULL, fields BLOB, status "
     "INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, code INTEGER NOT NULL "
     "DEFAULT 0, reply TEXT, updated INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT "
     "0)");
  ex("BEGIN");
  sqlite3_stmt *ins = prep("INSERT INTO recipients(email, fields) VALUES (?1, ?2)");
  char buf[64];
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof buf, "user%07d@example.test", i);
    sqlite3_bind_text(ins, 1, buf, -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(ins, 2, "\x05Name1\x07Company", 14, SQLITE_STATIC);
    step(ins);
  }
  ex("COMMIT");
  ex("CREATE UNIQUE INDEX recipients_address ON recipients(lower(email))");
  if (!strcmp(mode, "setup")) return 0;
  if (!strcmp(mode, "update")) {
    sqlite3_stmt *u = prep(
        "UPDATE recipients SET status = ?1, code = ?2, reply = ?3, attempts = ?4, updated = ?5 "
        "WHERE id = ?6");
    for (int b = 0; b < N; b += BATCH) {
      ex("BEGIN IMMEDIATE");
      for (int i = b; i < b + BATCH; i++) {
        sqlite3_bind_int(u, 1, 1);
        sqlite3_bind_int(u, 2, 250);
        sqlite3_bind_text(u, 3, reply, -1, SQLITE_STATIC);
        sqlite3_bind_int(u, 4, 1);
        sqlite3_bind_int64(u, 5, 1764800000);
        sqlite3_bind_int64(u, 6, i + 1);
        step(u);
      }
      ex("COMMIT");
    }
    return 0;
  }
  int noidx = !strcmp(mode, "rebuild-noindex");
  if (!strcmp(mode, "log") || !strcmp(mode, "rebuild") || noidx) {
    /* the hot path: one row per commit holding the batch's outcomes packed */
    ex("CREATE TABLE outcome_log(seq INTEGER PRIMARY KEY, data BLOB NOT NULL)");
    sqlite3_stmt *l = prep("INSERT INTO outcome_log(data) VALUES (?1)");
    static char pack[BATCH * 64];
    for (int b = 0; b < N; b += BATCH) {
      ex("BEGIN IMMEDIATE");
      size_t n = 0;
      for (int i = b; i < b + BATCH; i++) {
        long long id = i + 1;
        memcpy(pack + n, &id, 8);
        n += 8;
        pack[n++] = 1;
        short c = 250;
        memcpy(pack + n, &c, 2);
        n += 2;
        size_t rl = strlen(reply);
        pack[n++] = static_cast<char>(rl);
        memcpy(pack + n, reply, rl);
        n += rl;
      }
      sqlite3_bind_blob(l, 1, pack, static_cast<int>(n), SQLITE_STATIC);
      step(l);
      ex("COMMIT");
    }
    if (!strcmp(mode, "log")) return 0;
    /* the fold: rebuild the table in id order with the outcomes merged in C */
    ex("BEGIN IMMEDIATE");
    ex("CREATE TABLE r2(id INTEGER PRIMARY KEY, email TEXT NOT NULL, fields BLOB, status INTEGER "
       "NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, code INTEGER NOT NULL DEFAULT 0, "
       "reply TEXT, updated INTEGER NOT NULL DEFAULT 0, rejected INTEGER NOT NULL DEFAULT 0)");
    sqlite3_stmt *rd = prep(
        "SELECT id, email, fields, status, attempts, code, reply, updated, rejected FROM "
        "recipients ORDER BY id");
    sqlite3_stmt *w = prep("INSERT INTO r2 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    while (sqlite3_step(rd) == SQLITE_ROW) {
      for (int c = 0; c < 9; c++) sqlite3_bind_value(w, c + 1, sqlite3_column_value(rd, c));
      sqlite3_bind_int(w, 4, 1);
      sqlite3_bind_int(w, 6, 250);
      sqlite3_bind_text(w, 7, reply, -1, SQLITE_STATIC);
      sqlite3_bind_int(w, 5, 1);
      step(w);
    }
    sqlite3_reset(rd);
    ex("DROP TABLE recipients");
    ex("ALTER TABLE r2 RENAME TO recipients");
    if (!noidx) ex("CREATE UNIQUE INDEX recipients_address ON recipients(lower(email))");
    ex("DELETE FROM outcome_log");
    ex("COMMIT");
    return 0;
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 2;
}
