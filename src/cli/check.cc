// The check and test verbs: one connection to the relay, reported step by step.
#include "cli/check.h"

#include <uv.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>

#include "cli/dkim_options.h"
#include "loop/worker.h"
#include "message/template.h"
#include "smtp/pool.h"

namespace sb {

namespace {

// Offers at most one transaction (a probe or one message) to one connection and keeps what
// the session reports.
class OneShotHost : public PoolHost {
 public:
  Txn txn;
  bool have_txn = false;
  RenderedMessage msg;

  // Results, read after done.
  std::string transcript, greeting, end_reason, end_step, tls, caps;
  bool fatal = false, ready = false, authenticated = false, got_outcome = false;
  Verdict verdict = Verdict::kDeferred;
  int code = 0;
  std::string reply;
  std::string pool_failure;

  Next next_txn(bool bdat, Txn*& out) override {
    (void)bdat;
    if (!have_txn || handed_) return Next::kDone;
    handed_ = true;
    out = &txn;
    return Next::kTxn;
  }
  void rcpt_outcome(Txn&, size_t, Verdict v, int c, std::string_view text) override {
    got_outcome = true;
    verdict = v;
    code = c;
    reply.assign(text);
  }
  void txn_done(Txn&) override {}
  bool has_work() override { return !ended_; }
  void pool_failed(const std::string& why, bool) override {
    pool_failure = why;
    finish();
  }
  void pool_idle() override { finish(); }
  void session_ended(const Session& s, const std::string& tls_summary) override {
    ended_ = true;
    transcript = s.transcript();
    greeting = s.greeting();
    end_reason = s.end_reason();
    end_step = s.end_step();
    fatal = s.fatal();
    ready = s.ready_reached();
    authenticated = s.authenticated();
    tls = tls_summary;
    const ServerCaps& c = s.caps();
    auto add = [&](bool on, const char* name) {
      if (on) caps.append(caps.empty() ? "" : " ").append(name);
    };
    add(c.pipelining, "PIPELINING");
    add(c.chunking, "CHUNKING");
    add(c.eight_bit_mime, "8BITMIME");
    add(c.smtputf8, "SMTPUTF8");
    add(c.starttls, "STARTTLS");
    if (c.size) caps.append(caps.empty() ? "" : " ").append("SIZE " + std::to_string(c.max_size));
    if (!c.auth.empty()) caps.append(caps.empty() ? "" : " ").append("AUTH " + c.auth);
  }

  void wait() {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return done_; });
  }

 private:
  void finish() {
    std::lock_guard<std::mutex> g(mu_);
    done_ = true;
    cv_.notify_all();
  }
  bool handed_ = false;
  bool ended_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

void run_one(const RelaySetup& relay, OneShotHost& host, bool chunking) {
  PoolConfig pc;
  pc.addrs = relay.addrs;
  pc.name = relay.name;
  pc.connections = 1;
  pc.max_connect_failures = 1;
  pc.connect_timeout_ms = relay.connect_timeout_ms;
  pc.tls = relay.tls_context;
  pc.tls_host = relay.host;
  pc.keep_transcript = true;
  pc.session.helo = relay.helo;
  pc.session.tls = relay.tls;
  pc.session.credentials = relay.credentials.get();
  pc.session.auth = relay.auth;
  pc.session.allow_plaintext_auth = relay.allow_plaintext_auth;
  pc.session.max_messages = 1;
  pc.session.use_chunking = chunking;
  Worker w(0);
  ConnectionPool* pool = nullptr;
  w.post([&] {
    pool = new ConnectionPool(w.loop(), pc, host);
    pool->poke();
  });
  w.start();
  host.wait();
  w.post([&] { delete pool; });
  w.stop_and_join();
}

void print_report(const std::string& relay_name, const OneShotHost& h) {
  std::printf("%s\n", relay_name.c_str());
  if (!h.greeting.empty()) std::printf("greeting:     220 %s\n", h.greeting.c_str());
  if (!h.caps.empty()) std::printf("capabilities: %s\n", h.caps.c_str());
  std::printf("TLS:          %s\n", h.tls.empty() ? "none" : h.tls.c_str());
  if (h.authenticated) std::printf("AUTH:         authenticated\n");
  if (!h.transcript.empty()) {
    std::printf("transcript (secrets redacted):\n");
    std::istringstream in(h.transcript);
    std::string line;
    while (std::getline(in, line)) std::printf("  %s\n", line.c_str());
  }
}

}  // namespace

int run_check(const RelaySetup& relay, const std::string& from, const std::string& probe_rcpt) {
  for (const std::string& w : relay.warnings) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  OneShotHost h;
  if (!probe_rcpt.empty()) {
    h.have_txn = true;
    h.txn.mail_from = from;
    h.txn.rcpts.push_back(TxnRcpt{probe_rcpt, 0, 0});
    h.txn.probe = true;
  }
  run_one(relay, h, true);
  print_report(relay.name, h);
  std::string step;
  std::string why;
  if (!h.ready) {
    step = h.end_step.empty() ? "tcp" : h.end_step;
    why = !h.end_reason.empty() ? h.end_reason : h.pool_failure;
  } else if (!probe_rcpt.empty() && (!h.got_outcome || h.verdict != Verdict::kSent)) {
    bool sender = h.txn.mail_code != 0 && (h.txn.mail_code < 200 || h.txn.mail_code >= 400);
    step = sender ? "sender" : "recipient";
    why = h.got_outcome ? std::to_string(h.code) + " " + h.reply : h.end_reason;
  }
  if (!step.empty()) {
    std::printf("check failed at %s: %s\n", step.c_str(), why.c_str());
    return 1;
  }
  if (!probe_rcpt.empty()) {
    std::printf("probe:        sender <%s> and recipient <%s> accepted (%d %s); RSET, nothing sent\n",
                from.c_str(), probe_rcpt.c_str(), h.code, h.reply.c_str());
  }
  std::printf("check passed\n");
  return 0;
}

int run_test_message(const RelaySetup& relay, const std::string& template_path,
                     const std::string& from, const std::string& to,
                     const MessageSetup* message) {
  for (const std::string& w : relay.warnings) std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  std::ifstream f(template_path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "smtpblast: --template: cannot read %s\n", template_path.c_str());
    return 2;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  TemplateOptions o;
  o.default_from = from;
  o.task_key = "test";
  if (message != nullptr) apply_message_setup(*message, o.task_key, o);
  auto tpl = CompiledTemplate::compile(ss.str(), o);
  if (!tpl.ok()) {
    std::fprintf(stderr, "smtpblast: --template %s: %s\n", template_path.c_str(), tpl.error().message.c_str());
    return 2;
  }
  if (auto b = tpl->bind({}); !b.ok()) {
    std::fprintf(stderr, "smtpblast: --template %s: %s (the test verb fills only {{email}})\n",
                 template_path.c_str(), b.error().message.c_str());
    return 2;
  }
  if (message != nullptr) print_message_warnings(*message, *tpl);
  std::string envelope_from = from.empty() ? tpl->from_address() : from;
  OneShotHost h;
  RenderInput in;
  in.email = to;
  in.recipient_id = static_cast<int64_t>(std::time(nullptr));
  in.now = static_cast<int64_t>(std::time(nullptr));
  // Rendered once, dot-stuffed for DATA; chunking is off for this one message.
  if (auto r = tpl->render(in, true, h.msg); !r.ok()) {
    std::fprintf(stderr, "smtpblast: cannot render the message: %s\n", r.error().message.c_str());
    return 2;
  }
  h.have_txn = true;
  h.txn.mail_from = envelope_from;
  h.txn.rcpts.push_back(TxnRcpt{to, 0, 0});
  h.txn.body = h.msg.pieces;
  h.txn.body_size = h.msg.size;
  h.txn.eight_bit = h.msg.eight_bit;
  run_one(relay, h, false);
  if (!h.got_outcome) {
    print_report(relay.name, h);
    std::printf("test failed at %s: %s\n", h.end_step.empty() ? "tcp" : h.end_step.c_str(),
                (!h.end_reason.empty() ? h.end_reason : h.pool_failure).c_str());
    return h.fatal || !h.ready ? 2 : 1;
  }
  std::printf("%s: %d %s\n", h.verdict == Verdict::kSent ? "sent" : "not sent", h.code, h.reply.c_str());
  return h.verdict == Verdict::kSent ? 0 : 1;
}

}  // namespace sb
