// The verbs of the smtpblast command as a table: each verb adds its subcommand and flags, and
// runs when its subcommand is the one given. app.cc holds the table; one file per verb family.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace sb {

struct CsvOptions;

// One verb. Its flags are bound to its own members, so the object lives (in the table) from
// add() through parsing to run().
class Verb {
 public:
  virtual ~Verb() = default;
  // Adds the subcommand and its flags to `app`; returns the subcommand. Verbs are added in the
  // table's order, which is the order `smtpblast --help` lists them in.
  virtual CLI::App* add(CLI::App& app) = 0;
  // Runs the verb after a successful parse; returns the exit code (cli/pipeline.h).
  virtual int run() = 0;
};

// send_verb.cc
std::unique_ptr<Verb> make_send_verb();
std::unique_ptr<Verb> make_presets_verb();
// check_cmd.cc: check and test share their relay, direct and preset handling.
std::unique_ptr<Verb> make_check_verb();
std::unique_ptr<Verb> make_test_verb();
std::unique_ptr<Verb> make_dkim_record_verb();
std::unique_ptr<Verb> make_unsub_verify_verb();
// task_cmds.cc
std::unique_ptr<Verb> make_import_verb();
std::unique_ptr<Verb> make_status_verb();
std::unique_ptr<Verb> make_reset_verb();
std::unique_ptr<Verb> make_export_verb();
// returns_verb.cc
std::unique_ptr<Verb> make_returns_verb();
// sink_cmd.cc
std::unique_ptr<Verb> make_sink_verb();
// load_verb.cc: the load generator.
std::unique_ptr<Verb> make_load_verb();
// sms_cmd.cc: SMS providers (issue 19).
std::unique_ptr<Verb> make_sms_verb();
// report_verb.cc: the run report (HTML with charts).
std::unique_ptr<Verb> make_report_verb();
// doctor_cmd.cc: takes every flag of send, so it is added after send.
std::unique_ptr<Verb> make_doctor_verb();
// config_cmd.cc: `config show` (run by app.cc, which knows the other verbs).
std::unique_ptr<Verb> make_config_verb();

// --csv-encoding and --csv-delimiter, for send and import (task_cmds.cc).
void add_csv_options(CLI::App* cmd, std::string& encoding, std::string& delimiter);
// The flags' values -> `out`; 0, or 2 after printing why they are not usable.
int parse_csv_options(const std::string& encoding, const std::string& delimiter, CsvOptions& out);

}  // namespace sb
