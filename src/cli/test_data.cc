// Loads one recipient's merge data for the test verb from a task, a CSV or --field flags.
#include "cli/test_data.h"

#include <algorithm>

#include "pg/task_open.h"
#include "store/task_store.h"

namespace sb {

namespace {

Error config_error(std::string m) { return make_error(ErrDomain::kConfig, std::move(m)); }

// The n-th recipient by id (1-based), whatever its status (bounced and complained ones
// included: `returns` must not shift the rows).
Result<RecipientRow> nth_recipient(TaskStore& st, uint64_t n, const std::string& what) {
  std::vector<RcptStatus> every;
  for (int i = 0; i <= kRcptStatusMax; ++i) every.push_back(static_cast<RcptStatus>(i));
  auto l = st.list(every, n);
  if (!l.ok()) return l.error();
  std::vector<RecipientRow> rows;
  for (auto& [r, o] : *l) rows.push_back(std::move(r));
  if (rows.size() < n) {
    return config_error("--row " + std::to_string(n) + ": " + what + " has only " +
                        std::to_string(rows.size()) + " recipient" + (rows.size() == 1 ? "" : "s"));
  }
  return std::move(rows[n - 1]);
}

}  // namespace

Result<TestData> load_test_data(const TestDataArgs& a) {
  TestData d;
  if (!a.task.empty() && !a.csv.empty()) {
    return config_error("test: give one of --task or --recipients for the merge data");
  }
  if (a.row > 0 && a.task.empty() && a.csv.empty()) {
    return config_error("--row " + std::to_string(a.row) +
                        " needs --task T or --recipients "
                        "list.csv: the list whose row to render");
  }
  if (!a.task.empty() || !a.csv.empty()) {
    uint64_t n = a.row == 0 ? 1 : a.row;
    std::unique_ptr<TaskStore> st;
    std::string what;
    if (!a.task.empty()) {
      auto s = open_task_store(a.task, TaskOpen::kWrite);  // never creates a task
      if (!s.ok()) return config_error("--task: " + s.error().describe());
      st = std::move(s).value();
      what = "task " + a.task;
    } else {
      auto s = TaskStore::open(":memory:", true);
      if (!s.ok()) return s.error();
      st = std::move(s).value();
      auto rep = st->import_csv(a.csv);
      if (!rep.ok()) return config_error("--recipients: " + rep.error().describe());
      what = a.csv;
    }
    auto row = nth_recipient(*st, n, what);
    if (!row.ok()) return row.error();
    d.names = st->field_names();
    d.values = row->values;
    d.values.resize(d.names.size());
    d.email = row->email;
    d.source = "row " + std::to_string(n) + " of " + what;
  }
  for (const std::string& f : a.fields) {
    size_t eq = f.find('=');
    if (eq == 0 || eq == std::string::npos) {
      return config_error("--field '" + f + "': expected name=value");
    }
    std::string name = f.substr(0, eq);
    std::string value = f.substr(eq + 1);
    if (name == "email") {
      d.email = value;
      continue;
    }
    auto it = std::find(d.names.begin(), d.names.end(), name);
    if (it == d.names.end()) {
      d.names.push_back(name);
      d.values.push_back(value);
    } else {
      d.values[static_cast<size_t>(it - d.names.begin())] = value;
    }
  }
  if (!a.fields.empty()) d.source += std::string(d.source.empty() ? "" : ", ") + "--field values";
  return d;
}

}  // namespace sb
