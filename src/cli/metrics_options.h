// --metrics and --metrics-linger, for the verbs that run a mailing (send; load and sms send
// through the same seam): the run's metrics served at http://ADDR:PORT/metrics while it runs.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "metrics/http_server.h"
#include "metrics/run_metrics.h"

namespace sb {

class MetricsEndpoint {
 public:
  void add_options(CLI::App* cmd);
  // Binds --metrics, when given, before anything is sent: 0, or 2 after printing why (the
  // address named).
  int start();
  // The cells a run counts into (RunConfig::metrics); null without --metrics.
  std::shared_ptr<metrics::RunMetrics> cells() const { return cells_; }
  // The run is over with exit code `rc`: the figures are final (smtpblast_run_finished 1)
  // and stay served for --metrics-linger, so that a last scrape sees them (not after a
  // set-up error, exit 2: there was no run to see); then the server stops.
  void finish(int rc);

 private:
  std::string addr_;
  std::string linger_ = "0s";
  uint32_t linger_ms_ = 0;
  uint32_t max_destinations_ = 20;
  std::shared_ptr<metrics::RunMetrics> cells_;
  std::unique_ptr<metrics::MetricsServer> server_;
};

}  // namespace sb
