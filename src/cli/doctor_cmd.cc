// The doctor verb: loads what send would load (template, keys, relay), asks DNS through the
// resolver send uses, and prints the doctor's report.
#include "cli/doctor_cmd.h"

#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "cli/pipeline.h"
#include "cli/verb.h"
#include "dns/resolver.h"
#include "doctor/doctor.h"
#include "doctor/org_domain.h"
#include "message/dkim.h"
#include "message/template.h"
#include "pg/task_open.h"
#include "store/csv_reader.h"
#include "store/task_store.h"
#include "throttle/presets.h"

namespace sb {

namespace {

// The recipients of a CSV list: the 'email' column of every row, and the first row's fields
// (to render the sample message with real merge values).
class EmailSink : public CsvSink {
 public:
  bool on_record(const std::vector<std::string>& fields, size_t n, uint64_t) override {
    if (header.empty()) {
      header.assign(fields.begin(), fields.begin() + static_cast<long>(n));
      for (size_t i = 0; i < n; ++i) {
        if (header[i] == "email") column = static_cast<int>(i);
      }
      return column >= 0;
    }
    if (static_cast<size_t>(column) >= n) return true;
    if (first.empty()) first.assign(fields.begin(), fields.begin() + static_cast<long>(n));
    if (sample.empty()) sample = fields[static_cast<size_t>(column)];
    doctor::count_recipient(domains, fields[static_cast<size_t>(column)]);
    return true;
  }
  std::vector<std::string> header, first;
  std::string sample;  // the first address: the sample message goes to it
  doctor::DomainCounts domains;
  int column = -1;
};

int usage(const std::string& m) {
  std::fprintf(stderr, "smtpblast: %s\n", m.c_str());
  return 2;
}

// Everything loaded, or the exit code 2 after a message on stderr.
struct Loaded {
  doctor::DoctorInput in;
  dns::ResolverConfig dns;
};

int load(const DoctorArgs& a, Loaded& out) {
  doctor::DoctorInput& in = out.in;
  // DNS: --dns-server and --dns-timeout steer the doctor's lookups with or without --direct.
  for (const std::string& s : a.direct.dns_servers) {
    if (auto p = dns::parse_server_address(s); !p.ok()) {
      return usage("--dns-server: " + p.error().message);
    }
  }
  uint32_t timeout = 0;
  if (!parse_duration_ms(a.direct.dns_timeout, timeout) || timeout == 0 || timeout > 60000) {
    return usage("--dns-timeout: '" + a.direct.dns_timeout +
                 "' is not a duration between 1ms and 60s");
  }
  out.dns.servers = a.direct.dns_servers;
  out.dns.timeout_ms = static_cast<int>(timeout);
  out.dns.tries = 2;

  std::ifstream f(a.template_path, std::ios::binary);
  if (!f) return usage("--template: cannot read " + a.template_path);
  std::ostringstream ss;
  ss << f.rdbuf();
  in.template_raw = ss.str();

  auto msg = prepare_message_options(a.message);
  if (!msg.ok()) return usage(msg.error().message);
  for (const std::string& w : msg->warnings) {
    std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  }
  for (const auto& s : msg->dkim) {
    in.dkim.push_back({s->domain(), s->selector(), s->algorithm(), s->dns_txt_record()});
  }

  // The list: the CSV when given, else the task's recipients still to send.
  std::vector<std::string> fields, values;
  std::string sample_to;
  if (!a.recipients_path.empty()) {
    std::ifstream rf(a.recipients_path, std::ios::binary);
    if (!rf) return usage("--recipients: cannot read " + a.recipients_path);
    EmailSink sink;
    CsvReader reader(sink);
    char buf[1 << 16];
    while (rf) {
      rf.read(buf, sizeof buf);
      if (rf.gcount() <= 0) break;
      if (auto r = reader.feed(std::string_view(buf, static_cast<size_t>(rf.gcount()))); !r.ok()) {
        return usage("--recipients " + a.recipients_path + ": " + r.error().message);
      }
      if (reader.stopped()) break;
    }
    if (auto r = reader.finish(); !r.ok()) {
      return usage("--recipients " + a.recipients_path + ": " + r.error().message);
    }
    if (sink.column < 0) return usage("--recipients " + a.recipients_path + ": no 'email' column");
    in.recipient_domains = std::move(sink.domains);
    sample_to = sink.sample;
    fields = sink.header;
    values = sink.first;
  } else if (!a.task_path.empty() &&
             (is_shared_task(a.task_path) || ::access(a.task_path.c_str(), F_OK) == 0)) {
    auto st = open_task_store(a.task_path, TaskOpen::kWrite);
    // A PostgreSQL task the first send has not created yet is skipped, as a missing file is.
    const std::string why = st.ok() ? "" : st.error().message;
    if (!st.ok() && !(is_shared_task(a.task_path) &&
                      (why.find(" has no task '") != std::string::npos ||
                       why.find(" holds no smtpblast tasks") != std::string::npos))) {
      return usage(st.error().describe());
    }
    for (RcptStatus s : {RcptStatus::kUnsent, RcptStatus::kDeferred}) {
      if (!st.ok()) break;
      auto rows = (*st)->list(s, SIZE_MAX);
      if (!rows.ok()) return usage(rows.error().describe());
      for (const auto& [r, o] : *rows) {
        if (values.empty()) values = r.values;
        if (sample_to.empty()) sample_to = r.email;
        doctor::count_recipient(in.recipient_domains, r.email);
      }
    }
    if (st.ok()) fields = (*st)->field_names();
    if (values.size() != fields.size()) values.assign(fields.size(), "");
  }

  // One message rendered exactly as send renders it (DKIM and List-Unsubscribe included).
  TemplateOptions topts;
  topts.default_from = a.from;
  topts.task_key = "doctor";
  apply_message_setup(*msg, topts.task_key, topts);
  auto tpl = CompiledTemplate::compile(in.template_raw, topts);
  if (!tpl.ok()) return usage("--template " + a.template_path + ": " + tpl.error().message);
  std::vector<std::string> bind_fields;
  std::vector<std::string> bind_values;
  if (!fields.empty()) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i] == "email") continue;
      bind_fields.push_back(fields[i]);
      bind_values.push_back(i < values.size() ? values[i] : "");
    }
  } else {
    // No list: every placeholder gets a sample value.
    for (const std::string& p : tpl->placeholders()) {
      if (p == "email") continue;
      bind_fields.push_back(p);
      bind_values.push_back("sample " + p);
    }
  }
  if (auto b = tpl->bind(bind_fields); !b.ok()) {
    return usage("--template " + a.template_path + ": " + b.error().message);
  }
  RenderedMessage rm;
  RenderInput ri;
  if (sample_to.empty()) sample_to = "recipient@example.com";
  ri.email = sample_to;
  ri.values = &bind_values;
  ri.recipient_id = 1;
  ri.now = static_cast<int64_t>(std::time(nullptr));
  if (auto r = tpl->render(ri, false, rm); r.ok()) {
    in.rendered = rm.flatten();
  } else {
    in.render_error = r.error().message;
  }
  in.from_address = tpl->from_address();
  if (in.from_address.empty()) in.from_address = a.from;
  in.envelope_from = !a.return_path.empty() ? a.return_path
                     : !a.from.empty()      ? a.from
                                            : in.from_address;

  // Sending hosts: --ip, else the relay's addresses (the relay is who receivers see).
  for (const std::string& s : a.ips) {
    auto ip = doctor::parse_ip(s);
    if (!ip.ok()) return usage("--ip: " + ip.error().message);
    in.ips.push_back(*ip);
  }
  in.helo = a.relay.helo;
  in.direct = a.direct.direct;
  in.mx_port = a.direct.mx_port;
  if (a.direct.direct) {
    auto relay = prepare_direct(a.relay);
    if (!relay.ok()) return usage(relay.error().message);
    in.helo = relay->helo;
  } else if (!a.relay.relay.empty()) {
    auto relay = prepare_relay(a.relay);
    if (!relay.ok()) return usage(relay.error().message);
    for (const std::string& w : relay->warnings) {
      std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
    }
    in.relay_addrs = relay->addrs;
    in.relay_name = relay->name;
    in.relay_implicit_tls = relay->tls == TlsMode::kImplicit;
    in.timeout_ms = static_cast<int>(relay->connect_timeout_ms);
    if (in.ips.empty()) {
      in.ips_from_relay = true;
      for (const sockaddr_storage& sa : relay->addrs) {
        if (sa.ss_family == AF_INET) {
          in.ips.push_back(dns::IpAddress::v4(reinterpret_cast<const uint8_t*>(
              &reinterpret_cast<const sockaddr_in*>(&sa)->sin_addr)));
        } else if (sa.ss_family == AF_INET6) {
          in.ips.push_back(dns::IpAddress::v6(reinterpret_cast<const uint8_t*>(
              &reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_addr)));
        }
      }
    }
  }
  return 0;
}

// Set by check() when the DNS server stopped answering.
std::string dns_dead;

int dns_dead_exit() {
  std::fprintf(stderr,
               "smtpblast: the DNS server did not answer (%s): the DNS checks could not be made; "
               "check --dns-server or /etc/resolv.conf\n",
               dns_dead.c_str());
  return 2;
}

Result<doctor::Report> check(const DoctorArgs& a, int& code) {
  Loaded l;
  code = load(a, l);
  if (code != 0) return make_error(ErrDomain::kConfig, "");
  auto dns = doctor::LoopDns::create(l.dns);
  if (!dns.ok()) {
    code = 2;
    std::fprintf(stderr, "smtpblast: %s\n", dns.error().message.c_str());
    return dns.error();
  }
  doctor::Report rep = doctor::run_checks(l.in, **dns);
  if (!(*dns)->dead().empty()) {
    // A bad environment, not a finding about the records: exit 2 (after the report).
    dns_dead = (*dns)->dead();
  }
  return rep;
}

}  // namespace

CLI::App* add_doctor_command(CLI::App& app, const CLI::App& send, DoctorArgs& a) {
  auto* cmd = app.add_subcommand(
      "doctor",
      "pre-flight check that a mailing will be accepted by Gmail, Yahoo and Microsoft: "
      "SPF, DKIM, DMARC, reverse DNS, MX, MTA-STS/TLS-RPT, STARTTLS and the message; "
      "takes send's flags");
  cmd->add_option("--template", a.template_path, "the message template send would use")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--from", a.from, "envelope sender, and From: when the template has none");
  cmd->add_option("--return-path", a.return_path,
                  "envelope sender when it differs from --from (its domain is checked for SPF)");
  cmd->add_option("--ip", a.ips,
                  "a public address mail leaves from (repeatable; default: the relay's); only "
                  "evaluated, never contacted");
  cmd->add_option("--recipients", a.recipients_path, "the list: share of big-provider recipients")
      ->check(CLI::ExistingFile);
  cmd->add_option("--task", a.task_path,
                  "the task: its recipients still to send, when no --recipients");
  cmd->add_option("--preset", a.preset, "provider preset, as for send");
  cmd->add_flag("--json", a.json, "the report as one JSON object");
  add_relay_options(cmd, a.relay, false);
  add_message_options(cmd, a.message);
  add_direct_options(cmd, a.direct,
                     "no relay: the sender is this host (give --ip and --helo); STARTTLS is "
                     "checked on a sample of the recipients' mail exchangers");
  // Every other flag of send is accepted, so `smtpblast doctor <send's flags>` works.
  for (const CLI::Option* o : send.get_options()) {
    const std::string& name = o->get_name();
    if (name.empty() || name.rfind("--", 0) != 0 || name == "--help") continue;
    if (cmd->get_option_no_throw(name) != nullptr) continue;
    if (o->get_items_expected_max() == 0) {
      cmd->add_flag(std::string(name))->description("send's flag; doctor ignores it")->group("");
    } else {
      a.ignored.emplace_back();
      cmd->add_option(name, a.ignored.back(), "send's flag; doctor ignores it")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->group("");
    }
  }
  return cmd;
}

void add_preflight_options(CLI::App* send, DoctorArgs& a) {
  send->add_flag(
      "--preflight", a.preflight,
      "run `smtpblast doctor` first and do not send when a check fails (unless --force)");
  send->add_option("--ip", a.ips,
                   "--preflight: a public address mail leaves from (repeatable; only evaluated)");
}

int run_doctor(const DoctorArgs& a0) {
  DoctorArgs a = a0;
  if (!a.preset.empty()) {
    auto p = find_preset(a.preset);
    if (!p.ok()) return usage("--preset: " + p.error().message);
    if (a.relay.relay.empty()) a.relay.relay = p->host + ":" + std::to_string(p->port);
    if (a.relay.tls.empty()) a.relay.tls = p->tls;
  }
  int code = 0;
  auto rep = check(a, code);
  if (!rep.ok()) return code;
  std::string out = a.json ? rep->json() + "\n" : rep->text();
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  if (a.json) mark_json_printed();  // the report is the JSON answer, also when it exits 1
  if (!dns_dead.empty()) return dns_dead_exit();
  return rep->exit_code();
}

int run_preflight(DoctorArgs a, const std::string& template_path, const std::string& from,
                  const std::string& recipients_path, const std::string& task_path,
                  const RelayOptions& relay, const MessageOptions& message,
                  const DirectOptions& direct, bool force) {
  if (!a.preflight)
    return usage("--ip goes with --preflight (send itself does not choose its address)");
  a.template_path = template_path;
  a.from = from;
  a.recipients_path = recipients_path;
  a.task_path = task_path;
  a.relay = relay;
  a.message = message;
  a.direct = direct;
  int code = 0;
  auto rep = check(a, code);
  if (!rep.ok()) return code;
  std::string out = rep->text();
  std::fwrite(out.data(), 1, out.size(), stderr);
  if (!dns_dead.empty()) return dns_dead_exit();
  if (!rep->failed()) return 0;
  if (force) {
    std::fprintf(stderr, "smtpblast: preflight: %zu check(s) fail; sending anyway (--force)\n",
                 rep->count(doctor::Verdict::kFail));
    return 0;
  }
  std::fprintf(stderr,
               "smtpblast: preflight: %zu check(s) fail; not sending (fix them, or give "
               "--force to send anyway)\n",
               rep->count(doctor::Verdict::kFail));
  return 1;
}

namespace {

// doctor in the verb table: added after send, whose flags it takes.
class DoctorVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    return add_doctor_command(app, *app.get_subcommand("send"), args_);
  }
  int run() override { return run_doctor(args_); }

 private:
  DoctorArgs args_;
};

}  // namespace

std::unique_ptr<Verb> make_doctor_verb() { return std::make_unique<DoctorVerb>(); }

}  // namespace sb
