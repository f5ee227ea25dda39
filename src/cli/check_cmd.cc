// The verbs that talk to one server without a task: check, test; and the two that help set
// a mailing up: dkim-record, unsub-verify.
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "cli/check.h"
#include "cli/dkim_options.h"
#include "cli/pipeline.h"
#include "cli/relay_options.h"
#include "cli/test_data.h"
#include "cli/unsub_verify.h"
#include "cli/verb.h"
#include "dns/mx_resolver.h"

namespace sb {

namespace {

// `check` (greeting, capabilities, TLS, AUTH, a MAIL/RCPT probe) and `test` (one message to
// one address): the same relay, --direct and --preset handling, one run().
class ProbeVerb : public Verb {
 public:
  explicit ProbeVerb(bool is_check) : is_check_(is_check) {
    if (is_check_) from_ = "postmaster@localhost";
  }

  CLI::App* add(CLI::App& app) override {
    if (is_check_) {
      CLI::App* check = cmd_ = app.add_subcommand(
          "check",
          "connect to the relay (or, --direct, a domain's first working MX host): greeting, "
          "capabilities, TLS, AUTH, optional MAIL/RCPT probe");
      add_relay_options(check, ro_, false);
      check->add_option("--preset", preset_,
                        "provider preset: its relay and TLS mode where not given (as on send)");
      add_direct_options(check, direct_,
                         "no relay: look up the MX hosts of --domain (or of --probe-rcpt's domain) "
                         "and check the first that answers (needs --helo)");
      check->add_option("--from", from_,
                        "sender for the probe (default postmaster@localhost; with --direct "
                        "postmaster@ the --helo name)");
      check->add_option(
          "--probe-rcpt", probe_rcpt_,
          "ask whether the relay accepts this recipient (MAIL, RCPT, RSET; no message)");
      check->add_option(
          "--domain", check_domain_,
          "--direct: the domain whose mail exchangers to check (default: the domain of "
          "--probe-rcpt)");
      return check;
    }
    CLI::App* test = cmd_ = app.add_subcommand(
        "test",
        "send one message to one address (through the relay, or --direct to its domain's "
        "MX) and show the reply");
    add_relay_options(test, ro_, false);
    test->add_option("--preset", preset_,
                     "provider preset: its relay and TLS mode where not given (as on send)");
    add_direct_options(test, direct_,
                       "no relay: deliver to the MX hosts of --to's domain (needs --helo)");
    test->add_option("--template", template_,
                     "the message, merged with --row/--field data ({{email}} is --to)")
        ->required()
        ->check(CLI::ExistingFile);
    test->add_option("--to", to_, "recipient (not needed with --print)");
    test->add_option("--task", data_args_.task, "take the merge data from this task's recipients");
    test->add_option("--recipients", data_args_.csv,
                     "take the merge data from this CSV (default: its first row)")
        ->check(CLI::ExistingFile);
    test->add_option("--row", data_args_.row, "the N-th recipient of --task or --recipients")
        ->check(CLI::Range(uint64_t{1}, UINT64_MAX));
    test->add_option("--field", data_args_.fields, "a merge value, name=value (repeatable)");
    test->add_flag("--print", print_,
                   "write the rendered message to stdout and send nothing (a proof)");
    test->add_flag("--transcript", transcript_,
                   "show the SMTP dialogue (secrets redacted) also when the message is sent");
    test->add_option("--from", from_, "envelope sender (default: the template's From:)");
    add_message_options(test, msg_);

    return test;
  }

  int run() override {
    const bool check = is_check_;
    const RelayOptions& o = ro_;
    const DirectOptions& d = direct_;
    const char* verb = check ? "check" : "test";
    std::optional<TestData> data;
    if (!check) {
      auto td = load_test_data(data_args_);
      if (!td.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", td.error().message.c_str());
        return kExitUsage;
      }
      data = std::move(td).value();
      if (!print_ && to_.empty()) {
        std::fprintf(stderr,
                     "smtpblast: test: --to ADDR is required (or --print, to see the "
                     "message without sending it)\n");
        return kExitUsage;
      }
    }
    const std::string& from_arg = from_;
    if (std::string why = from_problem(from_arg); !from_arg.empty() && !why.empty()) {
      std::fprintf(stderr, "smtpblast: --from: %s\n", why.c_str());
      return kExitUsage;
    }
    const std::string& preset_arg = preset_;
    if (!preset_arg.empty()) {
      if (d.direct) {
        std::fprintf(stderr,
                     "smtpblast: %s: --direct delivers to mail exchangers: it does not "
                     "go with --preset\n",
                     verb);
        return kExitUsage;
      }
      if (auto p = apply_relay_preset(preset_arg, ro_); !p.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", p.error().message.c_str());
        return kExitUsage;
      }
    }
    auto lookup = prepare_direct_lookup(
        d, *cmd_, check ? std::vector<std::string>{"--domain"} : std::vector<std::string>{});
    if (!lookup.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", lookup.error().message.c_str());
      return 2;
    }
    if (!check && print_) {
      auto msg = prepare_message_options(msg_);
      if (!msg.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
        return kExitUsage;
      }
      return print_test_message(template_, from_, to_, &msg.value(), &*data);
    }
    if (!d.direct && o.relay.empty()) {
      std::fprintf(stderr,
                   "smtpblast: %s: --relay HOST:PORT is required (or --direct, to use the "
                   "recipient domain's mail exchangers)\n",
                   verb);
      return 2;
    }
    auto relay = d.direct ? prepare_direct(o) : prepare_relay(o);
    if (!relay.ok()) {
      const std::string& m = relay.error().message;
      if (check && m.find("cannot resolve") != std::string::npos) {
        std::printf("check failed at dns: %s\n", m.c_str());
        return 1;
      }
      std::fprintf(stderr, "smtpblast: %s\n", m.c_str());
      return 2;
    }
    // --direct: the domain whose MX hosts are used, checked before anything is looked up.
    std::string domain;
    if (d.direct) {
      const std::string& addr = check ? probe_rcpt_ : to_;
      const char* flag = check ? "--probe-rcpt" : "--to";
      if (!addr.empty() && address_domain(addr).empty()) {
        std::fprintf(stderr,
                     "smtpblast: %s: '%s' has no @domain: --direct looks up the MX hosts "
                     "of its domain\n",
                     flag, addr.c_str());
        return 2;
      }
      domain = !check_domain_.empty() && check ? check_domain_ : address_domain(addr);
      if (domain.empty()) {
        std::fprintf(stderr,
                     "smtpblast: check --direct needs --domain D or --probe-rcpt ADDR: "
                     "whose mail exchangers to check\n");
        return 2;
      }
      auto norm = dns::normalise_domain(domain);
      if (!norm.ok()) {
        std::fprintf(stderr, "smtpblast: %s: %s\n",
                     check && !check_domain_.empty() ? "--domain" : flag,
                     norm.error().message.c_str());
        return 2;
      }
      if (check && !check_domain_.empty() && !probe_rcpt_.empty()) {
        auto probe_norm = dns::normalise_domain(address_domain(probe_rcpt_));
        if (!probe_norm.ok() || *probe_norm != *norm) {
          std::fprintf(stderr,
                       "smtpblast: --domain %s and --probe-rcpt %s name different domains; "
                       "give one, or the same\n",
                       check_domain_.c_str(), probe_rcpt_.c_str());
          return 2;
        }
      }
    }
    auto timeouts = command_timeouts(ro_);
    if (!timeouts.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", timeouts.error().message.c_str());
      return 2;
    }
    const DirectLookup* direct = d.direct ? &lookup.value() : nullptr;
    if (check) {
      // A receiving MX may refuse a sender whose domain does not exist (like localhost).
      if (d.direct && cmd_->count("--from") == 0) from_ = "postmaster@" + relay->helo;
      return run_check(*relay, from_, probe_rcpt_, direct, domain, *timeouts);
    }
    auto msg = prepare_message_options(msg_);
    if (!msg.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
      return 2;
    }
    return run_test_message(*relay, template_, from_, to_, &msg.value(), direct, &*data,
                            transcript_, *timeouts);
  }

 private:
  const bool is_check_;
  CLI::App* cmd_ = nullptr;
  RelayOptions ro_;
  DirectOptions direct_;
  std::string from_;
  std::string preset_;
  std::string probe_rcpt_;    // check
  std::string check_domain_;  // check --domain
  std::string to_;            // test
  std::string template_;      // test
  TestDataArgs data_args_;    // test --task/--recipients/--row/--field
  bool print_ = false;        // test
  bool transcript_ = false;   // test
  MessageOptions msg_;        // test
};

class DkimRecordVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* dkim_record = app.add_subcommand(
        "dkim-record",
        "print the DNS TXT record to publish for each --dkim-key (zone-file syntax)");
    add_dkim_key_options(dkim_record, msg_);
    return dkim_record;
  }

  int run() override { return run_dkim_record(msg_); }

 private:
  MessageOptions msg_;
};

class UnsubVerifyVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override { return add_unsub_verify_command(app, args_); }
  int run() override { return run_unsub_verify(args_); }

 private:
  UnsubVerifyArgs args_;
};

}  // namespace

std::unique_ptr<Verb> make_check_verb() { return std::make_unique<ProbeVerb>(true); }
std::unique_ptr<Verb> make_test_verb() { return std::make_unique<ProbeVerb>(false); }
std::unique_ptr<Verb> make_dkim_record_verb() { return std::make_unique<DkimRecordVerb>(); }
std::unique_ptr<Verb> make_unsub_verify_verb() { return std::make_unique<UnsubVerifyVerb>(); }

}  // namespace sb
