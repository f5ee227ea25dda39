// PgTaskStore: schema, leased claims, fenced outcomes, the node's lease keeper, import.
#include "pg/pg_store.h"

#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>
#include <unordered_map>

#include "base/signal_mask.h"
#include "base/text.h"
#include "loop/timer.h"
#include "pg/pg_array.h"
#include "pg/pg_task_guard.h"
#include "store/address.h"
#include "store/field_codec.h"

namespace sb {

namespace {

constexpr size_t kInsertChunk = 5000;  // rows per INSERT at import
constexpr size_t kMaxReply = 512;

// One transaction, serialised by an advisory lock so that nodes starting together do not
// race on CREATE ... IF NOT EXISTS (which is not safe against itself in PostgreSQL). It also
// upgrades a version 1 or 2 database in place (1 -> 2: indexes; 2 -> 3: the SMS tables).
//
// Version 2's indexes keep the claim fast under any statistics. Version 1 had one index on
// (task, status, id): once ANALYZE had seen a task all unsent, the planner walked the primary
// key instead and filtered out every row claimed so far, on every claim (with the outcome
// write's plan, see record(), 30,000 recipients went from 1,767 to 541 msgs/s with ANALYZE
// after the import; bench/RESULTS.md). The partial indexes hold only claimable rows, in id order,
// so a claim that starts at its cursor reads what it takes plus the dead entries of rows claimed
// since by other nodes; they are also smaller and cost nothing for sent rows.
constexpr const char* kStoreSchema = R"sql(
SELECT pg_advisory_xact_lock(7152013);
CREATE TABLE IF NOT EXISTS smtpblast_schema (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  version integer NOT NULL);
INSERT INTO smtpblast_schema(version) VALUES (3) ON CONFLICT DO NOTHING;
CREATE SEQUENCE IF NOT EXISTS smtpblast_epoch;
CREATE TABLE IF NOT EXISTS smtpblast_tasks (
  task text PRIMARY KEY,
  fields text[] NOT NULL DEFAULT '{}',
  imported boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS smtpblast_meta (
  task text NOT NULL REFERENCES smtpblast_tasks ON DELETE CASCADE,
  key text NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (task, key));
CREATE TABLE IF NOT EXISTS smtpblast_recipients (
  task text NOT NULL REFERENCES smtpblast_tasks ON DELETE CASCADE,
  id bigint NOT NULL,
  email text NOT NULL,
  fields bytea,
  status smallint NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  code integer NOT NULL DEFAULT 0,
  reply text,
  updated bigint NOT NULL DEFAULT 0,
  rejected boolean NOT NULL DEFAULT false,
  node text,
  epoch bigint,
  lease_deadline timestamptz,
  done_by text,
  PRIMARY KEY (task, id));
CREATE INDEX IF NOT EXISTS smtpblast_recipients_unsent
  ON smtpblast_recipients (task, id) WHERE status = 0;
CREATE INDEX IF NOT EXISTS smtpblast_recipients_held
  ON smtpblast_recipients (task, epoch, id) WHERE status IN (2, 5);
DROP INDEX IF EXISTS smtpblast_recipients_status;
CREATE TABLE IF NOT EXISTS smtpblast_nodes (
  task text NOT NULL REFERENCES smtpblast_tasks ON DELETE CASCADE,
  epoch bigint NOT NULL,
  node text NOT NULL,
  started timestamptz NOT NULL DEFAULT now(),
  heartbeat timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz NOT NULL,
  finished boolean NOT NULL DEFAULT false,
  PRIMARY KEY (task, epoch));
CREATE TABLE IF NOT EXISTS smtpblast_sms_ids (
  seq bigserial PRIMARY KEY,
  task text NOT NULL,
  rcpt_id bigint NOT NULL,
  message_id text NOT NULL,
  part integer NOT NULL,
  parts integer NOT NULL,
  submitted bigint NOT NULL,
  state smallint NOT NULL DEFAULT 0,
  done bigint NOT NULL DEFAULT 0,
  ref integer NOT NULL DEFAULT -1,
  FOREIGN KEY (task, rcpt_id) REFERENCES smtpblast_recipients ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS smtpblast_sms_ids_message ON smtpblast_sms_ids (task, message_id);
CREATE INDEX IF NOT EXISTS smtpblast_sms_ids_rcpt ON smtpblast_sms_ids (task, rcpt_id);
CREATE TABLE IF NOT EXISTS smtpblast_suppressed (
  task text NOT NULL REFERENCES smtpblast_tasks ON DELETE CASCADE,
  key text NOT NULL,
  reason text NOT NULL,
  time bigint NOT NULL,
  seq bigserial,
  PRIMARY KEY (task, key));
UPDATE smtpblast_schema SET version = 3 WHERE version < 3;
)sql";

// A row's owner lost it: its own deadline and its node's lease have both run out.
constexpr const char* kExpired =
    "r.lease_deadline < now() AND NOT EXISTS (SELECT 1 FROM smtpblast_nodes n "
    "WHERE n.task = r.task AND n.epoch = r.epoch AND n.lease_until >= now())";

Error store_error(std::string msg) { return make_error(ErrDomain::kStore, std::move(msg)); }

bool unhex(std::string_view h, std::string& out) {
  out.clear();
  if (h.size() % 2 != 0) return false;
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < h.size(); i += 2) {
    int a = val(h[i]), b = val(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out += static_cast<char>(a * 16 + b);
  }
  return true;
}

// Parses a text[] value as PostgreSQL prints it ({a,"b c",NULL}).
std::vector<std::string> parse_text_array(std::string_view t) {
  std::vector<std::string> out;
  if (t.size() < 2) return out;
  t = t.substr(1, t.size() - 2);
  size_t i = 0;
  while (i < t.size()) {
    std::string v;
    if (t[i] == '"') {
      for (++i; i < t.size() && t[i] != '"'; ++i) {
        if (t[i] == '\\' && i + 1 < t.size()) ++i;
        v += t[i];
      }
      ++i;
    } else {
      while (i < t.size() && t[i] != ',') v += t[i++];
    }
    out.push_back(std::move(v));
    if (i < t.size() && t[i] == ',') ++i;
  }
  return out;
}

int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string default_node_name() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace

// --- the lease keeper -------------------------------------------------------------------

// A thread with a libuv loop of its own and an asynchronous connection: it renews the node's
// lease every lease/3 and reconnects when the server went away. A stopped process (SIGSTOP)
// stops this thread too, so its lease runs out as it should.
class PgTaskStore::Keeper {
 public:
  Keeper(std::string conninfo, std::string task, int64_t epoch, uint32_t lease_ms,
         std::atomic<int64_t>* renewed_ms, std::atomic<bool>* lost)
      : conninfo_(std::move(conninfo)),
        task_(std::move(task)),
        epoch_(epoch),
        lease_ms_(lease_ms),
        renewed_ms_(renewed_ms),
        lost_(lost) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) { uv_stop(a->loop); });
    // Like every helper thread, it never takes the run's SIGINT/SIGTERM.
    with_signals_blocked([this] { thread_ = std::thread([this] { run(); }); });
  }
  ~Keeper() {
    uv_async_send(&stop_);
    thread_.join();
    uv_close(reinterpret_cast<uv_handle_t*>(&stop_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

 private:
  void run() {
    {
      PgConn conn(&loop_);
      Timer tick(&loop_);
      bool connecting = false;
      bool busy = false;
      std::function<void()> beat_now;  // the first renewal right after (re)connecting
      const std::string sql =
          "UPDATE smtpblast_nodes SET heartbeat = now(), "
          "lease_until = now() + $3::bigint * interval '1 millisecond' "
          "WHERE task = $1 AND epoch = $2 AND lease_until >= now()";
      PgParams params{task_, std::to_string(epoch_), std::to_string(lease_ms_)};
      auto beat = [&] {
        if (conn.ready()) {
          if (busy) return;
          busy = true;
          int64_t asked = mono_ms();
          conn.query(sql, params, [&, asked](Result<PgResult> r) {
            busy = false;
            // The lease runs from when the renewal was asked, not answered. A renewal of a
            // lease that ran out in the database (after a SIGSTOP, or a database away for
            // longer than the lease) is refused there: other nodes may have taken this node's
            // rows over, so the lease stays lost. An error (the database away) decides
            // nothing: claims_lost's clock does.
            if (!r.ok()) return;
            if (r->affected() == 1) {
              renewed_ms_->store(asked);
            } else {
              lost_->store(true);
            }
          });
        } else if (!connecting) {
          connecting = true;
          conn.connect(conninfo_, [&](Status s) {
            connecting = false;
            if (s.ok()) beat_now();
          });
        }
      };
      beat_now = beat;
      tick.start(0, beat, std::max<uint32_t>(lease_ms_ / 3, 100));
      uv_run(&loop_, UV_RUN_DEFAULT);
    }
    uv_run(&loop_, UV_RUN_NOWAIT);  // close callbacks of the poll and the timer
  }

  std::string conninfo_;
  std::string task_;
  int64_t epoch_;
  uint32_t lease_ms_;
  std::atomic<int64_t>* renewed_ms_;
  std::atomic<bool>* lost_;
  uv_loop_t loop_;
  uv_async_t stop_;
  std::thread thread_;
};

// --- open -------------------------------------------------------------------------------

PgTaskStore::PgTaskStore(std::unique_ptr<PgBlocking> db, PgStoreOptions o)
    : db_(std::move(db)), opts_(std::move(o)), task_(opts_.task) {}

Result<std::unique_ptr<PgTaskStore>> PgTaskStore::open(const PgStoreOptions& o) {
  auto db = PgBlocking::connect(o.conninfo);
  if (!db) return db.error();
  std::unique_ptr<PgTaskStore> s(new PgTaskStore(std::move(db).value(), o));
  if (Status st = s->init(o); !st) return st.error();
  return s;
}

Status PgTaskStore::init(const PgStoreOptions& o) {
  const std::string& where = db_->where();
  auto exists = db_->exec("SELECT to_regclass('smtpblast_schema') IS NOT NULL");
  if (!exists) return exists.error();
  if (exists->text(0, 0) == "t") {
    auto v = db_->exec("SELECT version FROM smtpblast_schema");
    if (!v) return v.error();
    int64_t version = v->rows() > 0 ? v->int64(0, 0) : 0;
    if (version > kPgSchemaVersion)
      return make_error(ErrDomain::kConfig,
                        where + " holds smtpblast schema version " + std::to_string(version) +
                            ", newer than this smtpblast understands (" +
                            std::to_string(kPgSchemaVersion) + "): use a newer smtpblast");
    // An older schema is upgraded in place: version 1 -> 2 changes indexes, 2 -> 3 adds tables.
    if (version < 1)
      return make_error(ErrDomain::kConfig, where + " holds smtpblast schema version " +
                                                std::to_string(version) + ", expected " +
                                                std::to_string(kPgSchemaVersion));
    if (version < kPgSchemaVersion) {
      if (Status s = db_->exec_script(kStoreSchema); !s) return s;
    }
  } else if (!o.create) {
    return store_error(where + " holds no smtpblast tasks (no task '" + task_ +
                       "'); `smtpblast import` or `send --recipients` creates it");
  }
  if (o.create) {
    if (Status s = db_->exec_script(kStoreSchema); !s) return s;
    auto t =
        db_->exec("INSERT INTO smtpblast_tasks(task) VALUES ($1) ON CONFLICT DO NOTHING", {task_});
    if (!t) return t.error();
  }
  auto has = db_->exec("SELECT 1 FROM smtpblast_tasks WHERE task = $1", {task_});
  if (!has) return has.error();
  if (has->rows() == 0)
    return store_error(where + " has no task '" + task_ +
                       "'; `smtpblast import` or `send --recipients` creates it");
  if (o.node) {
    // Statistics for the planner after an import (or a large reset): the claim's plan does
    // not depend on them (the partial indexes), but the outcome writes' and status's do. One
    // node of several starting together analyses; the others go on.
    (void)db_->exec_script(
        "DO $$ BEGIN IF pg_try_advisory_xact_lock(7152014) AND (SELECT coalesce(bool_or("
        "n_mod_since_analyze > greatest(n_live_tup / 10, 1000)), false) FROM pg_stat_user_tables "
        "WHERE relid = 'smtpblast_recipients'::regclass) "
        "THEN ANALYZE smtpblast_recipients; END IF; END $$");
    node_ = o.node_name.empty() ? default_node_name() : o.node_name;
    auto n = db_->exec(
        "INSERT INTO smtpblast_nodes(task, epoch, node, lease_until) "
        "VALUES ($1, nextval('smtpblast_epoch'), $2, now() + $3::bigint * interval '1 "
        "millisecond') RETURNING epoch",
        {task_, node_, std::to_string(o.lease_ms)});
    if (!n) return n.error();
    epoch_ = n->int64(0, 0);
    renewed_ms_.store(mono_ms() - 500);  // asked a moment before the INSERT's answer
    keeper_ =
        std::make_unique<Keeper>(o.conninfo, task_, epoch_, o.lease_ms, &renewed_ms_, &lease_lost_);
  }
  // Read after a node registered: a reset or import --replace that held the task made the
  // registration wait for its commit (pg_task_guard.h), so this is the list it left.
  auto t = db_->exec("SELECT imported, fields FROM smtpblast_tasks WHERE task = $1", {task_});
  if (!t) return t.error();
  if (t->rows() == 0)
    return store_error(where + " has no task '" + task_ +
                       "'; `smtpblast import` or `send --recipients` creates it");
  imported_ = t->text(0, 0) == "t";
  fields_ = parse_text_array(t->text(0, 1));
  return {};
}

PgTaskStore::~PgTaskStore() {
  keeper_.reset();
  if (epoch_ != 0) release_held();
}

void PgTaskStore::release_held() {
  // In flight here after the run: a claim whose answer the connection lost (the engine never
  // saw the rows). Deferred rows kept for a retry in this run are free for any node now.
  (void)run(
      "UPDATE smtpblast_recipients SET status = CASE WHEN status = 5 THEN "
      "(CASE WHEN attempts > 0 THEN 2 ELSE 0 END) ELSE status END, "
      "node = NULL, epoch = NULL, lease_deadline = NULL "
      "WHERE task = $1 AND epoch = $2 AND status IN (2, 5)",
      {task_, std::to_string(epoch_)});
  (void)run(
      "UPDATE smtpblast_nodes SET finished = true, heartbeat = now() "
      "WHERE task = $1 AND epoch = $2",
      {task_, std::to_string(epoch_)});
}

Result<PgResult> PgTaskStore::run(const std::string& sql, const PgParams& params) {
  if (recheck_ && !in_reconcile_) reconcile();
  auto r = db_->exec(sql, params);
  if (r || !db_->broken()) return r;
  // The server went away (restart, failover): reconnect for a while, then try once more.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReconnectMs);
  Status s = db_->reconnect();
  while (!s && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    s = db_->reconnect();
  }
  if (!s) return s.error();
  ++reconnects_;
  // A sending node's rows first (a claim run again must not take what the run holds).
  if (epoch_ != 0) {
    recheck_ = true;
    if (!in_reconcile_) reconcile();
  }
  return db_->exec(sql, params);
}

// --- meta -------------------------------------------------------------------------------

Result<std::optional<std::string>> PgTaskStore::get_meta(std::string_view key) {
  auto r = run("SELECT value FROM smtpblast_meta WHERE task = $1 AND key = $2",
               {task_, std::string(key)});
  if (!r) return r.error();
  std::optional<std::string> out;
  if (r->rows() > 0) out.emplace(r->text(0, 0));
  return out;
}

Status PgTaskStore::set_meta(std::string_view key, std::string_view value) {
  if (key.rfind("sb.", 0) == 0)
    return store_error("metadata key '" + std::string(key) + "' is reserved for the store");
  auto r =
      run("INSERT INTO smtpblast_meta(task, key, value) VALUES ($1, $2, $3) "
          "ON CONFLICT (task, key) DO UPDATE SET value = excluded.value",
          {task_, std::string(key), std::string(value)});
  if (!r) return r.error();
  return {};
}

// Insert if absent, then read what is there: a node whose insert lost the race reads the
// winner's value (the second statement sees the other's committed row).
Result<std::string> PgTaskStore::meta_or_set(std::string_view key, std::string_view value) {
  if (key.rfind("sb.", 0) == 0)
    return store_error("metadata key '" + std::string(key) + "' is reserved for the store");
  auto ins =
      run("INSERT INTO smtpblast_meta(task, key, value) VALUES ($1, $2, $3) "
          "ON CONFLICT (task, key) DO NOTHING",
          {task_, std::string(key), std::string(value)});
  if (!ins) return ins.error();
  auto have = get_meta(key);
  if (!have) return have.error();
  if (!have->has_value()) return store_error("metadata key '" + std::string(key) + "' vanished");
  return std::move(**have);
}

// --- claims and outcomes ----------------------------------------------------------------

Result<size_t> PgTaskStore::claim(int64_t after_id, size_t limit, std::vector<RecipientRow>& out,
                                  bool mark_in_flight) {
  if (limit == 0) return size_t{0};
  if (mark_in_flight && recheck_) reconcile();
  if (mark_in_flight && !reconcile_error_.empty())
    return store_error(
        where() + ": cannot set this node's rows right after reconnecting: " + reconcile_error_);
  const std::string lim = std::to_string(std::min<size_t>(limit, INT32_MAX));
  const std::string after = std::to_string(after_id);
  // Index walks that each lock what they take and skip rows other nodes are claiming right
  // now; the first `limit` of their union by id are claimed. Unsent rows come from the
  // cursor on (a1: the partial index's dead entries behind it, rows claimed earlier, are not
  // read again), then from the start (a0, only when a1 came short: rows another node released
  // behind the cursor). Deferred rows released by their node (b), after the cursor. Rows
  // whose owner's lease ran out, or in flight with no owner (left by schema 1's smtpblast when
  // a node released a row it had taken over) (c): looked for when this node's last claim came
  // short, and otherwise every lease/4, as a lease that just ran out may wait that long.
  const int64_t now = mono_ms();
  const bool expired = !mark_in_flight || last_claim_short_ || now >= next_expired_ms_;
  std::string lock = mark_in_flight ? " FOR UPDATE SKIP LOCKED" : "";
  std::vector<int64_t> offered;
  if (mark_in_flight) {
    for (int64_t id : adopt_)
      if (!held_.contains(id)) offered.push_back(id);
  }
  std::string pick =
      "WITH a1 AS (SELECT id, status FROM smtpblast_recipients WHERE task = $1 AND status = 0 "
      "AND id > $2 ORDER BY id LIMIT $3" +
      lock +
      "), a0 AS (SELECT id, status FROM smtpblast_recipients WHERE task = $1 AND status = 0 "
      "AND id <= $2 AND (SELECT count(*) FROM a1) < $3 ORDER BY id LIMIT $3" +
      lock +
      "), b AS (SELECT id, status FROM smtpblast_recipients WHERE task = $1 AND status = 2 "
      "AND epoch IS NULL AND id > $2 ORDER BY id LIMIT $3" +
      lock + "), c AS (SELECT id, status FROM smtpblast_recipients r WHERE task = $1 " +
      "AND status IN (2, 5) AND ((status = 5 AND epoch IS NULL) OR (epoch IS NOT NULL AND " +
      kExpired + "))" + (expired ? "" : " AND false") + " ORDER BY id LIMIT $3" + lock +
      // This node's rows that a reconnect found and the run does not hold (d).
      (offered.empty() ? ""
                       : "), d AS (SELECT id, 5::smallint AS status FROM "
                         "smtpblast_recipients WHERE task = $1 AND id = ANY($7::bigint[]) "
                         "AND epoch = $5 AND status IN (2, 5) ORDER BY id LIMIT $3" +
                             lock) +
      "), pick AS (SELECT * FROM (SELECT * FROM a1 UNION ALL SELECT * FROM a0 UNION ALL "
      "SELECT * FROM b UNION ALL SELECT * FROM c" +
      (offered.empty() ? "" : " UNION ALL SELECT * FROM d") + ") u ORDER BY id LIMIT $3) ";
  Result<PgResult> r = make_error(ErrDomain::kStore, "");
  if (mark_in_flight) {
    if (epoch_ == 0) return store_error("bug: a claim on a PostgreSQL task by no node");
    PgParams params{
        task_, after, lim, node_, std::to_string(epoch_), std::to_string(opts_.lease_ms)};
    if (!offered.empty()) {
      PgArray ids;
      for (int64_t id : offered) ids.add(id);
      params.emplace_back(ids.done());
    }
    r = run(pick +
                "UPDATE smtpblast_recipients r SET status = 5, node = $4, epoch = $5, "
                "lease_deadline = now() + $6::bigint * interval '1 millisecond' FROM pick "
                "WHERE r.task = $1 AND r.id = pick.id "
                "RETURNING r.id, r.email, encode(r.fields, 'hex'), r.attempts, pick.status",
            params);
  } else {
    r = run(pick +
                "SELECT r.id, r.email, encode(r.fields, 'hex'), r.attempts, r.status "
                "FROM smtpblast_recipients r JOIN pick ON r.task = $1 AND r.id = pick.id",
            {task_, after, lim});
  }
  if (!r) return r.error();
  if (mark_in_flight) {
    if (expired) next_expired_ms_ = now + opts_.lease_ms / 4;
    last_claim_short_ = static_cast<size_t>(r->rows()) < limit;
    if (!offered.empty()) adopted(offered, *r, limit);
  }
  size_t first = out.size();
  std::string blob;
  for (int i = 0; i < r->rows(); ++i) {
    // A row the run holds already, whose claim the server lost (unsent again, claimed here
    // again): it stays with the run, whose outcome the fence now accepts.
    if (mark_in_flight && held_.contains(r->int64(i, 0))) continue;
    RecipientRow& row = out.emplace_back();
    row.id = r->int64(i, 0);
    row.email = std::string(r->text(i, 1));
    if (!unhex(r->text(i, 2), blob) || !decode_fields(blob, fields_.size(), row.values)) {
      out.resize(first);
      return store_error(where() + ": bad merge fields for recipient " + std::to_string(row.id) +
                         " of task " + task_);
    }
    row.attempts = static_cast<uint32_t>(r->int64(i, 3));
    row.status = static_cast<RcptStatus>(r->int64(i, 4));
  }
  if (mark_in_flight) {
    for (size_t i = first; i < out.size(); ++i) held_.insert(out[i].id);
  }
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const RecipientRow& x, const RecipientRow& y) { return x.id < y.id; });
  return out.size() - first;
}

std::string PgTaskStore::claims_lost() {
  if (epoch_ == 0) return {};
  int64_t silent = mono_ms() - renewed_ms_.load();
  if (lease_lost_.load()) silent = std::max<int64_t>(silent, opts_.lease_ms);
  if (silent < static_cast<int64_t>(opts_.lease_ms)) return {};
  return "this node's lease on " + where() + " ran out (not renewed for " +
         std::to_string(silent / 1000) +
         " s: the process was stopped or cut off from the database); other nodes may have "
         "taken its recipients over, so it starts no more messages; run it again to rejoin";
}

bool PgTaskStore::more_later() {
  // Unsent rows count too: a claim skips rows another node is claiming at that moment (SKIP
  // LOCKED), and that node's transaction may not have committed when this one reads, so they
  // still look unsent here. Deferred rows another node keeps for a retry come back when it ends
  // or its lease runs out. A node that started after the others claimed everything thus
  // waits for the task to be done instead of ending with the rows still out (issue 13).
  auto r =
      run("SELECT EXISTS (SELECT 1 FROM smtpblast_recipients WHERE task = $1 AND status = 0) "
          "OR EXISTS (SELECT 1 FROM smtpblast_recipients WHERE task = $1 AND status IN (2, 5) "
          "AND (epoch != $2 OR (status = 5 AND epoch IS NULL)))",
          {task_, std::to_string(epoch_)});
  // Unreadable: say yes, the next claim reports the error (and stops the run). This node's
  // own rows that a reconnect found and the run does not hold yet: the next claim hands
  // them out (they are not done; the query above does not count this node's rows).
  return !r || r->text(0, 0) == "t" || recheck_ || !adopt_.empty() || !reconcile_error_.empty();
}

Status PgTaskStore::record(const std::vector<Outcome>& outcomes) {
  if (outcomes.empty()) return {};
  // One UPDATE for the batch; the same recipient twice in a batch (deferred, then its retry)
  // would update the row once with either, so the batch is folded first: the later outcome
  // wins, and a release after an outcome only changes that outcome's status.
  std::unordered_map<int64_t, size_t> at;
  std::vector<Outcome> folded;
  folded.reserve(outcomes.size());
  for (const Outcome& o : outcomes) {
    if (static_cast<int>(o.status) > kRcptStatusMax)
      return store_error("bug: outcome for recipient " + std::to_string(o.id) +
                         " has unknown status " + std::to_string(static_cast<int>(o.status)));
    auto [it, fresh] = at.try_emplace(o.id, folded.size());
    if (fresh) {
      folded.push_back(o);
    } else if (o.status_only && !folded[it->second].status_only) {
      folded[it->second].status = o.status;
    } else {
      folded[it->second] = o;
    }
  }
  PgArray ids, st, code, reply, att, upd, only;
  for (const Outcome& o : folded) {
    ids.add(o.id);
    st.add(static_cast<int64_t>(o.status));
    code.add(static_cast<int64_t>(o.code));
    reply.add(cap_utf8(o.reply, kMaxReply));
    att.add(static_cast<int64_t>(o.attempts));
    upd.add(o.time);
    only.add(o.status_only);
  }
  // Fenced by node and epoch: a row another node took over is not ours to write. A deferred
  // row keeps its owner (a retry in this run may follow); anything else is released. A row
  // taken over from a node whose lease ran out was in flight before this claim: released
  // unsent, it goes back to unsent or deferred (by its attempts), not to an in-flight row
  // without an owner, which no claim would find again.
  // The rows are found by primary key (id = ANY), and the fence is a join with a materialised
  // CTE, not a filter on the table: statistics gathered while no row was in flight say that no
  // row has this node and epoch, and with that filter on the table the planner chose to scan
  // all of it and join every row it kept with every outcome (~1 s a batch at 30,000 rows).
  std::string update =
      "UPDATE smtpblast_recipients r SET status = CASE WHEN o.release AND o.status = 5 "
      "THEN (CASE WHEN r.attempts > 0 THEN 2 ELSE 0 END) ELSE o.status END, "
      "code = CASE WHEN o.release THEN r.code ELSE o.code END, "
      "reply = CASE WHEN o.release THEN r.reply ELSE o.reply END, "
      "attempts = CASE WHEN o.release THEN r.attempts ELSE o.attempts END, "
      "updated = CASE WHEN o.release THEN r.updated ELSE o.updated END, "
      "done_by = CASE WHEN o.release THEN r.done_by ELSE r.node END, "
      "node = CASE WHEN o.status = 2 AND NOT o.release THEN r.node END, "
      "epoch = CASE WHEN o.status = 2 AND NOT o.release THEN r.epoch END, "
      "lease_deadline = CASE WHEN o.status = 2 AND NOT o.release THEN r.lease_deadline END "
      "FROM o WHERE r.task = $1 AND r.id = ANY($4::bigint[]) AND r.id = o.id "
      "AND r.node = o.node AND r.epoch = o.epoch";
  PgParams params{task_,      node_,       std::to_string(epoch_), ids.done(),
                  st.done(),  code.done(), reply.done(),           att.done(),
                  upd.done(), only.done()};
  // An SMS's provider ids go in with its outcome, in the same statement (pg_sms.cc).
  const bool sms_ids = with_sms_ids(outcomes, update, params);
  const uint64_t reconnects_before = reconnects_;
  auto r =
      run("WITH o AS MATERIALIZED (SELECT u.*, $2::text AS node, $3::bigint AS epoch "
          "FROM unnest($4::bigint[], $5::smallint[], $6::integer[], $7::text[], $8::integer[], "
          "$9::bigint[], $10::boolean[]) AS u(id, status, code, reply, attempts, updated, "
          "release)) " +
              update,
          params);
  if (!r) return r.error();
  if (in_reconcile_) return {};  // outcomes written again (reconcile_once)
  // Run again after a reconnect, rows the first run had written are not matched again: not
  // refused by the fence, so not counted.
  const uint64_t written = sms_ids ? static_cast<uint64_t>(r->int64(0, 0)) : r->affected();
  if (reconnects_ == reconnects_before)
    fenced_ += folded.size() - std::min<uint64_t>(folded.size(), written);
  // The run holds a deferred recipient still (a retry may follow); any other outcome ends it.
  for (const Outcome& o : folded) {
    if (o.status_only || o.status != RcptStatus::kDeferred) held_.erase(o.id);
  }
  const int64_t now = mono_ms();
  while (!recent_.empty() && recent_.front().at_ms < now - kRecentMs) recent_.pop_front();
  recent_.push_back({now, std::move(folded)});
  return {};
}

Result<StatusCounts> PgTaskStore::counts(bool with_codes) {
  StatusCounts out;
  auto r =
      run("SELECT status, count(*) FROM smtpblast_recipients WHERE task = $1 "
          "GROUP BY status",
          {task_});
  if (!r) return r.error();
  for (int i = 0; i < r->rows(); ++i) {
    int64_t v = r->int64(i, 0);
    auto n = static_cast<uint64_t>(r->int64(i, 1));
    out.total += n;
    if (known_rcpt_status(v)) {
      out.by_status[static_cast<RcptStatus>(v)] = n;
    } else {
      out.unknown += n;
      if (out.unknown_values.size() < 5) out.unknown_values.push_back(std::to_string(v));
    }
  }
  if (!with_codes) return out;
  auto c =
      run("SELECT code, count(*) FROM smtpblast_recipients WHERE task = $1 AND status != 0 "
          "GROUP BY code",
          {task_});
  if (!c) return c.error();
  for (int i = 0; i < c->rows(); ++i)
    out.by_code[static_cast<int>(c->int64(i, 0))] = static_cast<uint64_t>(c->int64(i, 1));
  return out;
}

Status PgTaskStore::reset(bool errors_only) {
  std::string sql =
      "UPDATE smtpblast_recipients SET status = 0, attempts = 0, code = 0, reply = NULL, "
      "done_by = NULL, node = NULL, epoch = NULL, lease_deadline = NULL, "
      "updated = extract(epoch FROM now())::bigint WHERE task = $1 AND NOT rejected AND ";
  sql +=
      errors_only ? "status IN (2, 3)" : "(status != 0 OR attempts != 0) AND status NOT IN (6, 7)";
  // Never under a running node (pg_task_guard.h): one transaction with the task's row lock.
  if (auto b = run("BEGIN", {}); !b) return b.error();
  Status s = pg_lock_idle_task(*db_, task_, epoch_, errors_only ? "reset --errors" : "reset --all");
  if (s) {
    if (auto r = db_->exec(sql, {task_}); !r) s = r.error();
  }
  if (s) {
    if (auto c = db_->exec("COMMIT"); !c) s = c.error();
  }
  if (!s) (void)db_->exec("ROLLBACK");
  return s;
}

Result<std::vector<std::pair<RecipientRow, Outcome>>> PgTaskStore::list(
    const std::vector<RcptStatus>& statuses, size_t limit) {
  std::vector<std::pair<RecipientRow, Outcome>> out;
  if (statuses.empty()) return out;
  PgArray in;
  for (RcptStatus s : statuses) in.add(static_cast<int64_t>(s));
  auto r =
      run("SELECT id, email, encode(fields, 'hex'), attempts, code, reply, updated, status "
          "FROM smtpblast_recipients WHERE task = $1 AND status = ANY($2::smallint[]) "
          "ORDER BY id LIMIT $3",
          {task_, in.done(), std::to_string(std::min<size_t>(limit, INT64_MAX))});
  if (!r) return r.error();
  std::string blob;
  for (int i = 0; i < r->rows(); ++i) {
    auto& [row, o] = out.emplace_back();
    row.id = o.id = r->int64(i, 0);
    row.email = std::string(r->text(i, 1));
    if (!unhex(r->text(i, 2), blob) || !decode_fields(blob, fields_.size(), row.values))
      return store_error(where() + ": bad merge fields for recipient " + std::to_string(row.id));
    row.attempts = o.attempts = static_cast<uint32_t>(r->int64(i, 3));
    o.code = static_cast<int>(r->int64(i, 4));
    o.reply = std::string(r->text(i, 5));
    o.time = r->int64(i, 6);
    o.status = row.status = static_cast<RcptStatus>(r->int64(i, 7));
  }
  return out;
}

// --- nodes ------------------------------------------------------------------------------

Result<std::vector<PgNodeInfo>> PgTaskStore::nodes() {
  auto r = run(
      "SELECT node, epoch, to_char(started AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "to_char(heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "NOT finished AND lease_until >= now(), finished "
      "FROM smtpblast_nodes WHERE task = $1 ORDER BY epoch",
      {task_});
  if (!r) return r.error();
  std::vector<PgNodeInfo> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgNodeInfo& n = out.emplace_back();
    n.node = std::string(r->text(i, 0));
    n.epoch = r->int64(i, 1);
    n.started = std::string(r->text(i, 2));
    n.heartbeat = std::string(r->text(i, 3));
    n.alive = r->text(i, 4) == "t";
    n.finished = r->text(i, 5) == "t";
  }
  return out;
}

Result<std::vector<PgNodeCounts>> PgTaskStore::node_counts() {
  auto r =
      run("SELECT coalesce(CASE WHEN status IN (2, 5) AND node IS NOT NULL THEN node END, done_by, "
          "''), "
          "count(*) FILTER (WHERE status = 1), count(*) FILTER (WHERE status = 3), "
          "count(*) FILTER (WHERE status = 2), count(*) FILTER (WHERE status = 4), "
          "count(*) FILTER (WHERE status = 5) "
          "FROM smtpblast_recipients WHERE task = $1 GROUP BY 1 ORDER BY 1",
          {task_});
  if (!r) return r.error();
  std::vector<PgNodeCounts> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgNodeCounts& c = out.emplace_back();
    c.node = std::string(r->text(i, 0));
    c.sent = static_cast<uint64_t>(r->int64(i, 1));
    c.failed = static_cast<uint64_t>(r->int64(i, 2));
    c.deferred = static_cast<uint64_t>(r->int64(i, 3));
    c.suppressed = static_cast<uint64_t>(r->int64(i, 4));
    c.in_flight = static_cast<uint64_t>(r->int64(i, 5));
  }
  return out;
}

// --- returned mail: pg_returns.cc -----------------------------------------------------

Result<std::optional<std::string>> PgTaskStore::email_of(int64_t id) {
  auto r = run("SELECT email FROM smtpblast_recipients WHERE task = $1 AND id = $2",
               {task_, std::to_string(id)});
  if (!r) return r.error();
  std::optional<std::string> out;
  if (r->rows() > 0) out.emplace(r->text(0, 0));
  return out;
}

}  // namespace sb
