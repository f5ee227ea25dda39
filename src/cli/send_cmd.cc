// The send verb's glue: RunConfig -> engine -> summary and exit code.
#include "cli/send_cmd.h"

#include <cstdio>

#include "cli/dkim_options.h"
#include "cli/pipeline.h"
#include "cli/run_report.h"
#include "engine/send_run.h"
#include "store/task_lock.h"

namespace sb {

int run_send_command(const RunConfig& cfg) {
  StderrEvents events(cfg.progress, stderr_is_terminal());
  RunResult r = run_send(cfg, events);
  return report_run(cfg, r);
}

void apply_message_setup(const MessageSetup& s, RunConfig& cfg) {
  cfg.dkim = s.dkim;
  cfg.unsubscribe.url = s.unsubscribe_url;
  cfg.unsubscribe.mailto = s.unsubscribe_mailto;
  cfg.unsubscribe.secret = s.unsubscribe_secret;
  cfg.message_warnings = s.warnings;
}

int lock_task(const std::string& task_path) {
  auto fd = acquire_task_lock(task_path);
  if (!fd.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", fd.error().message.c_str());
    return -1;
  }
  return *fd;
}

int import_recipients(TaskStore& store, const std::string& path, const ImportOptions& options) {
  StderrEvents events(ProgressStyle::kNone);
  return import_recipients(store, path, options, events);
}

}  // namespace sb
