// What may not run on a PostgreSQL task while its nodes send it (reset, import --replace).
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "pg/pg_conn.h"

namespace sb {

// Inside the caller's open READ COMMITTED transaction: locks the task's row (FOR UPDATE) and
// fails with a kConfig error (exit 2) naming every live node of the task but `own_epoch`
// (a store that is itself a node; 0: none) and when its lease runs out.
//
// Why the task row and not a lock in every claim: a node joins a task by inserting its row
// in smtpblast_nodes, and that INSERT's foreign key takes FOR KEY SHARE on the task row, which
// FOR UPDATE excludes. So a node that starts while a reset or replace runs waits for its
// commit (and reads the new list after it), and one that registered before is seen here and
// refuses it. Claims of running nodes take no lock at all: they are never slowed, and the
// exclusive lock is only ever granted while no node is alive. A node whose lease ran out
// while it still ran (stopped, cut off) claims nothing more (claims_lost) and its late
// outcomes are fenced; the replace also refuses to delete any row a claim touched.
Status pg_lock_idle_task(PgBlocking& db, const std::string& task, int64_t own_epoch,
                         std::string_view what);

}  // namespace sb
