// `smtpblast sink`: the local SMTP sink (smtp/sink_server) with its fault options.
#include <cctype>
#include <cstdio>
#include <memory>

#include "cli/verb.h"
#include "smtp/sink_server.h"

namespace sb {

namespace {

class SinkVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    CLI::App* sink =
        app.add_subcommand("sink", "a fast local SMTP sink for demos, tests and benchmarks");
    sink->add_option("--listen", sc_.listen, "IP:PORT to listen on");
    sink->add_option("--reject-rcpt", sc_.engine.reject_rcpt, "share of RCPTs answered 550")
        ->check(CLI::Range(0.0, 1.0));
    sink->add_option("--defer-rcpt", sc_.engine.defer_rcpt, "share of RCPTs answered 451")
        ->check(CLI::Range(0.0, 1.0));
    sink->add_option("--defer-txn", sc_.engine.defer_txn, "share of messages answered 451")
        ->check(CLI::Range(0.0, 1.0));
    sink->add_option("--drop-txn", sc_.engine.drop_txn,
                     "share of messages whose connection is dropped before the final reply")
        ->check(CLI::Range(0.0, 1.0));
    sink->add_option("--delay-ms", sc_.engine.reply_delay_ms, "delay every reply by this much");
    sink->add_option("--defer-reply", sc_.engine.defer_reply,
                     "reply used for --defer-rcpt/--defer-txn, e.g. \"451 4.7.0 Rate limited\"")
        ->check([](const std::string& v) {
          return v.size() >= 4 && v[0] == '4' && isdigit(v[1]) && isdigit(v[2]) && v[3] == ' ' &&
                         v.find_first_of("\r\n") == std::string::npos
                     ? std::string()
                     : std::string(
                           "must be a one-line 4xx reply such as \"451 4.7.0 Rate limited\"");
        });
    sink->add_option("--rate-limit", sc_.engine.rate_limit,
                     "accept at most R messages a second; answer the others 451 4.7.0 Rate limited")
        ->check(CLI::Range(0.0, 1e9));
    sink->add_option("--fault-421-at", sc_.engine.fault_421_at,
                     "answer the Nth message 421 4.7.0 and close its connection, once");
    sink->add_option("--max-size", sc_.engine.max_size, "SIZE limit to announce (0: none)");
    sink->add_option("--seed", sc_.engine.seed, "seed of the fault generator");
    sink->add_option("--record", sc_.record_path, "append every accepted message to this file");
    sink->add_option("--stats-interval-ms", sc_.stats_interval_ms, "print counters this often");
    sink->add_flag("--no-pipelining", no_pipelining_, "do not announce PIPELINING");
    sink->add_flag("--no-chunking", no_chunking_, "do not announce CHUNKING");
    return sink;
  }

  int run() override {
    sc_.engine.pipelining = !no_pipelining_;
    sc_.engine.chunking = !no_chunking_;
    Status s = run_sink(sc_);
    if (!s.ok()) {
      std::fprintf(stderr, "smtpblast sink: %s\n", s.error().describe().c_str());
      return 2;
    }
    return 0;
  }

 private:
  SinkServerConfig sc_;
  bool no_pipelining_ = false;
  bool no_chunking_ = false;
};

}  // namespace

std::unique_ptr<Verb> make_sink_verb() { return std::make_unique<SinkVerb>(); }

}  // namespace sb
