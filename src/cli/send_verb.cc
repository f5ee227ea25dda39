// `send` (a mailing through a relay, --direct or --pickup) and `presets`: flags -> RunConfig.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include "base/text.h"
#include "cli/dkim_options.h"
#include "cli/doctor_cmd.h"
#include "cli/metrics_options.h"
#include "cli/pipeline.h"
#include "cli/progress_line.h"
#include "cli/relay_options.h"
#include "cli/returns_cmd.h"
#include "cli/send_cmd.h"
#include "cli/verb.h"
#include "returns/pop_before_smtp.h"
#include "returns/verp.h"
#include "store/suppression.h"
#include "throttle/presets.h"

namespace sb {

namespace {

class SendVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    mc_.workers = std::max(1u, std::thread::hardware_concurrency());
    CLI::App* send = cmd_ = app.add_subcommand(
        "send",
        "send (or resume) a mailing through a relay, or directly to each domain's MX (--direct)");
    send->add_option("--task", mc_.task_path,
                     "task file (SQLite), or postgresql://USER@HOST/DB?task=NAME to share it "
                     "between several senders; created on first use")
        ->required();
    send->add_option("--template", mc_.template_path,
                     "RFC 5322 message with {{field}} placeholders")
        ->required()
        ->check(CLI::ExistingFile);
    send->add_option("--recipients", mc_.recipients_path,
                     "CSV with a header row and an 'email' column; imported on first use")
        ->check(CLI::ExistingFile);
    add_csv_options(send, encoding_, delim_);
    add_relay_options(send, ro_, false);
    send->add_option("--preset", preset_,
                     "provider preset (office365, gmail, ses-REGION): fills in the relay and its "
                     "limits where not given; `smtpblast presets` lists them");
    send->add_option("--rate", mc_.throttle.rate,
                     "at most N messages started per period, e.g. 30/min, 10/s, 2000/day");
    send->add_option("--burst", mc_.throttle.burst,
                     "bucket depth for --rate (default: smooth pacing)");
    send->add_option(
        "--daily-limit", mc_.throttle.daily_limit,
        "at most N recipients in any rolling 24 hours, counted in the task across runs");
    send->add_option("--tenant-licences", tenant_licences_,
                     "Office 365: the tenant's licences N; the daily limit is at most the "
                     "tenant's external recipient limit, 500 x N^0.7 + 9,500")
        ->check(CLI::Range(1u, 10'000'000u));
    send->add_flag(
        "--wait", mc_.wait_daily,
        "when the daily limit is reached, wait until sending may resume instead of stopping");
    send->add_option("--block-size", mc_.throttle.block_size,
                     "send N messages, then --block-pause");
    send->add_option("--block-pause", mc_.throttle.block_pause, "pause between blocks, e.g. 2m");
    send->add_option("--connect-rate", mc_.throttle.connect_rate,
                     "at most N new connections per period, e.g. 5/s");
    send->add_option("--from", mc_.from, "envelope sender, and From: when the template has none");
    send->add_option("--pop-before-smtp", pop_url_,
                     "log in to this POP3 mailbox (pop3s://user@host, pop3:// with STARTTLS) "
                     "before using the relay, and again every --pop-refresh");
    send->add_option("--pop-password-file", pop_password_file_,
                     "the POP3 password (else $SMTPBLAST_POP_PASSWORD)");
    send->add_option("--pop-tls", pop_tls_, "verify (default) or none: pop3:// in the clear");
    send->add_option("--pop-refresh", pop_refresh_, "log in again this often (default 5m)");
    send->add_option(
        "--return-path", mc_.return_path,
        "VERP envelope sender, e.g. 'bounces+{{id}}@bounce.example.com': {{id}} becomes "
        "the recipient id and an HMAC, so `returns` can trust the bounces");
    send->add_option("--connections", mc_.connections, "concurrent SMTP connections")
        ->check(CLI::Range(1u, 10000u));
    send->add_option("--per-connection", mc_.per_connection,
                     "messages per connection, then QUIT and reconnect")
        ->check(CLI::Range(1u, 100000000u));
    send->add_option("--workers", mc_.workers, "worker threads, one libuv loop each")
        ->check(CLI::Range(1u, 256u));
    send->add_option("--max-attempts", mc_.max_attempts,
                     "attempts per recipient in this run before it stays deferred")
        ->check(CLI::Range(1u, 100u));
    send->add_option("--retry-delay", retry_delay_, "first retry delay (doubles each attempt)");
    send->add_option("--pipeline-window", mc_.window,
                     "transactions in flight per connection (default 512)")
        ->check(CLI::Range(1u, 1000u));
    send->add_option("--pipeline-bytes", pipeline_bytes_,
                     "message octets in flight per connection at most (default 1m; one larger "
                     "message still goes alone)");
    send->add_flag("--no-pipelining", no_pipelining_, "do not use PIPELINING even when offered");
    send->add_flag("--no-chunking", no_chunking_, "use DATA even when CHUNKING is offered");
    send->add_flag("--force", mc_.force,
                   "resume with a template, sender, relay or DKIM domain different from the "
                   "first run's");
    send->add_flag("--json", mc_.json,
                   "print the summary (or the error) as one JSON object on stdout");
    send->add_option("--progress", progress_,
                     "auto (a bar on a terminal, else a line every 10 s), bar, plain, jsonl (one "
                     "JSON object a second on stderr, for pipelines) or none")
        ->check(CLI::Validator(
            [](const std::string& v) {
              auto r = parse_progress_style(v, false);
              return r.ok() ? std::string() : r.error().message;
            },
            "auto|bar|plain|jsonl|none"));
    send->add_option("--quota-store", mc_.quota_store,
                     "file counting each sending account's daily limit across tasks (default "
                     "$XDG_STATE_HOME/smtpblast/quota.db, else ~/.local/state/smtpblast/quota.db)");
    send->add_option("--stop-timeout", stop_timeout_,
                     "after SIGINT/SIGTERM, how long messages under way may take to finish before "
                     "their connections are dropped (default 30s; a second signal drops them at "
                     "once)");
    send->add_option("--commit-interval", commit_interval_,
                     "record outcomes in the task at least this often (default 100ms); after a "
                     "kill -9 only messages accepted within this window may be sent twice");
    send->add_option("--limit", mc_.limit,
                     "this run starts at most N messages, then stops cleanly");
    send->add_flag("--reset-errors-after", mc_.reset_errors_after,
                   "at the end of the run, make failed and deferred recipients unsent again");
    send->add_option("--suppress", suppress_files_,
                     "never mail the addresses and @domains listed in FILE (repeatable)");
    send->add_option("--accounting", mc_.accounting_path,
                     "append one line per delivery attempt to FILE (.csv or .jsonl)");
    send->add_option("--backup-dir", mc_.backup_dir,
                     "also write every message sent as an .eml here");
    send->add_option(
        "--backup-name", mc_.backup_name,
        "file name pattern for --backup-dir/--pickup, e.g. "
        "\"{{task_title}}-{{date}}-{{recipient}}.eml\" (default {{id}}-{{recipient}}.eml)");
    send->add_option("--title", mc_.title, "the task's title, {{task_title}} in --backup-name");
    send->add_option("--pickup", mc_.pickup_dir,
                     "instead of a relay: write each message as an .eml file into this pickup "
                     "directory (IIS/Exchange style)");
    add_message_options(send, msg_);

    // direct delivery
    add_direct_options(
        send, direct_,
        "no relay: deliver to each recipient domain's mail exchangers (needs --helo)");
    send->add_option("--max-connections-per-domain", mc_.max_conn_per_domain,
                     "--direct: connections at once to one destination (default 5)")
        ->check(CLI::Range(1u, 1000u));
    send->add_option("--max-rcpt-per-txn", mc_.max_rcpt_per_txn,
                     "--direct: recipients of one domain per transaction when every recipient "
                     "gets the same message (default 50)")
        ->check(CLI::Range(1u, 1000u));
    send->add_option("--retry-after", retry_after_,
                     "first retry delay of a deferred recipient or unreachable destination, "
                     "doubling (with jitter) up to --retry-max (default 1m with --direct, else "
                     "--retry-delay)");
    send->add_option("--retry-max", retry_max_, "the longest retry delay (default 1h)");
    add_preflight_options(send, preflight_);
    metrics_.add_options(send);

    return send;
  }

  int run() override {
    auto style = parse_progress_style(progress_, stderr_is_terminal());
    if (!style.ok()) {
      std::fprintf(stderr, "smtpblast: --progress: %s\n", style.error().message.c_str());
      return kExitUsage;
    }
    if (int rc = parse_csv_options(encoding_, delim_, mc_.csv); rc != 0) return rc;
    if (std::string why = from_problem(mc_.from); !mc_.from.empty() && !why.empty()) {
      std::fprintf(stderr, "smtpblast: --from: %s\n", why.c_str());
      return kExitUsage;
    }
    if (!preset_.empty()) {
      auto p = find_preset(preset_);
      if (!p.ok()) {
        std::fprintf(stderr, "smtpblast: --preset: %s\n", p.error().message.c_str());
        return 2;
      }
      if (ro_.relay.empty()) ro_.relay = p->host + ":" + std::to_string(p->port);
      if (ro_.tls.empty()) ro_.tls = p->tls;
      apply_preset(*p, mc_.throttle);
      if (p->max_rcpts_per_msg != 0) {
        mc_.max_rcpt_per_txn = std::min(mc_.max_rcpt_per_txn, p->max_rcpts_per_msg);
      }
    }
    if (tenant_licences_ != 0) {
      // Tenant-wide, so a cap on this account's own count (several mailboxes share it).
      const uint64_t tenant = office365_tenant_limit(tenant_licences_);
      uint64_t& daily = mc_.throttle.daily_limit;
      daily = daily == 0 ? tenant : std::min(daily, tenant);
    }
    if (!mc_.pickup_dir.empty() && (!ro_.relay.empty() || !preset_.empty())) {
      std::fprintf(stderr,
                   "smtpblast: --pickup writes files instead of using a relay: give one "
                   "of --pickup or --relay/--preset\n");
      return 2;
    }
    if (!mc_.pickup_dir.empty() && !mc_.backup_dir.empty()) {
      std::fprintf(stderr,
                   "smtpblast: --backup-dir goes with a relay; --pickup files are the "
                   "messages\n");
      return 2;
    }
    mc_.direct = direct_.direct;
    if (mc_.direct && (!mc_.pickup_dir.empty() || !preset_.empty())) {
      std::fprintf(stderr,
                   "smtpblast: --direct delivers to mail exchangers: it goes with neither "
                   "--pickup nor --preset\n");
      return 2;
    }
    auto lookup = prepare_direct_lookup(direct_, *cmd_,
                                        {"--max-connections-per-domain", "--max-rcpt-per-txn"});
    if (!lookup.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", lookup.error().message.c_str());
      return 2;
    }
    mc_.lookup = *lookup;
    if (mc_.direct && cmd_->count("--connections") == 0) mc_.connections = 100;
    if (ro_.relay.empty() && mc_.pickup_dir.empty() && !mc_.direct) {
      std::fprintf(stderr,
                   "smtpblast: --relay HOST:PORT is required (or a --preset, or --pickup DIR)\n");
      return 2;
    }
    {
      uint32_t ms = 0;
      if (!parse_duration_ms(commit_interval_, ms) || ms == 0 || ms > 60000) {
        std::fprintf(stderr,
                     "smtpblast: --commit-interval: '%s' is not a duration between 1ms "
                     "and 60s (e.g. 100ms)\n",
                     commit_interval_.c_str());
        return 2;
      }
      mc_.commit_interval_ms = ms;
    }
    if (!parse_duration_ms(stop_timeout_, mc_.stop_timeout_ms) || mc_.stop_timeout_ms == 0) {
      std::fprintf(stderr, "smtpblast: --stop-timeout: '%s' is not a duration (e.g. 30s)\n",
                   stop_timeout_.c_str());
      return 2;
    }
    // Keys and the unsubscribe secret are loaded once, before the task is opened.
    auto msg = prepare_message_options(msg_);
    if (!msg.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", msg.error().message.c_str());
      return 2;
    }
    apply_message_setup(msg.value(), mc_);
    if (preflight_.preflight || !preflight_.ips.empty()) {
      int rc = run_preflight(preflight_, mc_.template_path, mc_.from, mc_.recipients_path,
                             mc_.task_path, ro_, msg_, direct_, mc_.force);
      if (rc != 0) return rc;
    }
    if (!mc_.return_path.empty()) {
      if (auto r = check_return_path(mc_.return_path); !r.ok()) {
        std::fprintf(stderr, "smtpblast: %s\n", r.error().message.c_str());
        return 2;
      }
    }
    auto suppress = std::make_shared<SuppressionList>();
    for (const std::string& f : suppress_files_) {
      if (auto r = suppress->load_file(f); !r.ok()) {
        std::fprintf(stderr, "smtpblast: --suppress: %s\n", r.error().message.c_str());
        return 2;
      }
    }
    mc_.suppress = std::move(suppress);
    if (!mc_.pickup_dir.empty()) {
      if (cmd_->count("--metrics") > 0) {
        std::fprintf(stderr, "smtpblast: --metrics goes with a relay or --direct, not --pickup\n");
        return 2;
      }
      mc_.progress = ProgressStyle::kNone;
      return run_send_command(mc_);
    }
    if (mc_.wait_daily && mc_.throttle.daily_limit == 0) {
      std::fprintf(stderr, "smtpblast: --wait goes with --daily-limit\n");
      return 2;
    }
    if (auto tc = make_throttle_config(mc_.throttle); !tc.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", tc.error().message.c_str());
      return 2;
    }
    auto relay = mc_.direct ? prepare_direct(ro_) : prepare_relay(ro_);
    if (!relay.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", relay.error().message.c_str());
      return 2;
    }
    mc_.relay = std::make_shared<const RelaySetup>(std::move(relay).value());
    auto timeouts = command_timeouts(ro_);
    if (!timeouts.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", timeouts.error().message.c_str());
      return 2;
    }
    mc_.timeouts = *timeouts;
    if (!pipeline_bytes_.empty() &&
        !parse_octets(pipeline_bytes_, kMaxPipelineBytes, mc_.pipeline_bytes)) {
      std::fprintf(stderr,
                   "smtpblast: --pipeline-bytes: '%s' is not a size between 1 and 1g "
                   "(e.g. 1m, 256k)\n",
                   pipeline_bytes_.c_str());
      return 2;
    }
    if (!parse_duration_ms(retry_delay_, mc_.retry_delay_ms)) {
      std::fprintf(stderr, "smtpblast: --retry-delay: '%s' is not a duration (e.g. 30s, 2m)\n",
                   retry_delay_.c_str());
      return 2;
    }
    if (retry_after_.empty() && mc_.direct && cmd_->count("--retry-delay") == 0)
      retry_after_ = "1m";
    if (!retry_after_.empty() &&
        (!parse_duration_ms(retry_after_, mc_.retry_delay_ms) || mc_.retry_delay_ms == 0)) {
      std::fprintf(stderr, "smtpblast: --retry-after: '%s' is not a duration (e.g. 1m, 30s)\n",
                   retry_after_.c_str());
      return 2;
    }
    if (!parse_duration_ms(retry_max_, mc_.retry_max_ms) || mc_.retry_max_ms < mc_.retry_delay_ms) {
      std::fprintf(stderr,
                   "smtpblast: --retry-max: '%s' is not a duration at least as long as "
                   "the first retry delay\n",
                   retry_max_.c_str());
      return 2;
    }
    mc_.pipelining = !no_pipelining_;
    mc_.chunking = !no_chunking_;
    mc_.progress = *style;
    std::unique_ptr<PopRefresher> pop;
    if (!pop_url_.empty()) {
      auto pc = pop_before_smtp_config(pop_url_, pop_password_file_, pop_tls_, pop_refresh_);
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
    // Bound last of all set-up, right before the run: an address in use is exit 2 with
    // nothing sent.
    if (int rc = metrics_.start(); rc != 0) return rc;
    mc_.metrics = metrics_.cells();
    int rc = run_send_command(mc_);
    metrics_.finish(rc);
    return rc;
  }

 private:
  CLI::App* cmd_ = nullptr;
  RunConfig mc_;
  std::string retry_delay_ = "5s";
  std::string pipeline_bytes_;  // --pipeline-bytes; empty: kDefaultPipelineBytes
  bool no_pipelining_ = false;
  bool no_chunking_ = false;
  std::string encoding_;
  std::string delim_ = ",";
  RelayOptions ro_;
  std::string preset_;
  std::string progress_ = "auto";
  uint32_t tenant_licences_ = 0;
  std::string pop_url_, pop_password_file_, pop_tls_ = "verify", pop_refresh_ = "5m";
  std::string stop_timeout_ = "30s";
  std::string commit_interval_ = "100ms";
  std::vector<std::string> suppress_files_;
  MessageOptions msg_;
  DirectOptions direct_;
  std::string retry_after_;
  std::string retry_max_ = "1h";
  DoctorArgs preflight_;  // send --preflight: the doctor's checks first
  MetricsEndpoint metrics_;
};

class PresetsVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    return app.add_subcommand("presets", "list the provider presets and their limits");
  }

  int run() override {
    for (const Preset& p : preset_table()) {
      std::string limits = "daily=" + (p.daily_limit ? std::to_string(p.daily_limit) : "-");
      if (p.daily_messages != 0) limits += " (messages " + std::to_string(p.daily_messages) + ")";
      if (p.max_rcpts_per_msg != 0) limits += "  rcpts/msg=" + std::to_string(p.max_rcpts_per_msg);
      std::printf("%-12s %s:%u  tls=%s  rate=%s  %s\n    %s\n", p.name.c_str(), p.host.c_str(),
                  p.port, p.tls.c_str(), p.rate.empty() ? "-" : p.rate.c_str(), limits.c_str(),
                  p.notes.c_str());
    }
    return 0;
  }
};

}  // namespace

std::unique_ptr<Verb> make_send_verb() { return std::make_unique<SendVerb>(); }
std::unique_ptr<Verb> make_presets_verb() { return std::make_unique<PresetsVerb>(); }

}  // namespace sb
