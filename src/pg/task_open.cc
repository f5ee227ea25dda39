// open_task_store: SQLite by default, PostgreSQL for a postgresql:// task URL.
#include "pg/task_open.h"

#include <cstdlib>

#include "pg/pg_store.h"

namespace sb {

bool is_shared_task(const std::string& spec) { return is_pg_task_url(spec); }

uint32_t pg_lease_ms() {
  const char* v = std::getenv("SMTPBLAST_PG_LEASE_MS");
  if (v != nullptr) {
    long ms = std::strtol(v, nullptr, 10);
    if (ms >= 300 && ms <= 3600000) return static_cast<uint32_t>(ms);
  }
  return 30000;
}

Result<std::unique_ptr<TaskStore>> open_task_store(const std::string& spec, TaskOpen how) {
  if (!is_pg_task_url(spec)) {
    if (how == TaskOpen::kRead) return TaskStore::open_read_only(spec);
    return TaskStore::open(spec, how != TaskOpen::kWrite);
  }
  auto url = parse_pg_task_url(spec);
  if (!url) return url.error();
  PgStoreOptions o;
  o.conninfo = url->conninfo;
  o.task = url->task;
  o.create = how == TaskOpen::kCreate || how == TaskOpen::kSend;
  o.node = how == TaskOpen::kSend;
  o.lease_ms = pg_lease_ms();
  if (const char* n = std::getenv("SMTPBLAST_NODE"); n != nullptr) o.node_name = n;
  auto s = PgTaskStore::open(o);
  if (!s) return s.error();
  return std::unique_ptr<TaskStore>(std::move(s).value());
}

}  // namespace sb
