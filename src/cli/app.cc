// The smtpblast command line: the table of verbs, global flags, parsing and exit codes.
// Each verb (its subcommand, flags and run function) lives in its family's *_cmd.cc file.
#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/pipeline.h"
#include "cli/verb.h"

namespace sb {

namespace {

// In the order `smtpblast --help` lists them; doctor comes after send, whose flags it takes.
std::vector<std::unique_ptr<Verb>> make_verb_table() {
  std::vector<std::unique_ptr<Verb>> t;
  t.push_back(make_send_verb());
  t.push_back(make_check_verb());
  t.push_back(make_test_verb());
  t.push_back(make_unsub_verify_verb());
  t.push_back(make_dkim_record_verb());
  t.push_back(make_presets_verb());
  t.push_back(make_import_verb());
  t.push_back(make_status_verb());
  t.push_back(make_reset_verb());
  t.push_back(make_export_verb());
  t.push_back(make_returns_verb());
  t.push_back(make_sink_verb());
  t.push_back(make_doctor_verb());
  return t;
}

int run_verb(int argc, char** argv) {
  // A peer that closes its end must show up as a write error on that connection, not kill
  // the process.
  std::signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) must be a write error the task store reports, not death.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{
      "smtpblast: send one mailing (a template x a recipient list) as fast as the "
      "receiving side allows, and never lose track of a recipient"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smtpblast 0.1.0");

  std::vector<std::unique_ptr<Verb>> verbs = make_verb_table();
  std::vector<CLI::App*> cmds;
  for (auto& v : verbs) cmds.push_back(v->add(app));

  if (std::string verb = unknown_verb(argc, argv, app); !verb.empty()) {
    std::fprintf(stderr,
                 "smtpblast: unknown command %s (commands: send, import, status, export, reset, "
                 "check, test, presets, sink, dkim-record, unsub-verify, doctor, returns; "
                 "smtpblast --help)\n",
                 verb.c_str());
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  for (size_t i = 0; i < verbs.size(); ++i) {
    if (*cmds[i]) return verbs[i]->run();
  }
  return 2;
}

}  // namespace

// --json: a verb that failed before printing its own JSON result still answers with one
// JSON object on stdout (errors keep going to stderr as text too).
int run_cli(int argc, char** argv) {
  if (!argv_has(argc, argv, "--json")) return run_verb(argc, argv);
  JsonErrorTee tee;
  tee.start();
  int rc = run_verb(argc, argv);
  std::string error = tee.stop();
  if (rc != 0 && !json_printed()) {
    nlohmann::json j;
    j["ok"] = false;
    j["exit_code"] = rc;
    j["error"] = error.empty() ? "exit code " + std::to_string(rc) : error;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return rc;
}

}  // namespace sb
