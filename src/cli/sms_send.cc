// `sms send`: the provider from the config file, the flags every mailing has, then the run.
#include "cli/sms_send.h"

#include <cstdio>
#include <memory>
#include <tuple>

#include "cli/pipeline.h"
#include "cli/progress_line.h"
#include "cli/relay_options.h"
#include "cli/send_cmd.h"
#include "cli/sms_provider.h"
#include "cli/verb.h"
#include "engine/sms_run_config.h"
#include "sms/phone.h"
#include "store/suppression.h"
#include "throttle/throttle.h"

namespace sb {

CLI::App* SmsSendCmd::add(CLI::App* sms) {
  CLI::App* c = cmd_ =
      sms->add_subcommand("send",
                          "send (or resume) an SMS mailing: a text template to a list "
                          "of phone numbers, through the provider");
  c->add_option("--task", mc_.task_path,
                "task file (SQLite) or postgresql://USER@HOST/DB?task=NAME; created on first use")
      ->required();
  c->add_option("--template", mc_.template_path,
                "the SMS text, plain UTF-8 with {{field}} placeholders")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--recipients", mc_.recipients_path,
                "CSV with a header row and a phone column; imported on first use")
      ->check(CLI::ExistingFile);
  c->add_option("--phone-column", phone_column_, "the column of the numbers")
      ->capture_default_str();
  c->add_option("--country", country_,
                "default country of numbers without one (GB, DE ...; default: the provider's "
                "`country`)");
  add_csv_options(c, encoding_, delim_);
  c->add_option("--provider", provider_, "the provider's name ([provider.NAME])")->required();
  c->add_option("--provider-config", provider_config_,
                "a TOML file with [provider.NAME] tables (instead of the config files)");
  c->add_option("--sender", sender_,
                "the sender shown on the phone (default: the provider's `from`)");
  c->add_option("--rate", mc_.throttle.rate,
                "at most N messages per period, e.g. 10/s, 600/min (default: the provider's "
                "`rate` or `tps`, else its preset's published limit)");
  c->add_option("--burst", mc_.throttle.burst, "bucket depth for --rate");
  c->add_option("--daily-limit", mc_.throttle.daily_limit,
                "at most N messages in any rolling 24 hours, counted in the task across runs "
                "and for the provider account across tasks (--quota-store)");
  c->add_flag("--wait", mc_.wait_daily,
              "when the daily limit is reached, wait instead of stopping");
  c->add_option("--quota-store", mc_.quota_store,
                "file counting each provider account's daily limit across tasks (default "
                "$XDG_STATE_HOME/smtpblast/quota.db, else ~/.local/state/smtpblast/quota.db)");
  c->add_option("--suppress", suppress_files_,
                "never send to the numbers listed in FILE, one a line in any form --country "
                "reads (repeatable)");
  c->add_option("--block-size", mc_.throttle.block_size, "send N messages, then --block-pause");
  c->add_option("--block-pause", mc_.throttle.block_pause, "pause between blocks, e.g. 2m");
  c->add_option("--limit", mc_.limit, "this run starts at most N messages, then stops cleanly");
  c->add_option("--connections", mc_.connections,
                "SMPP: binds at once; HTTP: requests under way are this times the window")
      ->check(CLI::Range(1u, 64u));
  c->add_option("--window", window_,
                "SMPP: submit_sm outstanding per bind (default: the provider's `window`)")
      ->check(CLI::Range(1u, 1000u));
  c->add_option("--max-attempts", mc_.max_attempts,
                "attempts per recipient in this run before it stays deferred")
      ->check(CLI::Range(1u, 100u));
  c->add_option("--retry-delay", retry_delay_, "first retry delay (doubles each attempt)");
  c->add_option("--retry-max", retry_max_, "the longest retry delay (default 1h)");
  c->add_flag("--force", mc_.force,
              "resume with a text, sender or provider different from the first run's");
  c->add_flag("--json", mc_.json, "print the summary as one JSON object on stdout");
  c->add_option("--progress", progress_, "auto, bar, plain, jsonl or none");
  c->add_option("--commit-interval", commit_interval_,
                "record outcomes in the task at least this often (default 100ms)");
  c->add_option("--stop-timeout", stop_timeout_,
                "after SIGINT/SIGTERM, how long messages under way may take (default 30s)");
  c->add_flag("--reset-errors-after", mc_.reset_errors_after,
              "at the end of the run, make failed and deferred recipients unsent again");
  c->add_option("--accounting", mc_.accounting_path,
                "append one line per attempt to FILE (.csv or .jsonl)");
  return c;
}

int SmsSendCmd::run() {
  auto style = parse_progress_style(progress_, stderr_is_terminal());
  if (!style.ok()) {
    std::fprintf(stderr, "smtpblast: --progress: %s\n", style.error().message.c_str());
    return kExitUsage;
  }
  mc_.progress = *style;
  if (int rc = parse_csv_options(encoding_, delim_, mc_.csv); rc != 0) return rc;
  auto p = find_provider(provider_, provider_config_);
  if (!p.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", p.error().message.c_str());
    return kExitUsage;
  }
  auto sc = std::make_shared<SmsRunConfig>();
  sc->provider = p->name;
  sc->http = p->type == "http";
  sc->sender = sender_.empty() ? p->sender : sender_;
  sc->country = country_.empty() ? p->country : country_;
  sc->phone_column = phone_column_;
  if (!sc->country.empty() && !known_country(sc->country)) {
    std::fprintf(stderr, "smtpblast: sms send: --country %s: not a country code (GB, DE ...)\n",
                 sc->country.c_str());
    return kExitUsage;
  }
  sc->account = sms_account_key(*p);
  if (sc->http) {
    sc->http_cfg = p->http;
    if (!p->http.secret.empty()) {
      auto secret = read_secret(p->http.secret, "provider." + p->name + " secret");
      if (!secret.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", secret.error().message.c_str());
        return kExitUsage;
      }
      sc->secret = *secret;
    }
    sc->http_in_flight = mc_.connections * (window_ != 0 ? window_ : 10);
  } else {
    // Password read, host looked up, TLS context built (tls, tls_verify, ca_file, tls_host).
    auto cc = smpp_conn_config(*p, sc->sender);
    if (!cc.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", cc.error().message.c_str());
      return kExitUsage;
    }
    sc->smpp = std::move(cc).value();
    if (window_ != 0) sc->smpp.session.window = window_;
    sc->binds = mc_.connections;
  }
  // The provider's own limit is the rate unless the user gave one; the user is told which.
  std::string rate_origin = "--rate";
  if (mc_.throttle.rate.empty()) {
    mc_.throttle.rate = p->rate;
    rate_origin = p->rate_origin;
  }
  // A bad line stops the run before anything is sent, naming the file and line, as `send
  // --suppress` does with a line that is not an address.
  auto suppress = std::make_shared<SuppressionList>();
  for (const std::string& f : suppress_files_) {
    auto numbers = read_phone_list(f, sc->country);
    Status st =
        numbers.ok() ? suppress->load_keys(std::move(numbers).value(), f) : Status(numbers.error());
    if (!st.ok()) {
      std::fprintf(stderr, "smtpblast: --suppress: %s\n", st.error().message.c_str());
      return kExitUsage;
    }
  }
  mc_.suppress = std::move(suppress);
  for (auto [flag, text, out] :
       {std::tuple{"--retry-delay", &retry_delay_, &mc_.retry_delay_ms},
        std::tuple{"--retry-max", &retry_max_, &mc_.retry_max_ms},
        std::tuple{"--commit-interval", &commit_interval_, &mc_.commit_interval_ms},
        std::tuple{"--stop-timeout", &stop_timeout_, &mc_.stop_timeout_ms}}) {
    if (!parse_duration_ms(*text, *out) || *out == 0) {
      std::fprintf(stderr, "smtpblast: %s: '%s' is not a duration (e.g. 30s, 100ms)\n", flag,
                   text->c_str());
      return kExitUsage;
    }
  }
  if (mc_.commit_interval_ms > 60000) {
    std::fprintf(stderr, "smtpblast: --commit-interval: at most 60s\n");
    return kExitUsage;
  }
  if (mc_.wait_daily && mc_.throttle.daily_limit == 0) {
    std::fprintf(stderr, "smtpblast: --wait goes with --daily-limit\n");
    return kExitUsage;
  }
  auto tc = make_throttle_config(mc_.throttle);
  if (!tc.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", tc.error().message.c_str());
    return kExitUsage;
  }
  if (tc->rate) {
    std::fprintf(stderr, "sms send: provider %s: rate %s (%s)\n", p->name.c_str(),
                 tc->rate->describe().c_str(), rate_origin.c_str());
  } else {
    std::fprintf(stderr,
                 "sms send: provider %s: no rate limit (give --rate, or `rate` in "
                 "[provider.%s])\n",
                 p->name.c_str(), p->name.c_str());
  }
  mc_.sms = std::move(sc);
  return run_send_command(mc_);
}

}  // namespace sb
