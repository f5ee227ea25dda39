// The smtpblast command line: verbs, flags, validation and exit codes.
#include "cli/app.h"

#include <netdb.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/check.h"
#include "cli/dkim_options.h"
#include "cli/doctor_cmd.h"
#include "cli/pipeline.h"
#include "cli/relay_options.h"
#include "cli/run_report.h"
#include "cli/send_cmd.h"
#include "cli/test_data.h"
#include "cli/returns_cmd.h"
#include "cli/unsub_verify.h"
#include "dns/mx_resolver.h"
#include "loop/ascii.h"
#include "loop/display_text.h"
#include "smtp/sink_server.h"
#include "returns/pop_before_smtp.h"
#include "returns/verp.h"
#include "store/suppression.h"
#include "store/accounting.h"
#include "store/task_store.h"
#include "throttle/presets.h"

namespace sb {

namespace {

bool parse_status(const std::string& name, RcptStatus* s) {
  for (int i = 0; i <= kRcptStatusMax; ++i) {
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
    std::string name = arg.substr(start, comma == std::string::npos ? std::string::npos
                                                                    : comma - start);
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
      for (const std::string& f : fields) clash = clash || iequals_ascii(f, prefix + r);
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
    std::fprintf(stderr, "smtpblast: --status: '%s' is not one of unsent, sent, deferred, "
                         "failed, suppressed, in-flight, bounced, complained (several: "
                         "failed,deferred)\n",
                 display_escape(bad).c_str());
    return 2;
  }
  auto st = TaskStore::open_read_only(task);
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
    std::fprintf(stderr, "smtpblast: export: the list has a merge field named status, code or "
                         "reply; the result columns are %sstatus, %scode, %sreply\n",
                 prefix.c_str(), prefix.c_str(), prefix.c_str());
  }
  std::string out;
  out += "email";
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

void add_csv_options(CLI::App* cmd, std::string& encoding, std::string& delimiter) {
  cmd->add_option("--csv-encoding", encoding,
                  "the CSV's text encoding: utf-8 (default, BOM optional), latin1, cp1252, ... "
                  "(any name iconv knows)");
  cmd->add_option("--csv-delimiter", delimiter,
                  "the CSV's field delimiter: ',' (default), ';' (Excel in many locales), tab");
}

int parse_csv_options(const std::string& encoding, const std::string& delimiter,
                      CsvOptions& out) {
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
               const std::string& encoding, const std::string& delimiter) {
  ImportOptions opts;
  if (int rc = parse_csv_options(encoding, delimiter, opts.csv); rc != 0) return rc;
  if (replace && append) {
    std::fprintf(stderr, "smtpblast: import: give at most one of --replace and --append\n");
    return 2;
  }
  opts.mode = replace ? ImportMode::kReplace : append ? ImportMode::kAppend : ImportMode::kNew;
  int lock = lock_task(task);  // never under a running send
  if (lock < 0) return 2;
  std::error_code ec;
  bool fresh = task != ":memory:" && !std::filesystem::exists(task, ec) && !ec;
  auto st = TaskStore::open(task, true);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    ::close(lock);
    return 2;
  }
  if ((*st)->imported() && opts.mode == ImportMode::kNew) {
    std::fprintf(stderr, "smtpblast: task %s already holds a recipient list; to use %s instead "
                         "while nothing was sent, give --replace; to add its new rows, "
                         "--append\n", task.c_str(), csv.c_str());
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

int cmd_reset(const std::string& task, bool all, bool errors) {
  if (all == errors) {
    std::fprintf(stderr, "smtpblast: reset: give exactly one of --all or --errors\n");
    return 2;
  }
  int lock = lock_task(task);  // never under a running send
  if (lock < 0) return 2;
  auto st = TaskStore::open(task, false);
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
  std::fprintf(stderr, "task %s: %s recipients are unsent again (addresses rejected at import "
                       "stay failed)\n",
               task.c_str(), errors ? "failed and deferred" : "all");
  return 0;
}

int cmd_status(const std::string& task, bool json, bool failed, bool deferred) {
  auto st = TaskStore::open_read_only(task);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    return 2;
  }
  if (json && (failed || deferred)) {
    std::fprintf(stderr, "smtpblast: status: --failed/--deferred list as text; use `export` "
                         "for machine-readable lists\n");
    return 2;
  }
  auto c = (*st)->counts();
  if (!c.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", c.error().describe().c_str());
    return 2;
  }
  const RcptStatus all[] = {RcptStatus::kUnsent, RcptStatus::kSent, RcptStatus::kDeferred,
                            RcptStatus::kFailed, RcptStatus::kSuppressed, RcptStatus::kInFlight,
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
    if (c->unknown > 0) j["unknown"] = c->unknown;
    nlohmann::json codes = nlohmann::json::object();
    for (auto& [code, n] : c->by_code) codes[std::to_string(code)] = n;
    j["by_code"] = codes;
    std::printf("%s\n", j.dump().c_str());
    mark_json_printed();
    return 0;
  }
  std::printf("task %s: %llu recipients\n", display_escape(task).c_str(),
              static_cast<unsigned long long>(c->total));
  for (RcptStatus s : all) {
    std::printf("  %-11s %llu\n", status_name(s), static_cast<unsigned long long>(c->get(s)));
  }
  if (c->unknown > 0) {
    // Counted, never dropped: the counts above must add up to the total.
    std::printf("  %-11s %llu (status values %s: not written by this version of smtpblast; "
                "a newer one, or an edited task)\n",
                "unknown", static_cast<unsigned long long>(c->unknown),
                capped_list(c->unknown_values).c_str());
  }
  if (!throttle_line.empty()) {
    std::printf("throttle (last run): %s\n", display_escape(throttle_line).c_str());
  }
  if (!account.text.empty()) std::printf("%s\n", display_escape(account.text).c_str());
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

}  // namespace

static int run_verb(int argc, char** argv) {
  // A peer that closes its end must show up as a write error on that connection, not kill
  // the process.
  std::signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) must be a write error the task store reports, not death.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{"smtpblast: send one mailing (a template x a recipient list) as fast as the "
               "receiving side allows, and never lose track of a recipient"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smtpblast 0.1.0");

  // send
  RunConfig mc;
  mc.workers = std::max(1u, std::thread::hardware_concurrency());
  std::string retry_delay = "5s";
  bool no_pipelining = false;
  bool no_chunking = false;
  auto* send = app.add_subcommand(
      "send", "send (or resume) a mailing through a relay, or directly to each domain's MX (--direct)");
  send->add_option("--task", mc.task_path, "task file (SQLite); created on first use")->required();
  send->add_option("--template", mc.template_path, "RFC 5322 message with {{field}} placeholders")
      ->required()
      ->check(CLI::ExistingFile);
  send->add_option("--recipients", mc.recipients_path,
                   "CSV with a header row and an 'email' column; imported on first use")
      ->check(CLI::ExistingFile);
  std::string send_encoding;
  std::string send_delim = ",";
  add_csv_options(send, send_encoding, send_delim);
  RelayOptions ro;
  add_relay_options(send, ro, false);
  std::string preset_name;
  send->add_option("--preset", preset_name,
                   "provider preset (office365, gmail, ses-REGION): fills in the relay and its "
                   "limits where not given; `smtpblast presets` lists them");
  send->add_option("--rate", mc.throttle.rate,
                   "at most N messages started per period, e.g. 30/min, 10/s, 2000/day");
  send->add_option("--burst", mc.throttle.burst, "bucket depth for --rate (default: smooth pacing)");
  send->add_option("--daily-limit", mc.throttle.daily_limit,
                   "at most N recipients in any rolling 24 hours, counted in the task across runs");
  send->add_flag("--wait", mc.wait_daily,
                 "when the daily limit is reached, wait until sending may resume instead of stopping");
  send->add_option("--block-size", mc.throttle.block_size, "send N messages, then --block-pause");
  send->add_option("--block-pause", mc.throttle.block_pause, "pause between blocks, e.g. 2m");
  send->add_option("--connect-rate", mc.throttle.connect_rate,
                   "at most N new connections per period, e.g. 5/s");
  send->add_option("--from", mc.from, "envelope sender, and From: when the template has none");
  std::string pop_url, pop_password_file, pop_tls = "verify", pop_refresh = "5m";
  send->add_option("--pop-before-smtp", pop_url,
                   "log in to this POP3 mailbox (pop3s://user@host, pop3:// with STARTTLS) "
                   "before using the relay, and again every --pop-refresh");
  send->add_option("--pop-password-file", pop_password_file,
                   "the POP3 password (else $SMTPBLAST_POP_PASSWORD)");
  send->add_option("--pop-tls", pop_tls, "verify (default) or none: pop3:// in the clear");
  send->add_option("--pop-refresh", pop_refresh, "log in again this often (default 5m)");
  send->add_option("--return-path", mc.return_path,
                   "VERP envelope sender, e.g. 'bounces+{{id}}@bounce.example.com': {{id}} becomes "
                   "the recipient id and an HMAC, so `returns` can trust the bounces");
  send->add_option("--connections", mc.connections, "concurrent SMTP connections")
      ->check(CLI::Range(1u, 10000u));
  send->add_option("--per-connection", mc.per_connection,
                   "messages per connection, then QUIT and reconnect")
      ->check(CLI::Range(1u, 100000000u));
  send->add_option("--workers", mc.workers, "worker threads, one libuv loop each")
      ->check(CLI::Range(1u, 256u));
  send->add_option("--max-attempts", mc.max_attempts,
                   "attempts per recipient in this run before it stays deferred")
      ->check(CLI::Range(1u, 100u));
  send->add_option("--retry-delay", retry_delay, "first retry delay (doubles each attempt)");
  send->add_option("--pipeline-window", mc.window, "transactions in flight per connection")
      ->check(CLI::Range(1u, 1000u));
  send->add_flag("--no-pipelining", no_pipelining, "do not use PIPELINING even when offered");
  send->add_flag("--no-chunking", no_chunking, "use DATA even when CHUNKING is offered");
  send->add_flag("--force", mc.force,
                 "resume with a template, sender, relay or DKIM domain different from the "
                 "first run's");
  send->add_flag("--json", mc.json,
                 "print the summary (or the error) as one JSON object on stdout");
  send->add_option("--quota-store", mc.quota_store,
                   "file counting each sending account's daily limit across tasks (default "
                   "$XDG_STATE_HOME/smtpblast/quota.db, else ~/.local/state/smtpblast/quota.db)");
  std::string stop_timeout = "30s";
  send->add_option("--stop-timeout", stop_timeout,
                   "after SIGINT/SIGTERM, how long messages under way may take to finish before "
                   "their connections are dropped (default 30s; a second signal drops them at "
                   "once)");
  std::string commit_interval = "100ms";
  send->add_option("--commit-interval", commit_interval,
                   "record outcomes in the task at least this often (default 100ms); after a "
                   "kill -9 only messages accepted within this window may be sent twice");
  send->add_option("--limit", mc.limit, "this run starts at most N messages, then stops cleanly");
  send->add_flag("--reset-errors-after", mc.reset_errors_after,
                 "at the end of the run, make failed and deferred recipients unsent again");
  std::vector<std::string> suppress_files;
  send->add_option("--suppress", suppress_files,
                   "never mail the addresses and @domains listed in FILE (repeatable)");
  send->add_option("--accounting", mc.accounting_path,
                   "append one line per delivery attempt to FILE (.csv or .jsonl)");
  send->add_option("--backup-dir", mc.backup_dir, "also write every message sent as an .eml here");
  send->add_option("--backup-name", mc.backup_name,
                   "file name pattern for --backup-dir/--pickup, e.g. "
                   "\"{{task_title}}-{{date}}-{{recipient}}.eml\" (default {{id}}-{{recipient}}.eml)");
  send->add_option("--title", mc.title, "the task's title, {{task_title}} in --backup-name");
  send->add_option("--pickup", mc.pickup_dir,
                   "instead of a relay: write each message as an .eml file into this pickup "
                   "directory (IIS/Exchange style)");
  MessageOptions send_msg;
  add_message_options(send, send_msg);

  // direct delivery
  DirectOptions send_direct;
  add_direct_options(send, send_direct,
                     "no relay: deliver to each recipient domain's mail exchangers (needs --helo)");
  send->add_option("--max-connections-per-domain", mc.max_conn_per_domain,
                   "--direct: connections at once to one destination (default 5)")
      ->check(CLI::Range(1u, 1000u));
  send->add_option("--max-rcpt-per-txn", mc.max_rcpt_per_txn,
                   "--direct: recipients of one domain per transaction when every recipient "
                   "gets the same message (default 50)")
      ->check(CLI::Range(1u, 1000u));
  std::string retry_after;
  std::string retry_max = "1h";
  send->add_option("--retry-after", retry_after,
                   "first retry delay of a deferred recipient or unreachable destination, "
                   "doubling (with jitter) up to --retry-max (default 1m with --direct, else "
                   "--retry-delay)");
  send->add_option("--retry-max", retry_max, "the longest retry delay (default 1h)");
  DoctorArgs preflight;  // send --preflight: the doctor's checks first
  add_preflight_options(send, preflight);

  // check, test
  RelayOptions check_ro;
  DirectOptions check_direct;
  std::string check_from = "postmaster@localhost";
  std::string probe_rcpt;
  std::string check_domain;
  auto* check = app.add_subcommand(
      "check", "connect to the relay (or, --direct, a domain's first working MX host): greeting, "
               "capabilities, TLS, AUTH, optional MAIL/RCPT probe");
  add_relay_options(check, check_ro, false);
  std::string check_preset;
  check->add_option("--preset", check_preset,
                    "provider preset: its relay and TLS mode where not given (as on send)");
  add_direct_options(check, check_direct,
                     "no relay: look up the MX hosts of --domain (or of --probe-rcpt's domain) "
                     "and check the first that answers (needs --helo)");
  check->add_option("--from", check_from,
                    "sender for the probe (default postmaster@localhost; with --direct "
                    "postmaster@ the --helo name)");
  check->add_option("--probe-rcpt", probe_rcpt,
                    "ask whether the relay accepts this recipient (MAIL, RCPT, RSET; no message)");
  check->add_option("--domain", check_domain,
                    "--direct: the domain whose mail exchangers to check (default: the domain of "
                    "--probe-rcpt)");
  RelayOptions test_ro;
  DirectOptions test_direct;
  std::string test_from;
  std::string test_to;
  std::string test_template;
  auto* test = app.add_subcommand(
      "test", "send one message to one address (through the relay, or --direct to its domain's "
              "MX) and show the reply");
  add_relay_options(test, test_ro, false);
  std::string test_preset;
  test->add_option("--preset", test_preset,
                   "provider preset: its relay and TLS mode where not given (as on send)");
  add_direct_options(test, test_direct,
                     "no relay: deliver to the MX hosts of --to's domain (needs --helo)");
  test->add_option("--template", test_template,
                   "the message, merged with --row/--field data ({{email}} is --to)")
      ->required()
      ->check(CLI::ExistingFile);
  test->add_option("--to", test_to, "recipient (not needed with --print)");
  TestDataArgs test_data;
  bool test_print = false;
  bool test_transcript = false;
  test->add_option("--task", test_data.task, "take the merge data from this task's recipients");
  test->add_option("--recipients", test_data.csv,
                   "take the merge data from this CSV (default: its first row)")
      ->check(CLI::ExistingFile);
  test->add_option("--row", test_data.row, "the N-th recipient of --task or --recipients")
      ->check(CLI::Range(uint64_t{1}, UINT64_MAX));
  test->add_option("--field", test_data.fields, "a merge value, name=value (repeatable)");
  test->add_flag("--print", test_print,
                 "write the rendered message to stdout and send nothing (a proof)");
  test->add_flag("--transcript", test_transcript,
                 "show the SMTP dialogue (secrets redacted) also when the message is sent");
  test->add_option("--from", test_from, "envelope sender (default: the template's From:)");
  MessageOptions test_msg;
  add_message_options(test, test_msg);

  // unsub-verify, dkim-record
  UnsubVerifyArgs unsub_args;
  auto* unsub_verify = add_unsub_verify_command(app, unsub_args);
  MessageOptions record_msg;
  auto* dkim_record = app.add_subcommand(
      "dkim-record", "print the DNS TXT record to publish for each --dkim-key (zone-file syntax)");
  add_dkim_key_options(dkim_record, record_msg);

  // presets
  auto* presets = app.add_subcommand("presets", "list the provider presets and their limits");

  // import
  std::string import_task;
  std::string import_csv;
  auto* import = app.add_subcommand("import", "create a task from a recipient list without sending");
  import->add_option("--task", import_task, "task file to create")->required();
  import->add_option("--recipients", import_csv, "CSV with a header row and an 'email' column")
      ->required()
      ->check(CLI::ExistingFile);
  bool import_replace = false;
  bool import_append = false;
  import->add_flag("--replace", import_replace,
                   "replace the task's list (allowed while nothing was sent from it)");
  import->add_flag("--append", import_append,
                   "add the CSV's new rows to the task (late subscribers); addresses already "
                   "in it are skipped");
  std::string import_encoding;
  std::string import_delim = ",";
  add_csv_options(import, import_encoding, import_delim);

  // status
  std::string status_task;
  bool status_json = false;
  auto* status = app.add_subcommand("status", "counts of a task's recipients by status and reply");
  status->add_option("--task", status_task, "task file")->required();
  status->add_flag("--json", status_json, "one JSON object");
  bool status_failed = false;
  bool status_deferred = false;
  status->add_flag("--failed", status_failed, "list the failed recipients with their last reply");
  status->add_flag("--deferred", status_deferred,
                   "list the deferred recipients with their last reply");

  // reset
  std::string reset_task;
  bool reset_all = false;
  bool reset_errors = false;
  auto* reset = app.add_subcommand("reset", "make recipients sendable again");
  reset->add_option("--task", reset_task, "task file")->required();
  reset->add_flag("--all", reset_all, "every recipient (except addresses rejected at import)");
  reset->add_flag("--errors", reset_errors, "failed and deferred recipients");

  // export
  std::string export_task;
  std::string export_status;
  auto* exp = app.add_subcommand("export", "write recipients with a given status as CSV to stdout");
  exp->add_option("--task", export_task, "task file")->required();
  exp->add_option("--status", export_status,
                  "unsent, sent, deferred, failed, suppressed or in-flight")->required();

  // returns (issue 14)
  ReturnsOptions rto;
  std::string returns_src;
  auto* returns = app.add_subcommand(
      "returns", "read returned mail (bounces, complaints) into the task; hard bounces are "
                 "suppressed");
  returns->add_option("--task", rto.task, "task file")->required();
  returns->add_option("--mailbox", rto.mailbox,
                      "imaps://user@host/INBOX or pop3s://user@host (imap://, pop3://: STARTTLS)");
  returns->add_option("--mailbox-password-file", rto.mailbox_password_file,
                      "the mailbox password (else $SMTPBLAST_MAILBOX_PASSWORD)");
  returns->add_option("--mailbox-tls", rto.mailbox_tls,
                      "verify (default) or none: imap:// and pop3:// in the clear (tests)");
  returns->add_option("--mailbox-ca", rto.mailbox_ca, "CA bundle for the mailbox server");
  returns->add_option("--maildir", rto.maildir, "a maildir (new/ and cur/) of returned mail");
  returns->add_option("--mbox", rto.mbox, "an mbox file of returned mail (never modified)");
  returns->add_option("source", returns_src, "- : one message on stdin");
  returns->add_option("--keep", rto.keep_dir, "keep a raw copy of each processed message here");
  returns->add_option("--rules", rto.rules_file,
                      "classification rules tried before the shipped ones");
  returns->add_option("--suppress-out", rto.suppress_out,
                      "write bounced and complained addresses to FILE (a --suppress list)");
  returns->add_option("--soft-limit", rto.soft_limit,
                      "this many soft bounces count as a hard one (0: never; default 3)");
  returns->add_flag("--json", rto.json, "one JSON object");

  // sink
  SinkServerConfig sc;
  auto* sink = app.add_subcommand("sink", "a fast local SMTP sink for demos, tests and benchmarks");
  sink->add_option("--listen", sc.listen, "IP:PORT to listen on");
  sink->add_option("--reject-rcpt", sc.engine.reject_rcpt, "share of RCPTs answered 550")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option("--defer-rcpt", sc.engine.defer_rcpt, "share of RCPTs answered 451")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option("--defer-txn", sc.engine.defer_txn, "share of messages answered 451")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option("--drop-txn", sc.engine.drop_txn,
                   "share of messages whose connection is dropped before the final reply")
      ->check(CLI::Range(0.0, 1.0));
  sink->add_option("--delay-ms", sc.engine.reply_delay_ms, "delay every reply by this much");
  sink->add_option("--defer-reply", sc.engine.defer_reply,
                   "reply used for --defer-rcpt/--defer-txn, e.g. \"451 4.7.0 Rate limited\"")
      ->check([](const std::string& v) {
        return v.size() >= 4 && v[0] == '4' && isdigit(v[1]) && isdigit(v[2]) && v[3] == ' ' &&
                       v.find_first_of("\r\n") == std::string::npos
                   ? std::string()
                   : std::string("must be a one-line 4xx reply such as \"451 4.7.0 Rate limited\"");
      });
  sink->add_option("--rate-limit", sc.engine.rate_limit,
                   "accept at most R messages a second; answer the others 451 4.7.0 Rate limited")
      ->check(CLI::Range(0.0, 1e9));
  sink->add_option("--fault-421-at", sc.engine.fault_421_at,
                   "answer the Nth message 421 4.7.0 and close its connection, once");
  sink->add_option("--max-size", sc.engine.max_size, "SIZE limit to announce (0: none)");
  sink->add_option("--seed", sc.engine.seed, "seed of the fault generator");
  sink->add_option("--record", sc.record_path, "append every accepted message to this file");
  sink->add_option("--stats-interval-ms", sc.stats_interval_ms, "print counters this often");
  bool sink_no_pipelining = false;
  bool sink_no_chunking = false;
  sink->add_flag("--no-pipelining", sink_no_pipelining, "do not announce PIPELINING");
  sink->add_flag("--no-chunking", sink_no_chunking, "do not announce CHUNKING");

  // doctor: send's flags (all of them, so send's command line works with doctor in front)
  DoctorArgs doctor_args;
  auto* doctor = add_doctor_command(app, *send, doctor_args);

  if (std::string verb = unknown_verb(argc, argv, app); !verb.empty()) {
    std::fprintf(stderr,
                 "smtpblast: unknown command %s (commands: send, import, status, export, reset, "
                 "check, test, presets, sink, dkim-record, unsub-verify, doctor, returns; "
                 "smtpblast --help)\n",
                 verb.c_str());
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (*send) {
    if (int rc = parse_csv_options(send_encoding, send_delim, mc.csv); rc != 0) return rc;
    std::string err;
    if (std::string why = from_problem(mc.from); !mc.from.empty() && !why.empty()) {
      std::fprintf(stderr, "smtpblast: --from: %s\n", why.c_str());
      return kExitUsage;
    }
    if (!preset_name.empty()) {
      auto p = find_preset(preset_name);
      if (!p.ok()) {
        std::fprintf(stderr, "smtpblast: --preset: %s\n", p.error().message.c_str());
        return 2;
      }
      if (ro.relay.empty()) ro.relay = p->host + ":" + std::to_string(p->port);
      if (ro.tls.empty()) ro.tls = p->tls;
      apply_preset(*p, mc.throttle);
    }
    if (!mc.pickup_dir.empty() && (!ro.relay.empty() || !preset_name.empty())) {
      std::fprintf(stderr, "smtpblast: --pickup writes files instead of using a relay: give one "
                           "of --pickup or --relay/--preset\n");
      return 2;
    }
    if (!mc.pickup_dir.empty() && !mc.backup_dir.empty()) {
      std::fprintf(stderr, "smtpblast: --backup-dir goes with a relay; --pickup files are the "
                           "messages\n");
      return 2;
    }
    mc.direct = send_direct.direct;
    if (mc.direct && (!mc.pickup_dir.empty() || !preset_name.empty())) {
      std::fprintf(stderr, "smtpblast: --direct delivers to mail exchangers: it goes with neither "
                           "--pickup nor --preset\n");
      return 2;
    }
    auto lookup = prepare_direct_lookup(send_direct, *send,
                                        {"--max-connections-per-domain", "--max-rcpt-per-txn"});
    if (!lookup.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", lookup.error().message.c_str());
      return 2;
    }
    mc.lookup = *lookup;
    if (mc.direct && send->count("--connections") == 0) mc.connections = 100;
    if (ro.relay.empty() && mc.pickup_dir.empty() && !mc.direct) {
      std::fprintf(stderr, "smtpblast: --relay HOST:PORT is required (or a --preset, or --pickup DIR)\n");
      return 2;
    }
    {
      uint32_t ms = 0;
      if (!parse_duration_ms(commit_interval, ms) || ms == 0 || ms > 60000) {
        std::fprintf(stderr, "smtpblast: --commit-interval: '%s' is not a duration between 1ms "
                             "and 60s (e.g. 100ms)\n", commit_interval.c_str());
        return 2;
      }
      mc.commit_interval_ms = ms;
    }
    if (!parse_duration_ms(stop_timeout, mc.stop_timeout_ms) || mc.stop_timeout_ms == 0) {
      std::fprintf(stderr, "smtpblast: --stop-timeout: '%s' is not a duration (e.g. 30s)\n",
                   stop_timeout.c_str());
      return 2;
    }
    // Keys and the unsubscribe secret are loaded once, before the task is opened.
    auto msg = prepare_message_options(send_msg);
    if (!msg.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
      return 2;
    }
    apply_message_setup(msg.value(), mc);
    if (preflight.preflight || !preflight.ips.empty()) {
      int rc = run_preflight(preflight, mc.template_path, mc.from, mc.recipients_path,
                             mc.task_path, ro, send_msg, send_direct, mc.force);
      if (rc != 0) return rc;
    }
    if (!mc.return_path.empty()) {
      if (auto r = check_return_path(mc.return_path); !r.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", r.error().message.c_str());
        return 2;
      }
    }
    auto suppress = std::make_shared<SuppressionList>();
    for (const std::string& f : suppress_files) {
      if (auto r = suppress->load_file(f); !r.ok()) {
        std::fprintf(stderr, "smtpblast: --suppress: %s\n", r.error().message.c_str());
        return 2;
      }
    }
    mc.suppress = std::move(suppress);
    if (!mc.pickup_dir.empty()) {
      mc.progress = false;
      return run_send_command(mc);
    }
    if (mc.wait_daily && mc.throttle.daily_limit == 0) {
      std::fprintf(stderr, "smtpblast: --wait goes with --daily-limit\n");
      return 2;
    }
    if (auto tc = make_throttle_config(mc.throttle); !tc.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", tc.error().message.c_str());
      return 2;
    }
    auto relay = mc.direct ? prepare_direct(ro) : prepare_relay(ro);
    if (!relay.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", relay.error().message.c_str());
      return 2;
    }
    mc.relay = std::make_shared<const RelaySetup>(std::move(relay).value());
    if (!parse_duration_ms(retry_delay, mc.retry_delay_ms)) {
      std::fprintf(stderr, "smtpblast: --retry-delay: '%s' is not a duration (e.g. 30s, 2m)\n",
                   retry_delay.c_str());
      return 2;
    }
    if (retry_after.empty() && mc.direct && send->count("--retry-delay") == 0) retry_after = "1m";
    if (!retry_after.empty() && (!parse_duration_ms(retry_after, mc.retry_delay_ms) || mc.retry_delay_ms == 0)) {
      std::fprintf(stderr, "smtpblast: --retry-after: '%s' is not a duration (e.g. 1m, 30s)\n",
                   retry_after.c_str());
      return 2;
    }
    if (!parse_duration_ms(retry_max, mc.retry_max_ms) || mc.retry_max_ms < mc.retry_delay_ms) {
      std::fprintf(stderr, "smtpblast: --retry-max: '%s' is not a duration at least as long as "
                           "the first retry delay\n", retry_max.c_str());
      return 2;
    }
    mc.pipelining = !no_pipelining;
    mc.chunking = !no_chunking;
    mc.progress = stderr_is_terminal();
    mc.progress_plain = !mc.progress;
    std::unique_ptr<PopRefresher> pop;
    if (!pop_url.empty()) {
      auto pc = pop_before_smtp_config(pop_url, pop_password_file, pop_tls, pop_refresh);
      if (!pc.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", pc.error().message.c_str());
        return 2;
      }
      if (auto st = pop3_login(pc->first); !st.ok()) {
        std::fprintf(stderr, "smtpblast: --pop-before-smtp: %s\n", st.error().message.c_str());
        return 2;
      }
      pop = std::make_unique<PopRefresher>(pc->first, pc->second);
    }
    return run_send_command(mc);
  }
  if (*doctor) return run_doctor(doctor_args);
  if (*unsub_verify) return run_unsub_verify(unsub_args);
  if (*dkim_record) return run_dkim_record(record_msg);
  if (*status) return cmd_status(status_task, status_json, status_failed, status_deferred);
  if (*reset) return cmd_reset(reset_task, reset_all, reset_errors);
  if (*exp) return cmd_export(export_task, export_status);
  if (*returns) {
    if (!returns_src.empty() && returns_src != "-") {
      std::fprintf(stderr, "smtpblast: returns: '%s': the only source argument is - (stdin)\n",
                   returns_src.c_str());
      return 2;
    }
    rto.stdin_eml = returns_src == "-";
    return run_returns(rto);
  }
  if (*check || *test) {
    CLI::App* cmd = *check ? check : test;
    const RelayOptions& o = *check ? check_ro : test_ro;
    const DirectOptions& d = *check ? check_direct : test_direct;
    const char* verb = *check ? "check" : "test";
    std::optional<TestData> data;
    if (*test) {
      auto td = load_test_data(test_data);
      if (!td.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", td.error().message.c_str());
        return kExitUsage;
      }
      data = std::move(td).value();
      if (!test_print && test_to.empty()) {
        std::fprintf(stderr, "smtpblast: test: --to ADDR is required (or --print, to see the "
                             "message without sending it)\n");
        return kExitUsage;
      }
    }
    const std::string& from_arg = *check ? check_from : test_from;
    if (std::string why = from_problem(from_arg); !from_arg.empty() && !why.empty()) {
      std::fprintf(stderr, "smtpblast: --from: %s\n", why.c_str());
      return kExitUsage;
    }
    const std::string& preset_arg = *check ? check_preset : test_preset;
    if (!preset_arg.empty()) {
      if (d.direct) {
        std::fprintf(stderr, "smtpblast: %s: --direct delivers to mail exchangers: it does not "
                             "go with --preset\n", verb);
        return kExitUsage;
      }
      if (auto p = apply_relay_preset(preset_arg, *check ? check_ro : test_ro); !p.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", p.error().message.c_str());
        return kExitUsage;
      }
    }
    auto lookup = prepare_direct_lookup(d, *cmd, *check ? std::vector<std::string>{"--domain"}
                                                        : std::vector<std::string>{});
    if (!lookup.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", lookup.error().message.c_str());
      return 2;
    }
    if (*test && test_print) {
      auto msg = prepare_message_options(test_msg);
      if (!msg.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
        return kExitUsage;
      }
      return print_test_message(test_template, test_from, test_to, &msg.value(), &*data);
    }
    if (!d.direct && o.relay.empty()) {
      std::fprintf(stderr, "smtpblast: %s: --relay HOST:PORT is required (or --direct, to use the "
                           "recipient domain's mail exchangers)\n", verb);
      return 2;
    }
    auto relay = d.direct ? prepare_direct(o) : prepare_relay(o);
    if (!relay.ok()) {
      const std::string& m = relay.error().message;
      if (*check && m.find("cannot resolve") != std::string::npos) {
        std::printf("check failed at dns: %s\n", m.c_str());
        return 1;
      }
      std::fprintf(stderr, "smtpblast: %s\n", m.c_str());
      return 2;
    }
    // --direct: the domain whose MX hosts are used, checked before anything is looked up.
    std::string domain;
    if (d.direct) {
      const std::string& addr = *check ? probe_rcpt : test_to;
      const char* flag = *check ? "--probe-rcpt" : "--to";
      if (!addr.empty() && address_domain(addr).empty()) {
        std::fprintf(stderr, "smtpblast: %s: '%s' has no @domain: --direct looks up the MX hosts "
                             "of its domain\n", flag, addr.c_str());
        return 2;
      }
      domain = !check_domain.empty() && *check ? check_domain : address_domain(addr);
      if (domain.empty()) {
        std::fprintf(stderr, "smtpblast: check --direct needs --domain D or --probe-rcpt ADDR: "
                             "whose mail exchangers to check\n");
        return 2;
      }
      auto norm = dns::normalise_domain(domain);
      if (!norm.ok()) {
        std::fprintf(stderr, "smtpblast: %s: %s\n",
                     *check && !check_domain.empty() ? "--domain" : flag,
                     norm.error().message.c_str());
        return 2;
      }
      if (*check && !check_domain.empty() && !probe_rcpt.empty()) {
        auto probe_norm = dns::normalise_domain(address_domain(probe_rcpt));
        if (!probe_norm.ok() || *probe_norm != *norm) {
          std::fprintf(stderr, "smtpblast: --domain %s and --probe-rcpt %s name different domains; "
                               "give one, or the same\n", check_domain.c_str(), probe_rcpt.c_str());
          return 2;
        }
      }
    }
    const DirectLookup* direct = d.direct ? &lookup.value() : nullptr;
    if (*check) {
      // A receiving MX may refuse a sender whose domain does not exist (like localhost).
      if (d.direct && check->count("--from") == 0) check_from = "postmaster@" + relay->helo;
      return run_check(*relay, check_from, probe_rcpt, direct, domain);
    }
    auto msg = prepare_message_options(test_msg);
    if (!msg.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
      return 2;
    }
    return run_test_message(*relay, test_template, test_from, test_to, &msg.value(), direct,
                            &*data, test_transcript);
  }
  if (*presets) {
    for (const Preset& p : preset_table()) {
      std::printf("%-12s %s:%u  tls=%s  rate=%s  daily=%s\n    %s\n", p.name.c_str(), p.host.c_str(),
                  p.port, p.tls.c_str(), p.rate.empty() ? "-" : p.rate.c_str(),
                  p.daily_limit ? std::to_string(p.daily_limit).c_str() : "-", p.notes.c_str());
    }
    return 0;
  }
  if (*import) return cmd_import(import_task, import_csv, import_replace, import_append,
                                 import_encoding, import_delim);
  if (*sink) {
    sc.engine.pipelining = !sink_no_pipelining;
    sc.engine.chunking = !sink_no_chunking;
    Status s = run_sink(sc);
    if (!s.ok()) {
      std::fprintf(stderr, "smtpblast sink: %s\n", s.error().describe().c_str());
      return 2;
    }
    return 0;
  }
  return 2;
}

// --json: a verb that failed before printing its own JSON result still answers with one
// JSON object on stdout (errors keep going to stderr as text too).
int run_cli(int argc, char** argv) {
  if (!argv_has(argc, argv, "--json")) return run_verb(argc, argv);
  JsonErrorTee tee;
  tee.start();
  int rc = run_verb(argc, argv);
  std::string error = tee.stop();
  if (rc != 0 && !json_printed()) {
    nlohmann::json j;
    j["ok"] = false;
    j["exit_code"] = rc;
    j["error"] = error.empty() ? "exit code " + std::to_string(rc) : error;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return rc;
}

}  // namespace sb
