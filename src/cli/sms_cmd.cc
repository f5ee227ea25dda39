// `smtpblast sms check|test|import|receipts`: an SMS provider from the config file, checked or
// sent one message (the "send test" of the mailing tools' SMS tab); receipts after a run.
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "cli/pipeline.h"
#include "cli/send_cmd.h"
#include "cli/sms_inbound.h"
#include "cli/sms_provider.h"
#include "cli/sms_send.h"
#include "cli/verb.h"
#include "loop/http_client.h"
#include "loop/timer.h"
#include "pg/task_open.h"
#include "sms/phone.h"
#include "sms/smpp_conn.h"
#include "sms/smpp_session.h"
#include "smsgw/http_provider.h"
#include "store/task_lock.h"
#include "store/task_store.h"
#include "throttle/rate_spec.h"

namespace sb {

namespace {

// The store's key normaliser for SMS lists: libphonenumber with the default country in ctx.
Result<std::string> phone_key(std::string_view v, const void* ctx) {
  return normalize_e164(v, *static_cast<const std::string*>(ctx));
}

struct UvLoop {
  uv_loop_t loop;
  UvLoop() { uv_loop_init(&loop); }
  ~UvLoop() {
    uv_run(&loop, UV_RUN_DEFAULT);  // close callbacks of what was destroyed
    uv_loop_close(&loop);
  }
};

// Sends one SMS through an HTTP provider; prints the outcome; returns the exit code.
int http_send_one(const ProviderConfig& p, const std::string& to, const std::string& from,
                  const std::string& text) {
  auto secret = read_secret(p.http.secret, "provider." + p.name + " secret");
  if (!secret.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", secret.error().message.c_str());
    return kExitUsage;
  }
  UvLoop uv;
  HttpSmsOutcome out;
  {
    auto client = HttpClient::create(&uv.loop);
    if (!client.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", client.error().describe().c_str());
      return kExitUsage;
    }
    HttpRequest req = build_http_sms(p.http, *secret, SmsFields{to, from, text});
    (*client)->start(req, [&](HttpResponse& r) { out = evaluate_http_sms(p.http, r); });
    uv_run(&uv.loop, UV_RUN_DEFAULT);
  }
  switch (out.verdict) {
    case HttpSmsVerdict::kSent:
      std::printf("sms test: sent to %s via %s (%s)\n", to.c_str(), p.name.c_str(),
                  out.reason.c_str());
      return kExitDone;
    case HttpSmsVerdict::kDeferred:
      std::fprintf(stderr, "smtpblast: sms test: not sent, try again later: %s\n",
                   out.reason.c_str());
      return kExitSomeFailed;
    case HttpSmsVerdict::kFailed:
      std::fprintf(stderr, "smtpblast: sms test: %s: %s\n",
                   out.fatal ? "the provider refused the credentials" : "refused",
                   out.reason.c_str());
      return out.fatal ? kExitRelay : kExitSomeFailed;
  }
  return kExitSomeFailed;
}

// What the connection left behind when it closed.
class ConnEnd : public SmppConnOwner {
 public:
  void smpp_conn_closed(SmppConn& c) override {
    reached = c.session().bind_reached();
    end = c.session().end();
    smsc_id = c.session().smsc_system_id();
    why = c.why();
    closed = true;
    if (on_closed) on_closed();
  }
  std::function<void()> on_closed;
  bool closed = false;
  bool reached = false;
  SmppEnd end;
  std::string smsc_id;
  std::string why;
};

// Hands out at most one message, then says done: `sms test` (one) and `sms check` (none).
class OneShotHost : public SmppHost {
 public:
  explicit OneShotHost(SmsMessage* m) : msg_(m) {}
  Next next_message(SmsMessage*& out) override {
    if (msg_ == nullptr) return Next::kDone;
    out = msg_;
    msg_ = nullptr;
    return Next::kMessage;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    (void)m;
    done_ = true;
    verdict_ = o.verdict;
    text_ = std::string(o.text);
    if (o.message_ids.size() > 0) id_ = o.message_ids[0];
  }
  void on_receipt(const DeliveryReceipt& r) override { (void)r; }
  void on_mobile_originated(const MobileOriginated& mo) override { (void)mo; }

  bool done_ = false;
  SmsVerdict verdict_ = SmsVerdict::kDeferred;
  std::string text_;
  std::string id_;

 private:
  SmsMessage* msg_;
};

// Sends nothing: stays bound while receipts and replies come in, until told to stop.
class ListenHost : public SmppHost {
 public:
  explicit ListenHost(SmsInbound& in) : in_(in) {}
  Next next_message(SmsMessage*& out) override {
    (void)out;
    return done_ ? Next::kDone : Next::kWait;
  }
  void message_outcome(SmsMessage& m, const SmsOutcome& o) override {
    (void)m;
    (void)o;
  }
  void on_receipt(const DeliveryReceipt& r) override { in_.receipt(r); }
  void on_mobile_originated(const MobileOriginated& mo) override { in_.reply(mo); }
  bool done_ = false;

 private:
  SmsInbound& in_;
};

// `sms receipts`: binds, listens for `listen_ms`, applies what comes to the task, unbinds.
int smpp_receipts(const ProviderConfig& p, const std::string& task, uint64_t listen_ms,
                  const std::string& country) {
  auto cc = smpp_conn_config(p, p.sender);
  if (!cc.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", cc.error().message.c_str());
    return kExitUsage;
  }
  // One process at a time on a task: while `sms send` runs, it takes the receipts itself.
  auto lock = acquire_task_lock(task);
  if (!lock.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", lock.error().message.c_str());
    return kExitUsage;
  }
  // A task file, or a PostgreSQL task (several `sms send` nodes and this may share it).
  auto store = open_task_store(task, TaskOpen::kWrite);
  if (!store.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", store.error().message.c_str());
    return kExitUsage;
  }
  auto channel = (*store)->get_meta("sb.channel");
  if (!channel.ok() || !channel->has_value() || **channel != "sms") {
    std::fprintf(stderr,
                 "smtpblast: sms receipts: task %s is not an SMS task (sms import / sms send)\n",
                 task.c_str());
    return kExitUsage;
  }
  SmsInbound in(**store, country);
  ListenHost host(in);
  ConnEnd done;
  {
    UvLoop uv;
    Timer stop(&uv.loop);
    SmppConn* conn = nullptr;
    done.on_closed = [&] { stop.stop(); };
    auto started = SmppConn::start(&uv.loop, *cc, host, done);
    if (!started.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", started.error().message.c_str());
      return kExitUsage;
    }
    conn = *started;
    stop.start(listen_ms, [&] {
      host.done_ = true;
      if (!done.closed) conn->poke();
    });
    uv_run(&uv.loop, UV_RUN_DEFAULT);
  }
  const std::string where = p.smpp.host + ":" + std::to_string(p.smpp.port);
  if (!done.reached) {
    std::fprintf(stderr, "smtpblast: sms receipts: provider %s (%s): %s\n", p.name.c_str(),
                 where.c_str(),
                 !done.why.empty()       ? done.why.c_str()
                 : done.end.text.empty() ? "no bind"
                                         : done.end.text.c_str());
    return done.end.cause == SmppEndCause::kBindRefused && done.end.fatal ? kExitRelay
                                                                          : kExitSomeFailed;
  }
  std::printf("sms receipts: task %s via %s: %s\n", task.c_str(), p.name.c_str(),
              in.summary().c_str());
  if (!in.first_error().empty()) {
    std::fprintf(stderr, "smtpblast: sms receipts: %llu not recorded: %s\n",
                 static_cast<unsigned long long>(in.counts().store_errors),
                 in.first_error().c_str());
    return kExitUsage;
  }
  if (!done.why.empty() && !host.done_) {
    // The SMSC ended the bind before the time was up: what came was applied, but say so.
    std::fprintf(stderr, "smtpblast: sms receipts: the connection ended early: %s\n",
                 done.why.c_str());
    return kExitSomeFailed;
  }
  return kExitDone;
}

// Binds to the SMSC, sends `msg` when given, unbinds; prints the outcome; the exit code.
int smpp_one(const ProviderConfig& p, const std::string& sender, SmsMessage* msg) {
  auto cc = smpp_conn_config(p, sender);
  if (!cc.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", cc.error().message.c_str());
    return kExitUsage;
  }
  OneShotHost host(msg);
  ConnEnd done;
  {
    UvLoop uv;
    auto conn = SmppConn::start(&uv.loop, *cc, host, done);
    if (!conn.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", conn.error().message.c_str());
      return kExitUsage;
    }
    uv_run(&uv.loop, UV_RUN_DEFAULT);
  }
  const bool reached = done.reached;
  const SmppEnd& end = done.end;
  const std::string& smsc_id = done.smsc_id;
  const std::string where = p.smpp.host + ":" + std::to_string(p.smpp.port);
  if (!reached) {
    std::fprintf(stderr, "smtpblast: sms: provider %s (%s): %s\n", p.name.c_str(), where.c_str(),
                 !done.why.empty()  ? done.why.c_str()
                 : end.text.empty() ? "no bind"
                                    : end.text.c_str());
    return end.cause == SmppEndCause::kBindRefused && end.fatal ? kExitRelay : kExitSomeFailed;
  }
  if (msg == nullptr) {
    std::printf("sms check: provider %s (%s): bound as %s to %s and unbound\n", p.name.c_str(),
                where.c_str(), p.smpp.system_id.c_str(), smsc_id.c_str());
    return kExitDone;
  }
  if (host.done_ && host.verdict_ == SmsVerdict::kSent) {
    std::printf("sms test: sent to %s via %s (message id %s)\n", std::string(msg->to).c_str(),
                p.name.c_str(), host.id_.c_str());
    return kExitDone;
  }
  std::fprintf(stderr, "smtpblast: sms test: %s: %s\n",
               host.verdict_ == SmsVerdict::kFailed ? "refused" : "not sent, try again later",
               host.text_.empty() ? end.text.c_str() : host.text_.c_str());
  return kExitSomeFailed;
}

class SmsVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    CLI::App* sms = app.add_subcommand(
        "sms", "SMS mailings: providers ([provider.NAME] in the config file), lists of numbers");
    sms->require_subcommand(1);
    check_ = sms->add_subcommand("check",
                                 "read the provider's configuration and secret; "
                                 "SMPP: bind and unbind without sending");
    test_ = sms->add_subcommand("test", "send one SMS through the provider");
    for (CLI::App* c : {check_, test_}) {
      c->add_option("--provider", provider_, "the provider's name ([provider.NAME])")->required();
      c->add_option("--provider-config", provider_config_,
                    "a TOML file with [provider.NAME] tables (instead of the config files)");
    }
    test_->add_option("--to", to_, "the phone number (E.164, or national with --country)")
        ->required();
    test_->add_option("--country", country_,
                      "default country of a number without one (GB, DE ...; default: the "
                      "provider's `country`)");
    import_ = sms->add_subcommand(
        "import", "create an SMS task from a list of phone numbers without sending");
    import_
        ->add_option("--task", task_, "task file to create, or postgresql://USER@HOST/DB?task=NAME")
        ->required();
    import_->add_option("--recipients", csv_, "CSV with a header row and a phone column")
        ->required()
        ->check(CLI::ExistingFile);
    import_->add_option("--phone-column", phone_column_, "the column of the numbers")
        ->capture_default_str();
    import_->add_option("--country", country_,
                        "default country of numbers without one (GB, DE, NO ...)");
    import_->add_flag("--replace", replace_, "replace the task's list (while nothing was sent)");
    import_->add_flag("--append", append_, "add the list's new numbers to the task");
    add_csv_options(import_, encoding_, delim_);
    receipts_ = sms->add_subcommand(
        "receipts",
        "SMPP: bind, listen for delivery receipts and STOP replies for a while, "
        "and apply them to the task");
    receipts_
        ->add_option("--task", task_,
                     "the SMS task the receipts are about (a file or a postgresql:// URL)")
        ->required();
    receipts_->add_option("--provider", provider_, "the provider's name ([provider.NAME])")
        ->required();
    receipts_->add_option("--provider-config", provider_config_,
                          "a TOML file with [provider.NAME] tables (instead of the config files)");
    receipts_->add_option("--for", listen_for_, "how long to listen (90s, 5m ...)")
        ->capture_default_str();
    receipts_->add_option("--country", country_,
                          "default country of a STOP reply's number written without one "
                          "(default: the provider's `country`)");
    test_->add_option("--text", text_, "the message")->required();
    test_->add_option("--sender", sender_,
                      "the sender shown on the phone (default: the "
                      "provider's `from`)");
    send_.add(sms);
    return sms;
  }

  int run() override {
    if (import_->parsed()) return import();
    if (send_.parsed()) return send_.run();
    auto p = find_provider(provider_, provider_config_);
    if (!p.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", p.error().message.c_str());
      return kExitUsage;
    }
    if (check_->parsed()) return check(*p);
    if (receipts_->parsed()) return receipts(*p);
    return test(*p);
  }

 private:
  int check(const ProviderConfig& p) {
    if (p.type == "http") {
      const SecretSource& s = p.http.secret;
      if (!s.empty()) {
        auto secret = read_secret(s, "provider." + p.name + " secret");
        if (!secret.ok()) {
          std::fprintf(stderr, "smtpblast: %s\n", secret.error().message.c_str());
          return kExitUsage;
        }
      }
      std::printf(
          "sms check: provider %s (http%s%s): configuration and secret are usable; an "
          "HTTP API has no login without sending: `sms test` sends one\n",
          p.name.c_str(), p.http.preset.empty() ? "" : ", preset ", p.http.preset.c_str());
      return kExitDone;
    }
    return smpp_one(p, p.sender, nullptr);
  }

  int receipts(const ProviderConfig& p) {
    auto ms = parse_duration_ms(listen_for_);
    if (!ms.ok() || *ms == 0) {
      std::fprintf(stderr, "smtpblast: sms receipts: --for %s: not a duration (90s, 5m ...)\n",
                   listen_for_.c_str());
      return kExitUsage;
    }
    if (p.type != "smpp") {
      std::fprintf(stderr,
                   "smtpblast: sms receipts: provider %s is an HTTP API: its receipts come by "
                   "webhook, which smtpblast does not receive\n",
                   p.name.c_str());
      return kExitUsage;
    }
    return smpp_receipts(p, task_, *ms, country_.empty() ? p.country : country_);
  }

  int import() {
    if (!country_.empty() && !known_country(country_)) {
      std::fprintf(stderr, "smtpblast: sms import: --country %s: not a country code (GB, DE ...)\n",
                   country_.c_str());
      return kExitUsage;
    }
    ImportOptions o;
    o.key_column = phone_column_;
    o.normalize = phone_key;
    o.normalize_ctx = &country_;
    return cmd_import(task_, csv_, replace_, append_, encoding_, delim_, o);
  }

  int test(const ProviderConfig& p) {
    const std::string country = country_.empty() ? p.country : country_;
    auto to = normalize_e164(to_, country);
    if (!to.ok()) {
      std::fprintf(stderr, "smtpblast: sms test: --to %s: %s\n", to_.c_str(),
                   to.error().message.c_str());
      return kExitUsage;
    }
    to_ = *to;
    const std::string from = sender_.empty() ? p.sender : sender_;
    if (p.type == "http") return http_send_one(p, to_, from, text_);
    SmsMessage m;
    m.to = to_;
    m.text = text_;
    return smpp_one(p, from, &m);
  }

  CLI::App* check_ = nullptr;
  CLI::App* test_ = nullptr;
  CLI::App* import_ = nullptr;
  SmsSendCmd send_;
  CLI::App* receipts_ = nullptr;
  std::string listen_for_ = "60s";
  std::string country_;
  std::string task_;
  std::string csv_;
  std::string phone_column_ = "phone";
  bool replace_ = false;
  bool append_ = false;
  std::string encoding_;
  std::string delim_ = ",";
  std::string provider_;
  std::string provider_config_;
  std::string to_;
  std::string text_;
  std::string sender_;
};

}  // namespace

std::unique_ptr<Verb> make_sms_verb() { return std::make_unique<SmsVerb>(); }

}  // namespace sb
