// The send verb's glue to the engine: run a configured send and print its end; the task lock
// and the recipient import as the command line says them.
#pragma once

#include <string>

#include "engine/run_config.h"
#include "store/task_store.h"

namespace sb {

struct MessageSetup;

// Runs the send (engine/send_run.h), prints the summary, returns the exit code.
int run_send_command(const RunConfig& cfg);

// What every message gets from --dkim-* and --unsubscribe-*, into the run's configuration.
void apply_message_setup(const MessageSetup& s, RunConfig& cfg);

// Takes the task's lock file for the life of the process (store/task_lock.h); -1 after
// printing why (another process sends it: exit code 2).
int lock_task(const std::string& task_path);

// Imports a recipient CSV into a task, printing the report; 0, or 2 on error.
int import_recipients(TaskStore& store, const std::string& path, const ImportOptions& options = {});
// `import` (and `sms import`, whose `opts` carry the phone column and normaliser): a new task
// from a list, or the list replaced / appended to. Exit code; prints what it did.
int cmd_import(const std::string& task, const std::string& csv, bool replace, bool append,
               const std::string& encoding, const std::string& delimiter, ImportOptions opts);

}  // namespace sb
