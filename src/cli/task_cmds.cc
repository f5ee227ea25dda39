// The verbs that manage a task file without sending: import, status, reset, export.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/display_text.h"
#include "base/text.h"
#include "cli/pipeline.h"
#include "cli/run_report.h"
#include "cli/send_cmd.h"
#include "cli/verb.h"
#include "pg/pg_store.h"
#include "pg/task_open.h"
#include "store/accounting.h"
#include "store/csv_reader.h"
#include "store/task_store.h"

namespace sb {

namespace {

// What SMS delivery receipts set; listed by `status` only when some recipient has one.
constexpr RcptStatus kReceiptStatuses[] = {RcptStatus::kDelivered, RcptStatus::kUndeliverable,
                                           RcptStatus::kExpired};

bool parse_status(const std::string& name, RcptStatus* s) {
  for (int i = 0; i <= kRcptStatusMax; ++i) {
    if (!known_rcpt_status(i)) continue;
    auto st = static_cast<RcptStatus>(i);
    std::string n = status_name(st);
    if (name == n || (st == RcptStatus::kInFlight && name == "in_flight")) {
      *s = st;
      return true;
    }
  }
  return false;
}

// "failed,deferred" -> the statuses; false (with *bad set) on a name that is none.
bool parse_status_list(const std::string& arg, std::vector<RcptStatus>* out, std::string* bad) {
  size_t start = 0;
  while (start <= arg.size()) {
    size_t comma = arg.find(',', start);
    std::string name =
        arg.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!name.empty() && name.front() == ' ') name.erase(0, 1);
    while (!name.empty() && name.back() == ' ') name.pop_back();
    RcptStatus st;
    if (!parse_status(name, &st)) {
      *bad = name;
      return false;
    }
    if (std::find(out->begin(), out->end(), st) == out->end()) out->push_back(st);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

// The result columns' prefix: none, unless a merge field is already called status, code or
// reply (import compares names case-insensitively and refuses a repeated one), then
// "smtpblast_" as often as needed, so that an export can always be imported again.
std::string result_column_prefix(const std::vector<std::string>& fields) {
  std::string prefix;
  for (;;) {
    bool clash = false;
    for (const char* r : {"status", "code", "reply"}) {
      for (const std::string& f : fields) clash = clash || iequals(f, prefix + r);
    }
    if (!clash) return prefix;
    prefix += "smtpblast_";
  }
}

// `export --task T --status S[,S...]`: the recipients with those statuses as CSV on stdout,
// with their merge fields and last outcome, so a list can be fixed and sent as a new task.
int cmd_export(const std::string& task, const std::string& status_arg) {
  std::vector<RcptStatus> want;
  std::string bad;
  if (!parse_status_list(status_arg, &want, &bad)) {
    std::fprintf(stderr,
                 "smtpblast: --status: '%s' is not one of unsent, sent, deferred, "
                 "failed, suppressed, in-flight, bounced, complained (several: "
                 "failed,deferred)\n",
                 display_escape(bad).c_str());
    return 2;
  }
  auto st = open_task_store(task, TaskOpen::kRead);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    return 2;
  }
  auto rows = (*st)->list(want, SIZE_MAX);
  if (!rows.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", rows.error().describe().c_str());
    return 2;
  }
  std::string prefix = result_column_prefix((*st)->field_names());
  if (!prefix.empty()) {
    std::fprintf(stderr,
                 "smtpblast: export: the list has a merge field named status, code or "
                 "reply; the result columns are %sstatus, %scode, %sreply\n",
                 prefix.c_str(), prefix.c_str(), prefix.c_str());
  }
  // The key column keeps its kind's name: an SMS task's list is keyed by phone numbers.
  auto channel = (*st)->get_meta("sb.channel");
  const bool sms = channel.ok() && channel->has_value() && **channel == "sms";
  std::string out;
  out += sms ? "phone" : "email";
  for (const std::string& f : (*st)->field_names()) {
    out.push_back(',');
    append_csv_field(f, out);
  }
  out += "," + prefix + "status," + prefix + "code," + prefix + "reply\r\n";
  for (const auto& [r, o] : *rows) {
    append_csv_field(r.email, out);
    for (const std::string& v : r.values) {
      out.push_back(',');
      append_csv_field(v, out);
    }
    out.push_back(',');
    out += status_name(o.status);
    out += "," + std::to_string(o.code) + ",";
    append_csv_field(o.reply, out);
    out += "\r\n";
    if (out.size() > (1 << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (std::fflush(stdout) != 0) {
    std::fprintf(stderr, "smtpblast: export: cannot write: %s\n", std::strerror(errno));
    return 2;
  }
  return 0;
}

// A PostgreSQL task (issue 13): which nodes sent what, and which are alive. Text lines, or
// "nodes" in the JSON. Nothing for a SQLite task.
int node_status(TaskStore& store, nlohmann::json* j) {
  auto* pg = dynamic_cast<PgTaskStore*>(&store);
  if (pg == nullptr) return 0;
  auto nodes = pg->nodes();
  auto counts = pg->node_counts();
  if (!nodes.ok() || !counts.ok()) {
    const Error& e = !nodes.ok() ? nodes.error() : counts.error();
    std::fprintf(stderr, "smtpblast: %s\n", e.describe().c_str());
    return 2;
  }
  if (j != nullptr) {
    nlohmann::json arr = nlohmann::json::array();
    for (const PgNodeInfo& n : *nodes) {
      arr.push_back({{"node", n.node},
                     {"epoch", n.epoch},
                     {"started", n.started},
                     {"heartbeat", n.heartbeat},
                     {"alive", n.alive},
                     {"finished", n.finished}});
    }
    (*j)["nodes"] = arr;
    nlohmann::json by = nlohmann::json::object();
    for (const PgNodeCounts& c : *counts) {
      by[c.node.empty() ? "-" : c.node] = {{"sent", c.sent},
                                           {"failed", c.failed},
                                           {"deferred", c.deferred},
                                           {"suppressed", c.suppressed},
                                           {"in_flight", c.in_flight}};
    }
    (*j)["by_node"] = by;
    return 0;
  }
  size_t alive = 0;
  for (const PgNodeInfo& n : *nodes) alive += n.alive ? 1 : 0;
  std::printf("nodes: %zu alive of %zu that ran this task\n", alive, nodes->size());
  for (const PgNodeInfo& n : *nodes) {
    std::printf("  %-24s epoch %-6lld %-9s started %s, last heard %s\n",
                display_escape(n.node).c_str(), static_cast<long long>(n.epoch),
                n.alive      ? "alive"
                : n.finished ? "finished"
                             : "gone",
                n.started.c_str(), n.heartbeat.c_str());
  }
  std::printf("by node:    sent failed deferred suppressed in-flight\n");
  for (const PgNodeCounts& c : *counts) {
    std::printf("  %-24s %llu %llu %llu %llu %llu\n",
                c.node.empty() ? "(none)" : display_escape(c.node).c_str(),
                static_cast<unsigned long long>(c.sent), static_cast<unsigned long long>(c.failed),
                static_cast<unsigned long long>(c.deferred),
                static_cast<unsigned long long>(c.suppressed),
                static_cast<unsigned long long>(c.in_flight));
  }
  return 0;
}

}  // namespace

void add_csv_options(CLI::App* cmd, std::string& encoding, std::string& delimiter) {
  cmd->add_option("--csv-encoding", encoding,
                  "the CSV's text encoding: utf-8 (default, BOM optional), latin1, cp1252, ... "
                  "(any name iconv knows)");
  cmd->add_option("--csv-delimiter", delimiter,
                  "the CSV's field delimiter: ',' (default), ';' (Excel in many locales), tab");
}

int parse_csv_options(const std::string& encoding, const std::string& delimiter, CsvOptions& out) {
  out.encoding = encoding;
  if (!parse_csv_delimiter(delimiter, &out.delimiter)) {
    std::fprintf(stderr, "smtpblast: --csv-delimiter: '%s' is not one character (or \"tab\")\n",
                 display_escape(delimiter).c_str());
    return 2;
  }
  if (auto st = check_csv_options(out); !st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().message.c_str());
    return 2;
  }
  return 0;
}

// `import`: a new task's list, or (--replace) another list for a task nothing was sent
// from, or (--append) the new rows of a list for a task that has one.
int cmd_import(const std::string& task, const std::string& csv, bool replace, bool append,
               const std::string& encoding, const std::string& delimiter, ImportOptions opts) {
  if (int rc = parse_csv_options(encoding, delimiter, opts.csv); rc != 0) return rc;
  if (replace && append) {
    std::fprintf(stderr, "smtpblast: import: give at most one of --replace and --append\n");
    return 2;
  }
  opts.mode = replace ? ImportMode::kReplace : append ? ImportMode::kAppend : ImportMode::kNew;
  int lock = lock_task(task);  // never under a running send
  if (lock < 0) return 2;
  std::error_code ec;
  bool fresh =
      task != ":memory:" && !is_shared_task(task) && !std::filesystem::exists(task, ec) && !ec;
  auto st = open_task_store(task, TaskOpen::kCreate);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    ::close(lock);
    return 2;
  }
  if ((*st)->imported() && opts.mode == ImportMode::kNew) {
    std::fprintf(stderr,
                 "smtpblast: task %s already holds a recipient list; to use %s instead "
                 "while nothing was sent, give --replace; to add its new rows, "
                 "--append\n",
                 task.c_str(), csv.c_str());
    ::close(lock);
    return 2;
  }
  int rc = import_recipients(**st, csv, opts);
  if (rc != 0 && fresh && !(*st)->imported()) {
    // A refused list leaves no task behind that this command created (as send does).
    st->reset();
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::filesystem::remove(task + suffix, ec);
    }
  }
  ::close(lock);
  return rc;
}

namespace {

int cmd_reset(const std::string& task, bool all, bool errors) {
  if (all == errors) {
    std::fprintf(stderr, "smtpblast: reset: give exactly one of --all or --errors\n");
    return 2;
  }
  int lock = lock_task(task);  // never under a running send
  if (lock < 0) return 2;
  auto st = open_task_store(task, TaskOpen::kWrite);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    ::close(lock);
    return 2;
  }
  auto r = (*st)->reset(errors);
  ::close(lock);
  if (!r.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", r.error().describe().c_str());
    return 2;
  }
  std::fprintf(stderr,
               "task %s: %s recipients are unsent again (addresses rejected at import "
               "stay failed)\n",
               task.c_str(), errors ? "failed and deferred" : "all");
  return 0;
}

int cmd_status(const std::string& task, bool json, bool failed, bool deferred) {
  auto st = open_task_store(task, TaskOpen::kRead);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    return 2;
  }
  if (json && (failed || deferred)) {
    std::fprintf(stderr,
                 "smtpblast: status: --failed/--deferred list as text; use `export` "
                 "for machine-readable lists\n");
    return 2;
  }
  auto c = (*st)->counts();
  if (!c.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", c.error().describe().c_str());
    return 2;
  }
  const RcptStatus all[] = {RcptStatus::kUnsent,  RcptStatus::kSent,       RcptStatus::kDeferred,
                            RcptStatus::kFailed,  RcptStatus::kSuppressed, RcptStatus::kInFlight,
                            RcptStatus::kBounced, RcptStatus::kComplained};
  auto throttle = (*st)->get_meta("throttle");
  std::string throttle_line = throttle.ok() && throttle->has_value() ? **throttle : "";
  AccountStatus account = account_status(**st);
  if (json) {
    nlohmann::json j;
    j["task"] = task;
    add_status_json(**st, account, j);
    j["total"] = c->total;
    for (RcptStatus s : all) {
      std::string key = status_name(s);  // JSON keys are identifiers: "in-flight" -> "in_flight"
      for (char& ch : key) ch = ch == '-' ? '_' : ch;
      j[key] = c->get(s);
    }
    // SMS receipt statuses (issue 19): only when a receipt set them, so e-mail tasks look
    // as they always did.
    for (RcptStatus s : kReceiptStatuses) {
      if (c->get(s) > 0) j[status_name(s)] = c->get(s);
    }
    if (c->unknown > 0) j["unknown"] = c->unknown;
    nlohmann::json codes = nlohmann::json::object();
    for (auto& [code, n] : c->by_code) codes[std::to_string(code)] = n;
    j["by_code"] = codes;
    if (int rc = node_status(**st, &j); rc != 0) return rc;
    std::printf("%s\n", j.dump().c_str());
    mark_json_printed();
    return 0;
  }
  std::printf("task %s: %llu recipients\n", display_escape(task).c_str(),
              static_cast<unsigned long long>(c->total));
  for (RcptStatus s : all) {
    std::printf("  %-11s %llu\n", status_name(s), static_cast<unsigned long long>(c->get(s)));
  }
  for (RcptStatus s : kReceiptStatuses) {
    if (c->get(s) == 0) continue;
    std::printf("  %-11s %llu\n", status_name(s), static_cast<unsigned long long>(c->get(s)));
  }
  if (c->unknown > 0) {
    // Counted, never dropped: the counts above must add up to the total.
    std::printf(
        "  %-11s %llu (status values %s: not written by this version of smtpblast; "
        "a newer one, or an edited task)\n",
        "unknown", static_cast<unsigned long long>(c->unknown),
        capped_list(c->unknown_values).c_str());
  }
  if (!throttle_line.empty()) {
    std::printf("throttle (last run): %s\n", display_escape(throttle_line).c_str());
  }
  if (!account.text.empty()) std::printf("%s\n", display_escape(account.text).c_str());
  if (int rc = node_status(**st, nullptr); rc != 0) return rc;
  if (!c->by_code.empty()) {
    std::printf("last reply codes:\n");
    for (auto& [code, n] : c->by_code) {
      std::printf("  %-11s %llu\n", code == 0 ? "none" : std::to_string(code).c_str(),
                  static_cast<unsigned long long>(n));
    }
  }
  for (RcptStatus s : {RcptStatus::kFailed, RcptStatus::kDeferred}) {
    if (!(s == RcptStatus::kFailed ? failed : deferred)) continue;
    auto rows = (*st)->list(s, SIZE_MAX);
    if (!rows.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", rows.error().describe().c_str());
      return 2;
    }
    std::printf("%s (%zu):\n", status_name(s), rows->size());
    for (const auto& [r, o] : *rows) {
      // Addresses come from a CSV and replies from servers: escaped, so neither can forge a
      // line of this list.
      std::printf("  %s  %d  %s\n", display_escape(r.email).c_str(), o.code,
                  display_escape(o.reply).c_str());
    }
  }
  return 0;
}

class ImportVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* import =
        app.add_subcommand("import", "create a task from a recipient list without sending");
    import
        ->add_option("--task", task_, "task file to create, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    import->add_option("--recipients", csv_, "CSV with a header row and an 'email' column")
        ->required()
        ->check(CLI::ExistingFile);
    import->add_flag("--replace", replace_,
                     "replace the task's list (allowed while nothing was sent from it)");
    import->add_flag("--append", append_,
                     "add the CSV's new rows to the task (late subscribers); addresses already "
                     "in it are skipped");
    add_csv_options(import, encoding_, delim_);
    return import;
  }

  int run() override {
    return cmd_import(task_, csv_, replace_, append_, encoding_, delim_, ImportOptions{});
  }

 private:
  std::string task_;
  std::string csv_;
  bool replace_ = false;
  bool append_ = false;
  std::string encoding_;
  std::string delim_ = ",";
};

class StatusVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* status =
        app.add_subcommand("status", "counts of a task's recipients by status and reply");
    status->add_option("--task", task_, "task file, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    status->add_flag("--json", json_, "one JSON object");
    status->add_flag("--failed", failed_, "list the failed recipients with their last reply");
    status->add_flag("--deferred", deferred_, "list the deferred recipients with their last reply");
    return status;
  }

  int run() override { return cmd_status(task_, json_, failed_, deferred_); }

 private:
  std::string task_;
  bool json_ = false;
  bool failed_ = false;
  bool deferred_ = false;
};

class ResetVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* reset = app.add_subcommand("reset", "make recipients sendable again");
    reset->add_option("--task", task_, "task file, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    reset->add_flag("--all", all_, "every recipient (except addresses rejected at import)");
    reset->add_flag("--errors", errors_, "failed and deferred recipients");
    return reset;
  }

  int run() override { return cmd_reset(task_, all_, errors_); }

 private:
  std::string task_;
  bool all_ = false;
  bool errors_ = false;
};

class ExportVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* exp =
        app.add_subcommand("export", "write recipients with a given status as CSV to stdout");
    exp->add_option("--task", task_, "task file, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    exp->add_option("--status", status_, "unsent, sent, deferred, failed, suppressed or in-flight")
        ->required();
    return exp;
  }

  int run() override { return cmd_export(task_, status_); }

 private:
  std::string task_;
  std::string status_;
};

}  // namespace

std::unique_ptr<Verb> make_import_verb() { return std::make_unique<ImportVerb>(); }
std::unique_ptr<Verb> make_status_verb() { return std::make_unique<StatusVerb>(); }
std::unique_ptr<Verb> make_reset_verb() { return std::make_unique<ResetVerb>(); }
std::unique_ptr<Verb> make_export_verb() { return std::make_unique<ExportVerb>(); }

}  // namespace sb
