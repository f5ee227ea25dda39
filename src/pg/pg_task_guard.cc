// pg_lock_idle_task: reset and import --replace refused while nodes send the task.
#include "pg/pg_task_guard.h"

namespace sb {

Status pg_lock_idle_task(PgBlocking& db, const std::string& task, int64_t own_epoch,
                         std::string_view what) {
  // A node registering holds the row for one statement; another reset or replace for the
  // length of its transaction. Never wait long for either.
  if (auto s = db.exec("SET LOCAL lock_timeout = '10s'"); !s) return s.error();
  auto lock = db.exec("SELECT 1 FROM smtpblast_tasks WHERE task = $1 FOR UPDATE", {task});
  if (!lock) {
    if (lock.error().message.find("lock timeout") != std::string::npos)
      return make_error(ErrDomain::kConfig,
                        std::string(what) + " of task '" + task + "' in " + db.where() +
                            ": another reset or import holds the task; try again");
    return lock.error();
  }
  // clock_timestamp(), not now(): the transaction may have waited for the lock.
  auto live = db.exec(
      "SELECT node, to_char(lease_until AT TIME ZONE 'UTC', "
      "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
      "ceil(extract(epoch FROM lease_until - clock_timestamp()))::bigint "
      "FROM smtpblast_nodes WHERE task = $1 AND epoch <> $2 AND NOT finished "
      "AND lease_until >= clock_timestamp() ORDER BY epoch",
      {task, std::to_string(own_epoch)});
  if (!live) return live.error();
  if (live->rows() == 0) return {};
  std::string nodes;
  for (int i = 0; i < live->rows(); ++i) {
    if (i > 0) nodes += ", ";
    nodes += std::string(live->text(i, 0)) + " (lease until " + std::string(live->text(i, 1)) +
             ", in " + std::to_string(live->int64(i, 2)) + " s)";
  }
  return make_error(ErrDomain::kConfig,
                    std::string(what) + " of task '" + task + "' in " + db.where() +
                        " refused: " + std::to_string(live->rows()) +
                        (live->rows() == 1 ? " node is" : " nodes are") + " sending it: " + nodes +
                        "; stop them first (a killed node's lease runs out by the time shown; a "
                        "running node renews it)");
}

}  // namespace sb
