// PgTaskStore's import: the SQLite importer reads the list, then the rows go over in batches.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "pg/pg_store.h"
#include "pg/pg_task_guard.h"
#include "store/accounting.h"
#include "store/field_codec.h"

namespace sb {

namespace {

using ImportFn = std::function<Result<ImportReport>(TaskStore&, ImportMode)>;
using Rows = std::vector<std::pair<RecipientRow, Outcome>>;

void quote_element(std::string& out, std::string_view v) {
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

std::string text_array(const std::vector<std::string>& v) {
  std::string out = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) out += ',';
    quote_element(out, v[i]);
  }
  return out + "}";
}

// Inserts rows[from..] as ids id_base + row.id - id_skip, in batches, inside the caller's
// transaction. A failed row at import is a rejected one (bad address, bad row): no reset
// revives it.
Status insert_rows(PgBlocking& db, const std::string& task, const Rows& all, size_t from,
                   int64_t id_shift) {
  std::string blob;
  for (size_t at = from; at < all.size(); at += 5000) {
    std::string ids = "{", emails = "{", blobs = "{", st = "{", codes = "{", replies = "{";
    for (size_t i = at; i < all.size() && i < at + 5000; ++i) {
      const auto& [row, o] = all[i];
      const char* sep = i == at ? "" : ",";
      ids += sep + std::to_string(row.id + id_shift);
      emails += sep;
      quote_element(emails, row.email);
      blob.clear();
      encode_fields(row.values.data(), row.values.size(), blob);
      static constexpr char kHex[] = "0123456789abcdef";
      blobs += sep;
      blobs += '"';
      for (unsigned char c : blob) {
        blobs += kHex[c >> 4];
        blobs += kHex[c & 15];
      }
      blobs += '"';
      st += sep + std::to_string(static_cast<int>(o.status));
      codes += sep + std::to_string(o.code);
      replies += sep;
      quote_element(replies, o.reply);
    }
    for (std::string* s : {&ids, &emails, &blobs, &st, &codes, &replies}) *s += "}";
    auto ins = db.exec(
        "INSERT INTO smtpblast_recipients(task, id, email, fields, status, code, reply, "
        "rejected) SELECT $1, id, email, decode(f, 'hex'), status, code, reply, status = 3 "
        "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::smallint[], $6::integer[], "
        "$7::text[]) AS u(id, email, f, status, code, reply)",
        {task, ids, emails, blobs, st, codes, replies});
    if (!ins) return ins.error();
  }
  return {};
}

// The import's own metadata (source, digest, time; an SMS task's channel), as SQLite keeps it.
Status copy_import_meta(PgBlocking& db, const std::string& task, TaskStore& mem) {
  for (const char* key : {"sb.imported", "sb.source", "sb.source_digest", "sb.channel"}) {
    auto v = mem.get_meta(key);
    if (!v) return v.error();
    if (!v->has_value()) continue;
    auto m = db.exec(
        "INSERT INTO smtpblast_meta(task, key, value) VALUES ($1, $2, $3) "
        "ON CONFLICT (task, key) DO UPDATE SET value = excluded.value",
        {task, key, **v});
    if (!m) return m.error();
  }
  return {};
}

Result<Rows> all_rows(TaskStore& mem) {
  return mem.list({RcptStatus::kUnsent, RcptStatus::kFailed}, SIZE_MAX);
}

// kAppend into a task that holds a list. The SQLite importer decides (columns mapped onto the
// task's fields, addresses already in the task, rows rejected identically before, repeats in
// the file): it appends to a private copy of the task's addresses, built here as a CSV of
// them (a rejected row as a bad row again, so it is remembered as rejected), and the rows it
// adds go into the task after its last id. The task row stays locked until the commit, so two
// appends cannot give out the same ids.
Result<ImportReport> append(PgBlocking& db, const std::string& task,
                            const std::vector<std::string>& fields, const ImportOptions& options,
                            const ImportFn& import) {
  auto lock = db.exec("SELECT fields = $2::text[] FROM smtpblast_tasks WHERE task = $1 FOR UPDATE",
                      {task, text_array(fields)});
  if (!lock) return lock.error();
  if (lock->rows() != 1 || lock->text(0, 0) != "t")
    return make_error(ErrDomain::kInput, "task '" + task + "' in " + db.where() +
                                             ": its list was replaced meanwhile; run again");
  auto present = db.exec(
      "SELECT email, rejected FROM smtpblast_recipients WHERE task = $1 ORDER BY id", {task});
  if (!present) return present.error();
  auto last =
      db.exec("SELECT coalesce(max(id), 0) FROM smtpblast_recipients WHERE task = $1", {task});
  if (!last) return last.error();
  std::string csv;
  append_csv_field(options.key_column.empty() ? "email" : options.key_column, csv);
  for (const std::string& f : fields) {
    csv += ',';
    append_csv_field(f, csv);
  }
  csv += "\n";
  const std::string empty_values(fields.size(), ',');
  for (int i = 0; i < present->rows(); ++i) {
    append_csv_field(present->text(i, 0), csv);
    csv += empty_values;
    csv += present->text(i, 1) == "t" ? ",x\n" : "\n";  // one value too many: a bad row
  }
  auto mem = TaskStore::open(":memory:", true);
  if (!mem) return mem.error();
  ImportOptions mirror;
  mirror.key_column = options.key_column;
  mirror.normalize = options.normalize;
  mirror.normalize_ctx = options.normalize_ctx;
  if (auto m = (*mem)->import_csv_buffer(csv, "task '" + task + "'", mirror); !m) return m.error();
  csv = std::string();
  auto before = all_rows(**mem);
  if (!before) return before.error();
  const size_t kept = before->size();
  const int64_t mirror_last = kept == 0 ? 0 : before->back().first.id;
  auto rep = import(**mem, ImportMode::kAppend);
  if (!rep) return rep.error();
  auto after = all_rows(**mem);
  if (!after) return after.error();
  // Rows are listed in id order, so the first `kept` are the task's own.
  if (auto s = insert_rows(db, task, *after, kept, last->int64(0, 0) - mirror_last); !s)
    return s.error();
  return rep;
}

// kNew, or kReplace of a list nobody was mailed from (refused otherwise, like SQLite).
Result<ImportReport> import_whole(PgBlocking& db, const std::string& task, bool replace,
                                  int64_t own_epoch, const ImportFn& import,
                                  std::vector<std::string>& fields_out) {
  uint64_t removed = 0;
  if (replace) {
    // Refused while a node sends the task; a node starting now waits for the commit
    // (pg_task_guard.h). The DELETE below checks again that no row was claimed meanwhile.
    if (auto s = pg_lock_idle_task(db, task, own_epoch, "import --replace"); !s) return s.error();
    auto n = db.exec(
        "SELECT count(*) FILTER (WHERE status IN (1, 2, 5) OR attempts > 0 OR "
        "(status = 3 AND NOT rejected)), count(*) FROM smtpblast_recipients WHERE task = $1",
        {task});
    if (!n) return n.error();
    if (int64_t attempted = n->int64(0, 0); attempted > 0)
      return make_error(ErrDomain::kInput,
                        "task '" + task + "' in " + db.where() +
                            ": the list cannot be replaced: " + std::to_string(attempted) +
                            " recipients were already sent to or attempted; send the new list "
                            "as a new task, or add its new rows with import --append");
    removed = static_cast<uint64_t>(n->int64(0, 1));
  }
  auto mem = TaskStore::open(":memory:", true);
  if (!mem) return mem.error();
  auto rep = import(**mem, ImportMode::kNew);
  if (!rep) return rep.error();
  auto rows = all_rows(**mem);
  if (!rows) return rows.error();
  // Only one importer wins, even when several nodes import the same task at once.
  auto t = db.exec(
      "UPDATE smtpblast_tasks SET imported = true, fields = $2::text[] "
      "WHERE task = $1 AND (NOT imported OR $3)",
      {task, text_array((*mem)->field_names()), replace ? "true" : "false"});
  if (!t) return t.error();
  if (t->affected() != 1)
    return make_error(ErrDomain::kInput, "task '" + task + "' in " + db.where() +
                                             " already holds an imported recipient list");
  if (replace) {
    // A node whose lease ran out while it still ran may have claimed a row after the count
    // above: then nothing is deleted (the transaction rolls back).
    auto d = db.exec(
        "WITH d AS (DELETE FROM smtpblast_recipients WHERE task = $1 RETURNING status, attempts) "
        "SELECT count(*) FROM d WHERE status IN (1, 2, 5) OR attempts > 0",
        {task});
    if (!d) return d.error();
    if (d->int64(0, 0) > 0)
      return make_error(ErrDomain::kInput, "task '" + task + "' in " + db.where() +
                                               ": the list cannot be replaced: a node claimed "
                                               "recipients meanwhile; stop its send first");
    auto m = db.exec(
        "DELETE FROM smtpblast_meta WHERE task = $1 AND key IN ('sb.imported', 'sb.source', "
        "'sb.source_digest')",
        {task});
    if (!m) return m.error();
  }
  if (auto s = insert_rows(db, task, *rows, 0, 0); !s) return s.error();
  if (auto s = copy_import_meta(db, task, **mem); !s) return s.error();
  fields_out = (*mem)->field_names();
  rep->removed = removed;
  return rep;
}

// The importer's every rule (CSV dialects, encodings, address checks, duplicates, bad rows,
// --append and --replace) lives in one place, the SQLite store: the list is imported into a
// private in-memory task first, and what it holds is copied. A second importer would drift
// from the first. Everything is one transaction on PostgreSQL.
Result<ImportReport> import_via_memory(PgTaskStore& pg, PgBlocking& db, const std::string& task,
                                       const ImportOptions& options, const ImportFn& import,
                                       std::vector<std::string>& fields_out) {
  // As on SQLite: --append or --replace into a task without a list is a first import.
  ImportMode mode = pg.imported() ? options.mode : ImportMode::kNew;
  if (mode == ImportMode::kNew && pg.imported())
    return make_error(ErrDomain::kInput,
                      "task '" + task + "' in " + db.where() +
                          " already holds an imported recipient list; use a new task name");
  // READ COMMITTED also for --replace: its check of the live nodes must see a node that
  // registered while it waited for the task's row lock (pg_task_guard.h).
  auto b = db.exec("BEGIN");
  if (!b) return b.error();
  Result<ImportReport> rep =
      mode == ImportMode::kAppend
          ? append(db, task, pg.field_names(), options, import)
          : import_whole(db, task, mode == ImportMode::kReplace, pg.epoch(), import, fields_out);
  if (rep) {
    if (auto c = db.exec("COMMIT"); !c) rep = c.error();
  }
  if (!rep) {
    (void)db.exec("ROLLBACK");
    if (rep.error().message.find("could not serialize") != std::string::npos)
      return make_error(ErrDomain::kInput,
                        "task '" + task + "' in " + db.where() +
                            ": the list cannot be replaced: a node claimed recipients "
                            "meanwhile; stop its send first");
    return rep.error();
  }
  if (mode == ImportMode::kAppend) fields_out = pg.field_names();
  return rep;
}

}  // namespace

Result<ImportReport> PgTaskStore::import_csv(const std::string& path,
                                             const ImportOptions& options) {
  std::vector<std::string> fields;
  auto r = import_via_memory(
      *this, *db_, task_, options,
      [&](TaskStore& mem, ImportMode mode) {
        ImportOptions o = options;
        o.mode = mode;
        return mem.import_csv(path, o);
      },
      fields);
  if (r) {
    imported_ = true;
    fields_ = std::move(fields);
  }
  return r;
}

Result<ImportReport> PgTaskStore::import_csv_buffer(std::string_view data, std::string_view name,
                                                    const ImportOptions& options) {
  std::vector<std::string> fields;
  auto r = import_via_memory(
      *this, *db_, task_, options,
      [&](TaskStore& mem, ImportMode mode) {
        ImportOptions o = options;
        o.mode = mode;
        return mem.import_csv_buffer(data, name, o);
      },
      fields);
  if (r) {
    imported_ = true;
    fields_ = std::move(fields);
  }
  return r;
}

}  // namespace sb
