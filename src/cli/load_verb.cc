// `smtpblast load`: the load generator (load/load_run.h) from flags: relay, rate, length, message.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "base/text.h"
#include "cli/pipeline.h"
#include "cli/relay_options.h"
#include "cli/verb.h"
#include "load/load_report.h"
#include "load/load_run.h"
#include "message/template.h"
#include "throttle/rate_spec.h"

namespace sb {

namespace {

// "2k", "1.5m", "2048": octets (k = 1024).
bool parse_size(const std::string& s, uint64_t& out) {
  if (s.empty()) return false;
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  std::string unit = lower_ascii(s.substr(used));
  double mult = unit.empty() || unit == "b"   ? 1
                : unit == "k" || unit == "kb" ? 1024
                : unit == "m" || unit == "mb" ? 1024 * 1024
                                              : 0;
  if (mult == 0 || !(v > 0) || v * mult > 100.0 * 1024 * 1024) return false;
  out = static_cast<uint64_t>(v * mult);
  return true;
}

// A plain message of about `size` octets: a few headers and lines of 76 letters.
std::string make_message(const std::string& from, uint64_t size) {
  std::string m = "From: <" + from +
                  ">\r\nTo: <load@example.com>\r\nSubject: smtpblast load test\r\n"
                  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
  static const std::string kLine =
      "smtpblast load test: the quick brown fox jumps over the lazy dog 0123456789\r\n";
  while (m.size() + kLine.size() <= size) m += kLine;
  if (m.size() + 3 <= size) m += std::string(size - m.size() - 2, 'x') + "\r\n";
  return m;
}

class LoadVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    CLI::App* c = cmd_ = app.add_subcommand(
        "load",
        "a load generator: messages at a fixed rate (or as fast as taken) with latency "
        "percentiles; no task file");
    add_relay_options(c, ro_, true);
    c->add_option("--connections", connections_, "concurrent SMTP connections (default 10)")
        ->check(CLI::Range(1u, 10000u));
    c->add_option("--rate", rate_,
                  "open loop: start this many messages per period on a timeline, e.g. 500/s; "
                  "latency counts from each message's scheduled time");
    c->add_flag("--max", max_, "closed loop: as fast as the server takes them");
    c->add_option("--duration", duration_, "measure for this long, e.g. 60s");
    c->add_option("--messages", messages_, "or measure this many messages")
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
    c->add_option("--warmup", warmup_, "run this long first without measuring, e.g. 5s");
    c->add_option("--size", size_, "message size, e.g. 2k (default), 100k");
    c->add_option("--template", template_, "send this message (.eml, {{email}} filled once)")
        ->check(CLI::ExistingFile);
    c->add_option("--rcpts-per-msg", rcpts_, "recipients per message (default 1)")
        ->check(CLI::Range(1u, 1000u));
    c->add_option("--per-connection", per_connection_,
                  "messages per connection, then QUIT and reconnect (default 100)")
        ->check(CLI::Range(1u, 100000000u));
    c->add_option("--pipeline-window", window_,
                  "transactions in flight per connection (default 512)")
        ->check(CLI::Range(1u, 1000u));
    c->add_option("--pipeline-bytes", pipeline_bytes_,
                  "message octets in flight per connection at most (default 1m; one larger "
                  "message still goes alone)");
    c->add_flag("--no-pipelining", no_pipelining_, "do not use PIPELINING even when offered");
    c->add_flag("--no-chunking", no_chunking_, "use DATA even when CHUNKING is offered");
    c->add_option("--recipients", recipients_,
                  "a file of addresses, one a line, used in turn (default user{n}@--domain)")
        ->check(CLI::ExistingFile);
    c->add_option("--domain", domain_, "domain of the generated recipients (default example.com)");
    c->add_option("--from", from_, "envelope sender (default load@example.com)");
    c->add_option("--workers", workers_,
                  "worker threads, one libuv loop each, the connections and the schedule split "
                  "between them (default: the number of cores)")
        ->check(CLI::Range(1u, 256u));
    c->add_flag("--json", json_,
                "each second a JSON line, and the summary as one JSON object, on stdout");
    return c;
  }

  int run() override {
    auto usage = [](const std::string& why) {
      std::fprintf(stderr, "smtpblast load: %s\n", why.c_str());
      return static_cast<int>(kExitUsage);
    };
    LoadConfig lc;
    if (max_ == !rate_.empty())
      return usage("give one of --rate R/s (open loop) or --max (closed loop)");
    if (!rate_.empty()) {
      auto r = parse_rate(rate_);
      if (!r.ok()) return usage("--rate: " + r.error().message);
      lc.schedule.rate = r->per_second();
      if (lc.schedule.rate > 10'000'000) return usage("--rate: at most 10000000/s");
    }
    if (duration_.empty() == (messages_ == 0))
      return usage("give one of --duration (e.g. 60s) or --messages N");
    if (!duration_.empty()) {
      auto d = parse_duration_ms(std::string_view(duration_));
      if (!d.ok() || *d == 0)
        return usage("--duration: '" + duration_ + "' is not a duration (e.g. 60s)");
      lc.schedule.duration_us = *d * 1000;
    }
    lc.schedule.messages = messages_;
    if (!warmup_.empty()) {
      auto d = parse_duration_ms(std::string_view(warmup_));
      if (!d.ok()) return usage("--warmup: '" + warmup_ + "' is not a duration (e.g. 5s)");
      lc.schedule.warmup_us = *d * 1000;
    }
    if (!template_.empty() && cmd_->count("--size") != 0)
      return usage("give one of --size or --template");
    uint64_t size = 0;
    if (!parse_size(size_, size))
      return usage("--size: '" + size_ + "' is not a size between 1 and 100m (e.g. 2k)");
    if (!from_.empty()) {
      if (std::string why = from_problem(from_); !why.empty()) return usage("--from: " + why);
    }
    if (!recipients_.empty()) {
      std::ifstream in(recipients_);
      std::string line;
      while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        size_t b = line.find_first_not_of(" \t");
        if (b == std::string::npos || line[b] == '#') continue;
        line.erase(0, b);
        if (line.find('@') == std::string::npos ||
            line.find_first_of(" \t<>,;") != std::string::npos)
          return usage("--recipients: '" + line + "' is not an address (one a line)");
        lc.recipients.push_back(line);
      }
      if (lc.recipients.empty()) return usage("--recipients: no address in " + recipients_);
    }
    lc.rcpt_domain = domain_;
    if (domain_.empty() || domain_.find_first_of("@ <>") != std::string::npos)
      return usage("--domain: '" + domain_ + "' is not a domain");

    if (!template_.empty()) {
      auto raw = read_file(template_);
      if (!raw.ok()) return usage("--template: " + raw.error().message);
      TemplateOptions to;
      to.default_from = from_.empty() ? "load@example.com" : from_;
      to.source_hash = false;  // no task to compare it with
      auto tpl = CompiledTemplate::compile(*raw, to);
      if (!tpl.ok()) return usage("--template: " + tpl.error().message);
      if (Status st = tpl->bind({}); !st.ok())
        return usage("--template: " + st.error().message + " (load fills only {{email}})");
      if (from_.empty()) from_ = tpl->from_address();
      std::string first = lc.recipients.empty() ? "user0@" + domain_ : lc.recipients.front();
      RenderedMessage m;
      RenderInput in;
      in.email = first;
      in.now = SystemClock::wall_now_ms() / 1000;
      if (Status st = tpl->render(in, true, m); !st.ok())
        return usage("--template: " + st.error().message);
      lc.body_data = m.flatten();
      lc.eight_bit = m.eight_bit;
      lc.smtputf8 = m.smtputf8;
      m.clear();
      if (Status st = tpl->render(in, false, m); !st.ok())
        return usage("--template: " + st.error().message);
      lc.body_bdat = m.flatten();
    }
    if (from_.empty()) from_ = "load@example.com";
    if (template_.empty()) {
      lc.body_data = lc.body_bdat = make_message(from_, size);  // no line starts with "."
    }
    lc.mail_from = from_;

    auto relay = prepare_relay(ro_);
    if (!relay.ok()) return usage(relay.error().message);
    auto timeouts = command_timeouts(ro_);
    if (!timeouts.ok()) return usage(timeouts.error().message);
    relay_ = std::move(relay).value();
    for (const std::string& w : relay_.warnings)
      std::fprintf(stderr, "smtpblast load: warning: %s\n", w.c_str());
    lc.pool = pool_config_for(relay_, *timeouts);
    lc.pool.connections = connections_;
    lc.pool.session.max_messages = per_connection_;
    lc.pool.session.window = window_;
    if (!pipeline_bytes_.empty() &&
        !parse_octets(pipeline_bytes_, kMaxPipelineBytes, lc.pool.session.max_bytes_in_flight))
      return usage("--pipeline-bytes: '" + pipeline_bytes_ +
                   "' is not a size between 1 and 1g (e.g. 1m, 256k)");
    lc.pool.session.use_pipelining = !no_pipelining_;
    lc.pool.session.use_chunking = !no_chunking_;
    lc.rcpts_per_msg = rcpts_;
    lc.workers = workers_;
    lc.json = json_;
    lc.progress = !json_ && stderr_is_terminal();

    LoadSummary s = run_load(lc, stdout);
    if (json_) {
      std::printf("%s\n", summary_json(s).c_str());
      mark_json_printed();  // the summary is the run's one JSON answer
    } else {
      std::printf("%s", summary_text(s).c_str());
    }
    std::fflush(stdout);
    return s.exit_code;
  }

 private:
  CLI::App* cmd_ = nullptr;
  RelayOptions ro_;
  RelaySetup relay_;
  uint32_t connections_ = 10;
  std::string rate_;
  bool max_ = false;
  std::string duration_;
  uint64_t messages_ = 0;
  std::string warmup_;
  std::string size_ = "2k";
  std::string template_;
  uint32_t rcpts_ = 1;
  uint32_t per_connection_ = 100;
  uint32_t window_ = kDefaultPipelineWindow;
  std::string pipeline_bytes_;  // --pipeline-bytes; empty: kDefaultPipelineBytes
  bool no_pipelining_ = false;
  bool no_chunking_ = false;
  std::string recipients_;
  std::string domain_ = "example.com";
  std::string from_;
  uint32_t workers_ = std::max(1u, std::thread::hardware_concurrency());
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> make_load_verb() { return std::make_unique<LoadVerb>(); }

}  // namespace sb
