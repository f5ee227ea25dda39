// Fuzz target: imports arbitrary bytes as a recipient CSV into an in-memory task store.
#include <csv.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "store/task_store.h"

namespace {

// Counts non-blank records independently of the importer, with libcsv straight over the
// whole buffer (the importer feeds it line by line), to check the importer's accounting.
struct Counter {
  size_t fields = 0;
  size_t nonempty = 0;
  uint64_t records = 0;
};

void count_field(void*, size_t len, void* p) {
  auto* c = static_cast<Counter*>(p);
  ++c->fields;
  if (len > 0) ++c->nonempty;
}

void count_row(int, void* p) {
  auto* c = static_cast<Counter*>(p);
  if (c->nonempty > 0) ++c->records;
  c->fields = c->nonempty = 0;
}

uint64_t count_records(std::string_view in) {
  if (in.substr(0, 3) == "\xEF\xBB\xBF") in.remove_prefix(3);
  csv_parser p;
  if (csv_init(&p, 0) != 0) std::abort();
  Counter c;
  csv_parse(&p, in.data(), in.size(), count_field, count_row, &c);
  csv_fini(&p, count_field, count_row, &c);
  csv_free(&p);
  return c.records;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "csv_import_fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

// The same bytes read as another encoding and delimiter, then appended and replaced: no
// crash, and a refused import writes nothing.
void other_options(std::string_view in) {
  auto store = sb::TaskStore::open(":memory:", true);
  check(store.ok(), "an in-memory store opens");
  sb::TaskStore& t = *store.value();
  sb::ImportOptions o;
  o.csv.encoding = "cp1252";
  o.csv.delimiter = ';';
  auto rep = t.import_csv_buffer(in, "fuzz.csv", o);
  if (!rep.ok()) {
    check(!t.imported(), "a failed import leaves the task not imported");
    return;
  }
  auto before = t.counts();
  check(before.ok(), "counts works");
  o.mode = sb::ImportMode::kAppend;
  auto again = t.import_csv_buffer(in, "fuzz.csv", o);
  check(again.ok(), "the same bytes append again");
  check(again->imported == 0, "appending the same bytes adds no address");
  auto after = t.counts();
  check(after.ok() && after->total == before->total, "appending the same bytes adds no row");
  o.mode = sb::ImportMode::kReplace;
  auto replaced = t.import_csv_buffer(in, "fuzz.csv", o);
  check(replaced.ok(), "an untouched list can be replaced by the same bytes");
  auto last = t.counts();
  check(last.ok() && last->total == before->total, "replacing with the same bytes: same rows");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  other_options(in);
  auto store = sb::TaskStore::open(":memory:", true);
  check(store.ok(), "an in-memory store opens");
  sb::TaskStore& t = *store.value();
  auto rep = t.import_csv_buffer(in, "fuzz.csv");
  if (!rep.ok()) {
    // A refused import writes nothing.
    check(!t.imported(), "a failed import leaves the task not imported");
    auto c = t.counts();
    check(c.ok() && c->total == 0, "a failed import stores no recipient");
    return 0;
  }
  uint64_t records = count_records(in);
  check(records >= 1, "a successful import had a header");
  const sb::ImportReport& r = rep.value();
  check(r.imported + r.duplicates + r.invalid == records - 1,
        "imported + duplicates + invalid == data records");
  check(r.problems.size() <= 20, "problems are capped");
  auto c = t.counts();
  check(c.ok(), "counts works");
  check(c->total == r.imported + r.invalid, "every imported or invalid row is stored");
  check(c->get(sb::RcptStatus::kUnsent) == r.imported, "imported rows are unsent");
  check(c->get(sb::RcptStatus::kFailed) == r.invalid, "invalid rows are failed");
  std::vector<sb::RecipientRow> rows;
  auto n = t.claim(0, 1u << 20, rows);
  check(n.ok() && n.value() == r.imported, "every imported row is claimable");
  for (const auto& row : rows) {
    check(row.values.size() == t.field_names().size(), "values align with field names");
  }
  return 0;
}
