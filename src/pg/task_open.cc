// open_task_store: SQLite by default, PostgreSQL for a postgresql:// task URL (and parsing it).
#include "pg/task_open.h"

#include <cstdlib>

#include "pg/pg_store.h"

namespace sb {

namespace {
constexpr const char* kPrefixes[] = {"postgresql://", "postgres://"};
}  // namespace

// --- the URL (declared in pg_store.h)
// ----------------------------------------------------------------------------

bool is_pg_task_url(const std::string& spec) {
  for (const char* p : kPrefixes)
    if (spec.rfind(p, 0) == 0) return true;
  return false;
}

Result<PgTaskUrl> parse_pg_task_url(const std::string& spec) {
  PgTaskUrl out;
  size_t q = spec.find('?');
  out.conninfo = spec.substr(0, q);
  if (q != std::string::npos) {
    std::string rest;
    std::string_view query = std::string_view(spec).substr(q + 1);
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view kv = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (kv.rfind("task=", 0) == 0) {
        out.task = std::string(kv.substr(5));
      } else if (!kv.empty()) {
        rest += (rest.empty() ? "" : "&") + std::string(kv);
      }
    }
    if (!rest.empty()) out.conninfo += "?" + rest;
  }
  if (out.task.empty())
    return make_error(ErrDomain::kConfig,
                      "the PostgreSQL task URL names no task: add ?task=NAME, e.g. "
                      "postgresql://user@host/db?task=march");
  for (char c : out.task) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '%')
      return make_error(ErrDomain::kConfig,
                        "the task name in the PostgreSQL URL may not "
                        "contain control characters or %-escapes");
  }
  if (Status s = pg_check_conninfo(out.conninfo); !s) return s.error();
  return out;
}

// --- opening ----------------------------------------------------------------------------

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
