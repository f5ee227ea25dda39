// The doctor verb and send --preflight: the command line -> the doctor's checks -> a report.
#pragma once

#include <CLI/CLI.hpp>
#include <list>
#include <string>
#include <vector>

#include "cli/dkim_options.h"
#include "cli/relay_options.h"

namespace sb {

// What doctor reads from its command line; send --preflight fills the same from send's.
struct DoctorArgs {
  std::string template_path, from, return_path, recipients_path, task_path, preset;
  std::vector<std::string> ips;  // --ip: the public addresses mail leaves from
  bool json = false;
  bool preflight = false;  // send --preflight
  RelayOptions relay;
  MessageOptions message;
  DirectOptions direct;
  std::list<std::string> ignored;  // values of send's flags that doctor accepts and ignores
};

// `smtpblast doctor`: its own flags, then every flag of `send` it does not have, accepted and
// ignored, so that send's command line with doctor in front checks that mailing. Call after
// send's flags are all added.
CLI::App* add_doctor_command(CLI::App& app, const CLI::App& send, DoctorArgs& a);

// send's --preflight and --ip.
void add_preflight_options(CLI::App* send, DoctorArgs& a);

// Runs the checks and prints the report (text, or --json). 0 nothing fails, 1 something
// fails, 2 bad flags or files, or a DNS server that does not answer (after the report).
int run_doctor(const DoctorArgs& a);

// send --preflight: the same checks with send's flags; the report goes to stderr. 0 lets the
// mailing go: nothing fails, or `force`. Otherwise the exit code for send to return (2 also
// when --ip is given without --preflight).
int run_preflight(DoctorArgs a, const std::string& template_path, const std::string& from,
                  const std::string& recipients_path, const std::string& task_path,
                  const RelayOptions& relay, const MessageOptions& message,
                  const DirectOptions& direct, bool force);

}  // namespace sb
