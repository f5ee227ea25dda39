// What a pipeline (cron, CI) reads from smtpblast: exit codes, flag checks, JSON error objects.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <thread>

#include "base/result.h"

namespace sb {

struct RelayOptions;
struct ThrottleFlags;

// Exit codes, the same for every verb that sends (README "Exit codes"). When several apply,
// the first in this order wins: kUsage, kRelay, kInterrupted, kLimit, kSomeFailed, kDone.
enum ExitCode : int {
  kExitDone = 0,         // every recipient sent (or suppressed)
  kExitSomeFailed = 1,   // some recipients failed, or are still deferred or unsent
  kExitUsage = 2,        // usage, configuration or environment (task store, disk)
  kExitLimit = 3,        // stopped by --limit or the daily quota: run again later
  kExitInterrupted = 4,  // stopped by SIGINT/SIGTERM
  kExitRelay = 5,        // stopped by the relay: credentials, sender refused, TLS
};

// Why a --from value cannot be an envelope sender ("" when it can). A display name
// ("Sender <s@x>") is named as such, with the address to give instead.
std::string from_problem(const std::string& from);

// --preset for check and test: fills the relay address and TLS mode the user left unset, as
// send does (send also takes the preset's limits). Error names the preset.
Status apply_relay_preset(const std::string& name, RelayOptions& ro);

// The first argument when it names no verb of `app` ("" when it does, or is a flag).
std::string unknown_verb(int argc, char** argv, CLI::App& app);

// True when argv holds `flag` after the verb (e.g. --json), before the parser has run, so
// that even a parse error can be reported in the form the caller asked for.
bool argv_has(int argc, char** argv, const char* flag);

// --json: errors as one JSON object on stdout ({"ok":false,"exit_code":N,"error":"..."}),
// whatever part of the program printed them. Every line written to stderr still reaches
// stderr (through a pipe and a thread that copies it), and the last "smtpblast: ..." line
// that is not a warning is kept as the error. One place instead of a JSON branch at each of
// the hundred error sites, including the ones other verbs and modules add later.
class JsonErrorTee {
 public:
  JsonErrorTee() = default;
  ~JsonErrorTee() { stop(); }
  JsonErrorTee(const JsonErrorTee&) = delete;
  JsonErrorTee& operator=(const JsonErrorTee&) = delete;

  void start();
  // Restores stderr; returns the error line kept ("" when none).
  std::string stop();

 private:
  int saved_fd_ = -1;
  int read_fd_ = -1;
  std::thread thread_;
  std::string last_error_;
};

// Whether stderr is a terminal (as it was before a JsonErrorTee put a pipe there).
bool stderr_is_terminal();

// Set once a verb has printed its own JSON result on stdout (the send summary, status):
// run_cli then prints no error object of its own.
void mark_json_printed();
bool json_printed();

}  // namespace sb
