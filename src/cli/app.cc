// The smtpblast command line: verbs, flags, validation and exit codes.
#include "cli/app.h"

#include <netdb.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/mailing.h"
#include "smtp/sink_server.h"
#include "store/task_store.h"

namespace sb {

namespace {

// Resolves "host:port" (names through the system resolver, once, before any loop runs).
bool resolve_relay(const std::string& spec, std::vector<sockaddr_storage>& out, std::string* err) {
  std::string host = spec;
  std::string port = "25";
  if (!spec.empty() && spec[0] == '[') {
    size_t e = spec.find(']');
    if (e == std::string::npos) {
      *err = "unbalanced '[' in '" + spec + "'";
      return false;
    }
    host = spec.substr(1, e - 1);
    if (e + 1 < spec.size()) {
      if (spec[e + 1] != ':') {
        *err = "expected ':' after ']' in '" + spec + "'";
        return false;
      }
      port = spec.substr(e + 2);
    }
  } else if (size_t c = spec.rfind(':'); c != std::string::npos && spec.find(':') == c) {
    host = spec.substr(0, c);
    port = spec.substr(c + 1);
  }
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (host.empty() || port.empty() || *end != '\0' || p <= 0 || p > 65535) {
    *err = "'" + spec + "' is not HOST:PORT";
    return false;
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    *err = "cannot resolve '" + host + "': " + gai_strerror(rc);
    return false;
  }
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    out.push_back(ss);
  }
  freeaddrinfo(res);
  return !out.empty();
}

// "30s", "500ms", "2m", or plain seconds.
bool parse_duration_ms(const std::string& s, uint32_t& out) {
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit(end);
  double mult = unit.empty() || unit == "s" ? 1000 : unit == "ms" ? 1 : unit == "m" ? 60000
                : unit == "h" ? 3600000 : -1;
  if (end == s.c_str() || mult < 0 || v < 0) return false;
  out = static_cast<uint32_t>(v * mult);
  return true;
}

int cmd_status(const std::string& task, bool json) {
  auto st = TaskStore::open(task, false);
  if (!st.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
    return 2;
  }
  auto c = (*st)->counts();
  if (!c.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", c.error().describe().c_str());
    return 2;
  }
  const RcptStatus all[] = {RcptStatus::kUnsent, RcptStatus::kSent, RcptStatus::kDeferred,
                            RcptStatus::kFailed, RcptStatus::kSuppressed, RcptStatus::kInFlight};
  if (json) {
    nlohmann::json j;
    j["task"] = task;
    j["total"] = c->total;
    for (RcptStatus s : all) {
      std::string key = status_name(s);  // JSON keys are identifiers: "in-flight" -> "in_flight"
      for (char& ch : key) ch = ch == '-' ? '_' : ch;
      j[key] = c->get(s);
    }
    nlohmann::json codes = nlohmann::json::object();
    for (auto& [code, n] : c->by_code) codes[std::to_string(code)] = n;
    j["by_code"] = codes;
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("task %s: %llu recipients\n", task.c_str(), static_cast<unsigned long long>(c->total));
  for (RcptStatus s : all) {
    std::printf("  %-11s %llu\n", status_name(s), static_cast<unsigned long long>(c->get(s)));
  }
  if (!c->by_code.empty()) {
    std::printf("last reply codes:\n");
    for (auto& [code, n] : c->by_code) {
      std::printf("  %-11s %llu\n", code == 0 ? "none" : std::to_string(code).c_str(),
                  static_cast<unsigned long long>(n));
    }
  }
  return 0;
}

}  // namespace

int run_cli(int argc, char** argv) {
  // A peer that closes its end must show up as a write error on that connection, not kill
  // the process.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"smtpblast: send one mailing (a template x a recipient list) as fast as the "
               "receiving side allows, and never lose track of a recipient"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smtpblast 0.1.0");

  // send
  MailingConfig mc;
  mc.workers = std::max(1u, std::thread::hardware_concurrency());
  std::string retry_delay = "5s";
  std::string connect_timeout = "30s";
  bool no_pipelining = false;
  bool no_chunking = false;
  auto* send = app.add_subcommand("send", "send (or resume) a mailing through a relay");
  send->add_option("--task", mc.task_path, "task file (SQLite); created on first use")->required();
  send->add_option("--template", mc.template_path, "RFC 5322 message with {{field}} placeholders")
      ->required()
      ->check(CLI::ExistingFile);
  send->add_option("--recipients", mc.recipients_path,
                   "CSV with a header row and an 'email' column; imported on first use")
      ->check(CLI::ExistingFile);
  send->add_option("--relay", mc.relay, "relay HOST:PORT")->required();
  send->add_option("--from", mc.from, "envelope sender, and From: when the template has none");
  send->add_option("--helo", mc.helo, "name sent with EHLO (default: this host's name)");
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
  send->add_option("--connect-timeout", connect_timeout, "TCP connect timeout");
  send->add_option("--pipeline-window", mc.window, "transactions in flight per connection")
      ->check(CLI::Range(1u, 1000u));
  send->add_flag("--no-pipelining", no_pipelining, "do not use PIPELINING even when offered");
  send->add_flag("--no-chunking", no_chunking, "use DATA even when CHUNKING is offered");
  send->add_flag("--force", mc.force, "resume with a template different from the first run's");

  // import
  std::string import_task;
  std::string import_csv;
  auto* import = app.add_subcommand("import", "create a task from a recipient list without sending");
  import->add_option("--task", import_task, "task file to create")->required();
  import->add_option("--recipients", import_csv, "CSV with a header row and an 'email' column")
      ->required()
      ->check(CLI::ExistingFile);

  // status
  std::string status_task;
  bool status_json = false;
  auto* status = app.add_subcommand("status", "counts of a task's recipients by status and reply");
  status->add_option("--task", status_task, "task file")->required();
  status->add_flag("--json", status_json, "one JSON object");

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
  sink->add_option("--max-size", sc.engine.max_size, "SIZE limit to announce (0: none)");
  sink->add_option("--seed", sc.engine.seed, "seed of the fault generator");
  sink->add_option("--record", sc.record_path, "append every accepted message to this file");
  sink->add_option("--stats-interval-ms", sc.stats_interval_ms, "print counters this often");
  bool sink_no_pipelining = false;
  bool sink_no_chunking = false;
  sink->add_flag("--no-pipelining", sink_no_pipelining, "do not announce PIPELINING");
  sink->add_flag("--no-chunking", sink_no_chunking, "do not announce CHUNKING");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (*send) {
    std::string err;
    if (!resolve_relay(mc.relay, mc.relay_addrs, &err)) {
      std::fprintf(stderr, "smtpblast: --relay: %s\n", err.c_str());
      return 2;
    }
    if (!parse_duration_ms(retry_delay, mc.retry_delay_ms)) {
      std::fprintf(stderr, "smtpblast: --retry-delay: '%s' is not a duration (e.g. 30s, 2m)\n",
                   retry_delay.c_str());
      return 2;
    }
    if (!parse_duration_ms(connect_timeout, mc.connect_timeout_ms) || mc.connect_timeout_ms == 0) {
      std::fprintf(stderr, "smtpblast: --connect-timeout: '%s' is not a duration\n",
                   connect_timeout.c_str());
      return 2;
    }
    if (mc.helo.empty()) {
      char host[256] = "localhost";
      gethostname(host, sizeof host - 1);
      mc.helo = host;
    }
    mc.pipelining = !no_pipelining;
    mc.chunking = !no_chunking;
    mc.progress = isatty(STDERR_FILENO) != 0;
    return run_mailing(mc);
  }
  if (*status) return cmd_status(status_task, status_json);
  if (*import) {
    auto st = TaskStore::open(import_task, true);
    if (!st.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", st.error().describe().c_str());
      return 2;
    }
    if ((*st)->imported()) {
      std::fprintf(stderr, "smtpblast: task %s already holds a recipient list\n", import_task.c_str());
      return 2;
    }
    return import_recipients(**st, import_csv);
  }
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

}  // namespace sb
