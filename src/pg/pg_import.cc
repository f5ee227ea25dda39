// PgTaskStore's import: the SQLite importer reads the list, then the rows go over in batches.
#include <string>
#include <vector>

#include "pg/pg_store.h"
#include "store/field_codec.h"

namespace sb {

namespace {

// The importer's every rule (CSV dialects, encodings, address checks, duplicates, bad rows)
// lives in one place, the SQLite store: the list is imported into a private in-memory task
// first, and what it holds is copied. A second importer would drift from the first.
Result<ImportReport> import_via_memory(
    PgTaskStore& pg, PgBlocking& db, const std::string& task, const ImportOptions& options,
    const std::function<Result<ImportReport>(TaskStore&)>& import,
    std::vector<std::string>& fields_out) {
  if (options.mode != ImportMode::kNew)
    return make_error(ErrDomain::kInput,
                      "--append and --replace are not supported on a PostgreSQL task yet; "
                      "import the list into a new task");
  if (pg.imported())
    return make_error(ErrDomain::kInput,
                      "task '" + task + "' in " + db.where() +
                          " already holds an imported recipient list; use a new task name");
  auto mem = TaskStore::open(":memory:", true);
  if (!mem) return mem.error();
  auto rep = import(**mem);
  if (!rep) return rep.error();
  auto rows = (*mem)->list({RcptStatus::kUnsent, RcptStatus::kFailed}, SIZE_MAX);
  if (!rows) return rows.error();

  auto fail = [&](const Error& e) -> Error {
    (void)db.exec("ROLLBACK");
    return e;
  };
  if (auto b = db.exec("BEGIN"); !b) return b.error();
  std::string fields = "{";
  for (size_t i = 0; i < (*mem)->field_names().size(); ++i) {
    std::string f = (*mem)->field_names()[i];
    fields += (i ? ",\"" : "\"");
    for (char c : f) {
      if (c == '"' || c == '\\') fields += '\\';
      fields += c;
    }
    fields += '"';
  }
  fields += "}";
  // Only one importer wins, even when several nodes import the same task at once.
  auto t = db.exec(
      "UPDATE smtpblast_tasks SET imported = true, fields = $2::text[] "
      "WHERE task = $1 AND NOT imported",
      {task, fields});
  if (!t) return fail(t.error());
  if (t->affected() != 1)
    return fail(make_error(ErrDomain::kInput, "task '" + task + "' in " + db.where() +
                                                  " already holds an imported recipient list"));
  const auto& all = *rows;
  std::string blob;
  for (size_t at = 0; at < all.size(); at += 5000) {
    std::string ids = "{", emails = "{", blobs = "{", st = "{", codes = "{", replies = "{";
    auto quote = [](std::string& out, std::string_view v) {
      out += '"';
      for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    };
    for (size_t i = at; i < all.size() && i < at + 5000; ++i) {
      const auto& [row, o] = all[i];
      const char* sep = i == at ? "" : ",";
      ids += sep + std::to_string(row.id);
      emails += sep;
      quote(emails, row.email);
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
      quote(replies, o.reply);
    }
    for (std::string* s : {&ids, &emails, &blobs, &st, &codes, &replies}) *s += "}";
    // A failed row at import is a rejected one (bad address, bad row): no reset revives it.
    auto ins = db.exec(
        "INSERT INTO smtpblast_recipients(task, id, email, fields, status, code, reply, "
        "rejected) SELECT $1, id, email, decode(f, 'hex'), status, code, reply, status = 3 "
        "FROM unnest($2::bigint[], $3::text[], $4::text[], $5::smallint[], $6::integer[], "
        "$7::text[]) AS u(id, email, f, status, code, reply)",
        {task, ids, emails, blobs, st, codes, replies});
    if (!ins) return fail(ins.error());
  }
  for (const char* key : {"sb.imported", "sb.source", "sb.source_digest"}) {
    auto v = (*mem)->get_meta(key);
    if (!v) return fail(v.error());
    if (!v->has_value()) continue;
    auto m = db.exec(
        "INSERT INTO smtpblast_meta(task, key, value) VALUES ($1, $2, $3) "
        "ON CONFLICT (task, key) DO UPDATE SET value = excluded.value",
        {task, key, **v});
    if (!m) return fail(m.error());
  }
  if (auto c = db.exec("COMMIT"); !c) return fail(c.error());
  fields_out = (*mem)->field_names();
  return rep;
}

}  // namespace

Result<ImportReport> PgTaskStore::import_csv(const std::string& path,
                                             const ImportOptions& options) {
  std::vector<std::string> fields;
  auto r = import_via_memory(
      *this, *db_, task_, options,
      [&](TaskStore& mem) {
        ImportOptions o = options;
        o.mode = ImportMode::kNew;
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
      [&](TaskStore& mem) {
        ImportOptions o = options;
        o.mode = ImportMode::kNew;
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
