// open_task_store: a task by its name on the command line: a SQLite file or a PostgreSQL URL.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "store/task_store.h"

namespace sb {

enum class TaskOpen {
  kRead,    // status, export: nothing is written
  kWrite,   // reset: the task must exist
  kCreate,  // import: created when missing
  kSend,    // send: created when missing; on PostgreSQL this process becomes a node
};

// `--task FILE` or `--task postgresql://user@host/db?task=NAME` (also postgres://). On
// PostgreSQL a bad URL, a refused connection, wrong credentials or a newer schema is an
// error naming the server; the caller exits 2 before anything is sent.
Result<std::unique_ptr<TaskStore>> open_task_store(const std::string& spec, TaskOpen how);
// True for a PostgreSQL task URL: no lock file, no SQLite file to clean up.
bool is_shared_task(const std::string& spec);

// SMTPBLAST_PG_LEASE_MS overrides the lease (tests use 2 s); the default is 30 s.
uint32_t pg_lease_ms();

}  // namespace sb
