// PgTaskStore: one mailing in a PostgreSQL database, shared by several nodes through leases.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "pg/pg_conn.h"
#include "store/task_store.h"

namespace sb {

// 2: partial indexes for the claim; 3: SMS provider ids and the tasks' suppression lists
// (pg_sms.cc). An older database is upgraded in place when opened; a newer one is refused.
inline constexpr int kPgSchemaVersion = 3;

// `--task postgresql://user@host/db?task=march`: the libpq URL without `task`, and the task.
struct PgTaskUrl {
  std::string conninfo;
  std::string task;
};
bool is_pg_task_url(const std::string& spec);
// A kConfig error names what is wrong (no task name, a password in the URL, bad syntax).
Result<PgTaskUrl> parse_pg_task_url(const std::string& spec);

struct PgStoreOptions {
  std::string conninfo;
  std::string task;
  bool create = false;  // create the schema and the task when missing (import, send)
  // A sending node: registers in the nodes table with a new epoch and keeps its lease alive
  // from a thread of its own. Verbs that only read or reset leave this off.
  bool node = false;
  std::string node_name;      // "" = hostname:pid
  uint32_t lease_ms = 30000;  // a node silent this long loses its claims to live nodes
};

// PostgreSQL text holds neither NUL nor invalid UTF-8 (SQLite keeps any bytes): such octets
// become '?', as the accounting log writes them (pg_returns.cc).
std::string pg_text(std::string_view s);

// Per node, for `status`.
struct PgNodeInfo {
  std::string node;
  int64_t epoch = 0;
  std::string started, heartbeat;  // server time, ISO 8601
  bool alive = false;              // its lease has not run out
  bool finished = false;           // it ended its run cleanly
};
struct PgNodeCounts {
  std::string node;  // "" = recorded by no node (import, reset)
  uint64_t sent = 0, failed = 0, deferred = 0, suppressed = 0, in_flight = 0;
};

// Claims are leases. A claim (one statement, FOR UPDATE SKIP LOCKED, so nodes never wait for
// each other's rows) marks rows in flight with this node's name and epoch (a number from a
// database sequence, new for every process) and a lease deadline. The lease lives on in the
// node's row of the nodes table, which a thread of the node renews every lease/3: renewing is
// one row per node however many recipients it holds, and never locks a recipient row, so it
// cannot deadlock with outcome writes. A row whose deadline and whose node's lease have both
// run out is taken over by the next claim of a live node.
//
// Outcome writes are fenced: a row is updated only while it still carries this node's name
// and epoch. A node that lost its lease (stopped, partitioned) and comes back finds its rows
// owned by another epoch; its late outcomes change nothing and are counted in fenced(). A
// deferred recipient keeps its owner (its worker may retry it in this run); every other
// outcome clears the owner. So a recipient is sent twice only when a node stalled past its
// lease mid-message (the window: the lease) or was killed after the server accepted a message
// and before the outcome was committed (the window: the commit interval).
//
// When the connection breaks (the server restarted) a call reconnects for up to
// kReconnectMs and runs its statement again; then it fails with a kStore error. A restart
// can leave this node's rows out of line with what its run holds: a statement committed
// whose answer was lost, or (a crash with synchronous_commit off) commits the server had
// acknowledged and then lost. So after a reconnect the node puts them back in line before
// it runs anything else (reconcile()): rows its run holds whose claim was lost are claimed
// again; its own rows the run does not hold get their outcome written again when it was
// recorded lately (kRecentMs), and are otherwise handed to the run by the next claim (a
// claim whose answer was lost: nothing was sent). Until then more_later() says so, so the
// node never ends with rows it holds in the database and nobody sends (issue 13).
class PgTaskStore final : public TaskStore {
 public:
  static constexpr uint32_t kReconnectMs = 30000;
  // Outcomes kept after their commit, to write again after a reconnect: longer than a server
  // with synchronous_commit off keeps acknowledged commits unwritten (3 x wal_writer_delay,
  // 600 ms by default), measured between commits so an outage does not count.
  static constexpr int64_t kRecentMs = 10000;

  static Result<std::unique_ptr<PgTaskStore>> open(const PgStoreOptions& o);
  // A node releases what it still holds (claims whose answer was lost, deferred rows kept for
  // a retry) and marks itself finished.
  ~PgTaskStore() override;

  bool imported() const override { return imported_; }
  Result<ImportReport> import_csv(const std::string& path,
                                  const ImportOptions& options = {}) override;
  Result<ImportReport> import_csv_buffer(std::string_view data, std::string_view name,
                                         const ImportOptions& options = {}) override;
  const std::vector<std::string>& field_names() const override { return fields_; }
  Result<std::optional<std::string>> get_meta(std::string_view key) override;
  Status set_meta(std::string_view key, std::string_view value) override;
  Result<std::string> meta_or_set(std::string_view key, std::string_view value) override;
  // Rows from three sources, in id order: unsent ones (after after_id first, then any id:
  // another node may have released them behind our cursor), deferred ones after after_id, and
  // in-flight or deferred ones whose owner's lease ran out (looked for after a short claim and
  // every lease/4). Without mark_in_flight (a node that is not sending) nothing changes.
  Result<size_t> claim(int64_t after_id, size_t limit, std::vector<RecipientRow>& out,
                       bool mark_in_flight = false) override;
  // True while the task is not done elsewhere: unsent rows (maybe being claimed by another node
  // right now), or rows another epoch holds in flight or for a retry (released when it ends,
  // ours when its lease runs out).
  bool more_later() override;
  // The node's lease was not renewed for a whole lease (measured on this machine's monotonic
  // clock, which runs on while the process is stopped): other nodes may own its rows now.
  std::string claims_lost() override;
  Status record(const std::vector<Outcome>& outcomes) override;
  Result<StatusCounts> counts(bool with_codes = true) override;
  Status reset(bool errors_only) override;
  using TaskStore::list;
  Result<std::vector<std::pair<RecipientRow, Outcome>>> list(const std::vector<RcptStatus>& s,
                                                             size_t limit) override;
  Result<bool> return_seen(std::string_view key) override;
  Result<ReturnApplied> record_return(const ReturnRecord& r) override;
  Result<std::vector<ReturnApplied>> record_returns(
      const std::vector<ReturnRecord>& batch) override;
  Result<std::optional<std::string>> email_of(int64_t id) override;
  Result<std::optional<ReturnInfo>> return_info(int64_t id) override;
  Result<std::vector<std::string>> returned_addresses() override;
  Result<std::pair<int64_t, int64_t>> outcome_span(
      const std::vector<RcptStatus>& statuses) override;
  Status outcome_histogram(
      const std::vector<RcptStatus>& statuses, int64_t start_s, int64_t width_s,
      const std::function<void(int64_t bucket, RcptStatus s, uint64_t n)>& add) override;
  Result<DomainSummary> domain_summary(size_t top) override;
  Result<std::vector<std::pair<std::string, uint64_t>>> return_categories() override;
  Result<std::map<int, uint64_t>> codes_of(const std::vector<RcptStatus>& statuses) override;
  // SMS receipts and STOP replies (pg_sms.cc): the rules of every store (store/task_store.h).
  Result<SmsReceiptApplied> apply_receipt(const SmsReceiptUpdate& r) override;
  Result<TaskSuppressionAdded> add_suppression(std::string_view key, std::string_view reason,
                                               int64_t time = 0) override;
  Result<std::vector<std::string>> suppressions() override;
  using TaskStore::partial_sms;
  Result<std::vector<SmsPartial>> partial_sms(const std::vector<int64_t>& rcpt_ids) override;

  Result<std::vector<PgNodeInfo>> nodes();
  Result<std::vector<PgNodeCounts>> node_counts();
  const std::string& node_name() const { return node_; }
  int64_t epoch() const { return epoch_; }
  // Outcomes refused by the fence (their recipient had passed to another node).
  uint64_t fenced() const { return fenced_; }
  const std::string& where() const { return db_->where(); }
  // The server process of this store's connection (tests break it on purpose).
  int backend_pid() const { return db_->backend_pid(); }

 private:
  class Keeper;
  PgTaskStore(std::unique_ptr<PgBlocking> db, PgStoreOptions o);
  Status init(const PgStoreOptions& o);
  // Runs a statement, reconnecting and running it again when the connection broke.
  Result<PgResult> run(const std::string& sql, const PgParams& params);
  void release_held();
  // After a reconnect: see the class comment. Runs until it went through without the
  // connection breaking again (a few times at most); an error that is not the connection's
  // is kept in reconcile_error_ and stops the run at the next claim.
  void reconcile();
  Status reconcile_once();
  // A claim that was offered these ids of adopt_ answered `r`: drops those it settled.
  void adopted(const std::vector<int64_t>& offered, const PgResult& r, size_t limit);
  // record()'s statement when outcomes carry SMS provider ids (pg_sms.cc): `update` (the
  // fenced UPDATE) becomes a CTE whose rows' ids are inserted in the same statement, so a node
  // that lost its lease records no ids either; the statement then returns the rows updated.
  // Adds the ids' arrays to params. False (nothing changed) when no outcome has ids.
  bool with_sms_ids(const std::vector<Outcome>& outcomes, std::string& update, PgParams& params);
  Status apply_receipt_txn(const SmsReceiptUpdate& r, SmsReceiptApplied& out);
  // Returned mail (pg_returns.cc).
  Status ensure_returns_schema();
  Status apply_return(const ReturnRecord& r, ReturnApplied& out);

  std::unique_ptr<PgBlocking> db_;
  PgStoreOptions opts_;
  std::string task_;
  std::string node_;
  int64_t epoch_ = 0;
  bool imported_ = false;
  bool returns_schema_ = false;  // the returned-mail tables exist (created on first use)
  std::vector<std::string> fields_;
  uint64_t fenced_ = 0;
  // Claims look for rows of nodes whose lease ran out after a short claim, else at this
  // monotonic ms at the earliest (a scan of every held row: not on every claim).
  bool last_claim_short_ = true;
  int64_t next_expired_ms_ = 0;
  // Monotonic ms of the last lease renewal the server confirmed (written by the keeper).
  std::atomic<int64_t> renewed_ms_{0};
  // The database refused a renewal: the lease had run out there, and other nodes may have
  // taken this node's rows over. It stays lost.
  std::atomic<bool> lease_lost_{false};
  std::unique_ptr<Keeper> keeper_;
  // A node's run, as the database should see it (reconcile()). held_: ids claimed and not
  // yet given a final outcome (a deferred one may be retried in this run); recent_: the
  // outcome batches committed in the last kRecentMs; adopt_: this node's rows in the
  // database that its run does not hold, for the next claim.
  struct Recorded {
    int64_t at_ms = 0;
    std::vector<Outcome> outcomes;
  };
  std::unordered_set<int64_t> held_;
  std::deque<Recorded> recent_;
  std::vector<int64_t> adopt_;
  bool recheck_ = false;       // reconnected: reconcile() before the next statement
  bool in_reconcile_ = false;  // its statements do not start another
  uint64_t reconnects_ = 0;
  std::string reconcile_error_;
};

}  // namespace sb
