// The check and test verbs: one connection to the relay, or to the first mail exchanger of a
// domain that answers (--direct), reported step by step.
#include "cli/check.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/text.h"
#include "cli/dkim_options.h"
#include "cli/pipeline.h"
#include "cli/test_data.h"
#include "dns/mx_resolver.h"
#include "loop/worker.h"
#include "message/template.h"
#include "smtp/pool.h"

namespace sb {

namespace {

// Where the one connection goes: the relay's addresses, or a domain's MX hosts' addresses in
// preference order, tried in turn as send --direct does.
struct Target {
  std::vector<sockaddr_storage> addrs;
  std::vector<std::string> hosts;  // per address: its MX host (direct)
  std::vector<std::string> peers;  // per address: "IP:PORT" as ConnInfo spells it (direct)
  std::vector<uint16_t> prefs;     // per address: its MX preference (direct)
  std::string name;
  std::string tls_host;
  std::string domain;  // direct: the domain looked up, A-label form
  bool direct = false;
  bool implicit_mx = false;

  // "mx2.example.com 192.0.2.1:25 (MX 20)" for a peer of a direct target, else the peer.
  std::string describe(const std::string& peer) const {
    for (size_t i = 0; i < peers.size(); ++i) {
      if (peers[i] != peer) continue;
      return hosts[i] + " " + peer +
             (implicit_mx ? " (implicit MX)" : " (MX " + std::to_string(prefs[i]) + ")");
    }
    return peer;
  }
};

Target relay_target(const RelaySetup& relay) {
  Target t;
  t.addrs = relay.addrs;
  t.name = relay.name;
  t.tls_host = relay.host;
  return t;
}

// One connection attempt as the report shows it.
struct Attempt {
  std::string peer;
  std::string step;
  std::string why;
  bool ready = false;
};

// Offers at most one transaction (a probe or one message) to the first connection that gets
// to the point of sending mail, and keeps what the sessions report. Until then (direct
// delivery's fail-over) the pool may try further addresses.
class OneShotHost : public PoolHost {
 public:
  Txn txn;
  bool have_txn = false;
  RenderedMessage msg;

  // Results, read after done; those of the last session that ended.
  std::string transcript, greeting, end_reason, end_step, tls, caps, peer;
  bool fatal = false, ready = false, authenticated = false, got_outcome = false;
  Verdict verdict = Verdict::kDeferred;
  int code = 0;
  std::string reply;
  std::string pool_failure;
  std::vector<Attempt> attempts;  // every session, in order

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
  // Another connection only while none has reached the point of sending mail.
  bool has_work() override { return !served_; }
  void pool_failed(const std::string& why, bool) override {
    pool_failure = why;
    finish();
  }
  void pool_idle() override { finish(); }
  void session_ended(const Session& s, const std::string& tls_summary) override {
    if (s.ready_reached()) served_ = true;
    transcript = s.transcript();
    greeting = s.greeting();
    end_reason = s.end_reason();
    end_step = s.end_step();
    fatal = s.fatal();
    ready = s.ready_reached();
    authenticated = s.authenticated();
    tls = tls_summary;
    peer = s.conn_info() != nullptr ? s.conn_info()->peer : "";
    attempts.push_back(Attempt{peer, end_step, end_reason, ready});
    const ServerCaps& c = s.caps();
    caps.clear();
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
  bool served_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

void run_one(const RelaySetup& relay, const Target& t, OneShotHost& host, bool chunking,
             const Timeouts& timeouts) {
  PoolConfig pc = pool_config_for(relay, timeouts);
  pc.addrs = t.addrs;
  pc.addr_names = t.hosts;
  pc.name = t.name;
  pc.tls_host = t.tls_host;
  pc.connections = 1;
  // A relay gets one try. Mail exchangers: each address once, in order, as send tries them
  // before it backs off.
  pc.failover = t.direct;
  pc.max_connect_failures =
      t.direct ? static_cast<uint32_t>(std::max<size_t>(1, t.addrs.size())) : 1;
  pc.keep_transcript = true;
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

// One MX lookup with the resolver send --direct uses, on a loop of its own.
Result<dns::MxResult> lookup_mx(const DirectLookup& d, const std::string& domain) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::string error;
  dns::MxResult result;
  std::unique_ptr<dns::MxResolver> resolver;
  auto finish = [&] {
    std::lock_guard<std::mutex> g(mu);
    done = true;
    cv.notify_all();
  };
  Worker w(0);
  w.post([&] {
    auto r = make_mx_resolver(w.loop(), d);
    if (!r.ok()) {
      error = r.error().message;
      finish();
      return;
    }
    resolver = std::move(r).value();
    resolver->resolve_mx(domain, [&](const dns::MxResult& m) {
      result = m;
      finish();
    });
  });
  w.start();
  {
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
  }
  w.post([&] { resolver.reset(); });  // not inside its own callback
  w.stop_and_join();
  if (!error.empty()) return make_error(ErrDomain::kAres, "DNS resolver: " + error);
  return result;
}

// Looks up `domain`'s mail exchangers and prints them. On success fills `t` and returns "";
// otherwise the reason, for "<verb> failed at dns: ...". `code` is 1 then, or 2 when no
// resolver could be set up.
std::string resolve_target(const DirectLookup& d, const std::string& domain, Target& t, int& code) {
  code = 1;
  std::string via =
      d.dns_servers.empty() ? "the system's resolver" : "DNS server " + d.dns_servers[0];
  for (size_t i = 1; i < d.dns_servers.size(); ++i) via += ", " + d.dns_servers[i];
  auto r = lookup_mx(d, domain);
  if (!r.ok()) {
    code = 2;
    return r.error().message;
  }
  const dns::MxResult& mx = *r;
  std::printf("MX lookup:    %s (%s)\n", mx.domain.empty() ? domain.c_str() : mx.domain.c_str(),
              via.c_str());
  for (const std::string& n : mx.notes) std::printf("  note: %s\n", n.c_str());
  if (!mx.ok()) {
    const std::string& name = mx.domain.empty() ? domain : mx.domain;
    bool temporary = mx.status == dns::MxStatus::kTemporary;
    return (mx.message.find(name) == std::string::npos ? name + ": " : std::string()) + mx.message +
           (temporary ? "; temporary: send would defer these recipients and retry"
                      : "; permanent: send would fail these recipients without connecting");
  }
  if (mx.implicit_mx) {
    std::printf(
        "  no MX records: the domain's own address is its mail exchanger (implicit MX, "
        "RFC 5321 section 5.1)\n");
  }
  t.direct = true;
  t.domain = mx.domain;
  t.implicit_mx = mx.implicit_mx;
  for (const dns::MailExchanger& h : mx.hosts) {
    std::string addrs;
    for (const dns::IpAddress& ip : h.addresses) {
      sockaddr_storage ss{};
      ip.to_sockaddr(d.mx_port, ss);
      t.addrs.push_back(ss);
      t.hosts.push_back(h.host);
      t.prefs.push_back(h.preference);
      std::string a = ip.to_string();
      t.peers.push_back((ip.is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(d.mx_port));
      addrs += (addrs.empty() ? "" : " ") + a;
    }
    if (mx.implicit_mx) {
      std::printf("  %s  %s\n", h.host.c_str(), addrs.c_str());
    } else {
      std::printf("  MX %u  %s  %s\n", static_cast<unsigned>(h.preference), h.host.c_str(),
                  addrs.c_str());
    }
  }
  if (t.addrs.empty()) return "no address for any mail exchanger of " + mx.domain;
  t.name = (mx.implicit_mx ? "host " : "MX ") + mx.hosts.front().host + " (" + mx.domain + ")";
  t.tls_host = mx.hosts.front().host;
  return "";
}

// The recipient as send would address it: an IDN domain in its A-label form.
std::string rcpt_for(const std::string& address, const Target& t) {
  if (!t.direct || is_ascii(address_domain(address))) return address;
  return address.substr(0, address.rfind('@') + 1) + t.domain;
}

// Each attempt not used and why, then the one used: always for mail exchangers; for a relay
// when there was more than one (a failed opportunistic TLS handshake, retried in plaintext).
void print_attempts(const Target& t, const OneShotHost& h) {
  if (!t.direct && h.attempts.size() < 2) return;
  for (size_t i = 0; i < h.attempts.size(); ++i) {
    const Attempt& a = h.attempts[i];
    if (a.ready) {
      std::printf("used:         %s\n", t.describe(a.peer).c_str());
      continue;
    }
    // The same address again follows only a failed opportunistic handshake, which says so.
    const char* next = i + 1 == h.attempts.size() || h.attempts[i + 1].peer == a.peer
                           ? ""
                           : "; tried the next address";
    std::printf("not used:     %s: failed at %s: %s%s\n", t.describe(a.peer).c_str(),
                a.step.empty() ? "tcp" : a.step.c_str(), a.why.c_str(), next);
  }
}

void print_report(const std::string& header, const OneShotHost& h) {
  if (!header.empty()) std::printf("%s\n", header.c_str());
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

// Why no session got to the point of sending mail.
std::string unreachable_reason(const Target& t, const OneShotHost& h) {
  std::string last = !h.end_reason.empty() ? h.end_reason : h.pool_failure;
  if (!t.direct || h.fatal) return last;
  size_t tried = 0;
  for (size_t i = 0; i < t.peers.size(); ++i) {
    if (std::any_of(h.attempts.begin(), h.attempts.end(),
                    [&](const Attempt& a) { return a.peer == t.peers[i]; })) {
      ++tried;
    }
  }
  return "no mail exchanger of " + t.domain + " could be used (" + std::to_string(tried) + " of " +
         std::to_string(t.addrs.size()) + " address" + (t.addrs.size() == 1 ? "" : "es") +
         " tried; send would defer these recipients and retry); the last: " + last;
}

}  // namespace

std::string address_domain(const std::string& address) {
  size_t at = address.rfind('@');
  return at == std::string::npos ? std::string() : address.substr(at + 1);
}

int run_check(const RelaySetup& relay, const std::string& from, const std::string& probe_rcpt,
              const DirectLookup* direct, const std::string& domain, const Timeouts& timeouts) {
  for (const std::string& w : relay.warnings)
    std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  Target t = relay_target(relay);
  if (direct != nullptr) {
    int code = 1;
    std::string why = resolve_target(*direct, domain, t, code);
    if (!why.empty()) {
      std::printf("check failed at dns: %s\n", why.c_str());
      return code;
    }
  }
  OneShotHost h;
  const std::string rcpt = rcpt_for(probe_rcpt, t);
  if (!probe_rcpt.empty()) {
    h.have_txn = true;
    h.txn.mail_from = from;
    h.txn.rcpts.push_back(TxnRcpt{rcpt, 0});
    h.txn.smtputf8 = !is_ascii(from) || !is_ascii(rcpt);
    h.txn.probe = true;
  }
  run_one(relay, t, h, true, timeouts);
  print_attempts(t, h);
  // Mail exchangers that were never reached have nothing more to show than the lines above.
  if (!t.direct || !h.transcript.empty()) print_report(t.direct ? std::string() : t.name, h);
  std::string step;
  std::string why;
  if (!h.ready) {
    step = h.end_step.empty() ? "tcp" : h.end_step;
    why = unreachable_reason(t, h);
  } else if (!probe_rcpt.empty() && (!h.got_outcome || h.verdict != Verdict::kSent)) {
    bool sender = h.txn.mail_code != 0 && (h.txn.mail_code < 200 || h.txn.mail_code >= 400);
    step = sender ? "sender" : "recipient";
    why = h.got_outcome ? std::to_string(h.code) + " " + h.reply : h.end_reason;
    if (h.got_outcome && h.code >= 400 && h.code < 500) {
      why += " (temporary: send would defer and retry)";
    }
  }
  if (!step.empty()) {
    std::printf("check failed at %s: %s\n", step.c_str(), why.c_str());
    return 1;
  }
  if (!probe_rcpt.empty()) {
    std::printf(
        "probe:        sender <%s> and recipient <%s> accepted (%d %s); RSET, nothing sent\n",
        from.c_str(), rcpt.c_str(), h.code, h.reply.c_str());
  }
  std::printf("check passed\n");
  return 0;
}

namespace {

// Compiles the template (with DKIM and List-Unsubscribe as send adds them), binds the merge
// fields of `data` and renders the message for `to`. Prints the error and returns false.
// `tpl` keeps the template: the rendered pieces point into it.
bool render_test(const std::string& template_path, const std::string& from, const std::string& to,
                 const MessageSetup* message, const TestData* data, bool dot_stuff,
                 std::optional<CompiledTemplate>& tpl_out, RenderedMessage& out,
                 std::string& envelope_from) {
  auto raw = read_file(template_path);  // says why: missing, a directory, permission
  if (!raw.ok()) {
    std::fprintf(stderr, "smtpblast: --template: %s\n", raw.error().message.c_str());
    return false;
  }
  TemplateOptions o;
  o.default_from = from;
  o.task_key = "test";
  if (message != nullptr) apply_message_setup(*message, o.task_key, o);
  auto tpl = CompiledTemplate::compile(*raw, o);
  if (!tpl.ok()) {
    std::fprintf(stderr, "smtpblast: --template %s: %s\n", template_path.c_str(),
                 tpl.error().message.c_str());
    return false;
  }
  static const std::vector<std::string> kNoFields;
  const std::vector<std::string>& names = data != nullptr ? data->names : kNoFields;
  if (auto b = tpl->bind(names); !b.ok()) {
    std::fprintf(stderr,
                 "smtpblast: --template %s: %s (give --row N with --task or "
                 "--recipients, or --field name=value)\n",
                 template_path.c_str(), b.error().message.c_str());
    return false;
  }
  if (message != nullptr) print_message_warnings(*message, *tpl);
  envelope_from = from.empty() ? tpl->from_address() : from;
  tpl_out.emplace(std::move(tpl).value());
  RenderInput in;
  in.email = to;
  if (data != nullptr) in.values = &data->values;
  in.recipient_id = static_cast<int64_t>(std::time(nullptr));
  in.now = static_cast<int64_t>(std::time(nullptr));
  if (auto r = tpl_out->render(in, dot_stuff, out); !r.ok()) {
    std::string source =
        data != nullptr && !data->source.empty() ? " (" + data->source + ")" : std::string();
    std::fprintf(stderr, "smtpblast: cannot render the message%s: %s\n", source.c_str(),
                 r.error().message.c_str());
    return false;
  }
  return true;
}

}  // namespace

int print_test_message(const std::string& template_path, const std::string& from,
                       const std::string& to, const MessageSetup* message, const TestData* data) {
  std::optional<CompiledTemplate> tpl;
  RenderedMessage msg;
  std::string envelope_from;
  const std::string& rcpt = !to.empty() || data == nullptr ? to : data->email;
  if (!render_test(template_path, from, rcpt, message, data, false, tpl, msg, envelope_from)) {
    return 2;
  }
  std::string text = msg.flatten();
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (std::fflush(stdout) != 0) return 2;
  std::fprintf(stderr, "test --print: envelope MAIL FROM:<%s> RCPT TO:<%s>%s%s; nothing sent\n",
               envelope_from.c_str(), rcpt.c_str(),
               data != nullptr && !data->source.empty() ? "; merge data: " : "",
               data != nullptr ? data->source.c_str() : "");
  return 0;
}

int run_test_message(const RelaySetup& relay, const std::string& template_path,
                     const std::string& from, const std::string& to, const MessageSetup* message,
                     const DirectLookup* direct, const TestData* data, bool transcript,
                     const Timeouts& timeouts) {
  for (const std::string& w : relay.warnings)
    std::fprintf(stderr, "smtpblast: warning: %s\n", w.c_str());
  std::optional<CompiledTemplate> tpl;
  std::string envelope_from;
  OneShotHost h;
  // Rendered once, dot-stuffed for DATA; chunking is off for this one message.
  if (!render_test(template_path, from, to, message, data, true, tpl, h.msg, envelope_from)) {
    return 2;
  }
  if (data != nullptr && !data->source.empty()) {
    std::printf("merge data:   %s\n", data->source.c_str());
  }
  Target t = relay_target(relay);
  if (direct != nullptr) {
    int code = 1;
    std::string why = resolve_target(*direct, address_domain(to), t, code);
    if (!why.empty()) {
      std::printf("test failed at dns: %s\n", why.c_str());
      return code;
    }
  }
  const std::string rcpt = rcpt_for(to, t);
  h.have_txn = true;
  h.txn.mail_from = envelope_from;
  h.txn.rcpts.push_back(TxnRcpt{rcpt, 0});
  h.txn.smtputf8 = !is_ascii(envelope_from) || !is_ascii(rcpt) || h.msg.smtputf8;
  h.txn.body = h.msg.pieces;
  h.txn.body_size = h.msg.size;
  h.txn.eight_bit = h.msg.eight_bit;
  run_one(relay, t, h, false, timeouts);
  print_attempts(t, h);
  if (!h.got_outcome) {
    if (!t.direct || !h.transcript.empty()) print_report(t.direct ? std::string() : t.name, h);
    std::printf("test failed at %s: %s\n", h.end_step.empty() ? "tcp" : h.end_step.c_str(),
                (h.ready ? (!h.end_reason.empty() ? h.end_reason : h.pool_failure)
                         : unreachable_reason(t, h))
                    .c_str());
    // A relay that cannot be used is the setup's problem; mail exchangers that cannot be
    // reached are the destination's (send would retry), unless nothing could cure it.
    // Credentials, TLS or a refused sender: stopped by the relay (5), as send says it.
    if (t.direct) return h.fatal ? kExitRelay : 1;
    return h.fatal ? kExitRelay : !h.ready ? 2 : 1;
  }
  if (transcript) print_report(t.direct ? std::string() : t.name, h);
  std::printf("%s: %d %s\n", h.verdict == Verdict::kSent ? "sent" : "not sent", h.code,
              h.reply.c_str());
  return h.verdict == Verdict::kSent ? 0 : 1;
}

}  // namespace sb
