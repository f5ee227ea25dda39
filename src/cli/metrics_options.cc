// The metrics endpoint's flags, its start before the run and its linger after it.
#include "cli/metrics_options.h"

#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/pipeline.h"
#include "cli/relay_options.h"

namespace sb {

void MetricsEndpoint::add_options(CLI::App* cmd) {
  cmd->add_option("--metrics", addr_,
                  "serve Prometheus metrics at http://ADDR:PORT/metrics while the run goes, "
                  "e.g. 127.0.0.1:9464 (README: Metrics)");
  cmd->add_option("--metrics-linger", linger_,
                  "after the run, keep serving the final metrics this long (e.g. 15s) so a "
                  "last scrape sees them (default 0s)");
  cmd->add_option("--metrics-destinations", max_destinations_,
                  "--direct: destinations with a metrics label of their own; later ones "
                  "count as \"other\" (default 20)")
      ->check(CLI::Range(0u, 1000u));
}

int MetricsEndpoint::start() {
  if (!parse_duration_ms(linger_, linger_ms_)) {
    std::fprintf(stderr, "smtpblast: --metrics-linger: '%s' is not a duration (e.g. 15s)\n",
                 linger_.c_str());
    return kExitUsage;
  }
  if (addr_.empty()) {
    if (linger_ms_ > 0) {
      std::fprintf(stderr, "smtpblast: --metrics-linger goes with --metrics\n");
      return kExitUsage;
    }
    return 0;
  }
  cells_ = std::make_shared<metrics::RunMetrics>(max_destinations_);
  std::shared_ptr<metrics::RunMetrics> cells = cells_;
  auto s = metrics::MetricsServer::start(addr_, [cells] { return cells->expose(); });
  if (!s.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", s.error().message.c_str());
    cells_.reset();
    return kExitUsage;
  }
  server_ = std::move(s).value();
  return 0;
}

void MetricsEndpoint::finish(int rc) {
  if (server_ == nullptr) return;
  cells_->set_finished();
  if (linger_ms_ > 0 && rc != kExitUsage) {
    std::this_thread::sleep_for(std::chrono::milliseconds(linger_ms_));
  }
  server_.reset();
}

}  // namespace sb
