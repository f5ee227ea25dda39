// The smtpblast command line: the table of verbs, global flags, parsing and exit codes.
// Each verb (its subcommand, flags and run function) lives in its family's *_cmd.cc file.
#include "cli/app.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "cli/config_cmd.h"
#include "cli/config_file.h"
#include "cli/pipeline.h"
#include "cli/verb.h"

namespace sb {

namespace {

// In the order `smtpblast --help` lists them; doctor comes after send, whose flags it takes.
// `name` is the subcommand the verb's add() creates: a run of one verb adds only that verb's
// flags (see verbs_to_add).
struct VerbEntry {
  const char* name;
  std::unique_ptr<Verb> (*make)();
};
constexpr VerbEntry kVerbTable[] = {
    {"send", make_send_verb},
    {"check", make_check_verb},
    {"test", make_test_verb},
    {"unsub-verify", make_unsub_verify_verb},
    {"dkim-record", make_dkim_record_verb},
    {"presets", make_presets_verb},
    {"import", make_import_verb},
    {"status", make_status_verb},
    {"reset", make_reset_verb},
    {"export", make_export_verb},
    {"report", make_report_verb},
    {"returns", make_returns_verb},
    {"sink", make_sink_verb},
    {"load", make_load_verb},
    {"sms", make_sms_verb},
    {"doctor", make_doctor_verb},
    {"config", make_config_verb},
};

// Which verbs get their real flags. Building every verb's CLI11 options costs ~13 million
// instructions (a fifth of start-up; `load` is a benchmark harness whose CPU per message is
// measured, start-up included), so a run of one verb adds
// only that verb; the others are bare subcommands of the same names, so parsing routes and
// reports exactly as before. Everything is added when something reads the other verbs' flags:
// the top-level help, an unknown verb's message, `config show` and doctor (which copy other
// verbs' flags), and a config file (its keys are checked against every verb's flags).
std::vector<bool> verbs_to_add(const std::vector<std::string>& args,
                               const std::string& config_path) {
  std::vector<bool> all(std::size(kVerbTable), true);
  if (args.size() < 2) return all;
  std::vector<bool> one(std::size(kVerbTable), false);
  bool found = false;
  for (size_t i = 0; i < std::size(kVerbTable); ++i) {
    if (args[1] == kVerbTable[i].name) one[i] = found = true;
  }
  if (!found || args[1] == "config" || args[1] == "doctor") return all;
  auto paths = config_paths(config_path);
  if (!paths.ok() || !paths->empty()) return all;
  return one;
}
// "--user X" / "--user=X" after the verb: picks a profile's per-user credentials.
std::string user_given(const std::vector<std::string>& args) {
  std::string user;
  for (size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--user" && i + 1 < args.size()) user = args[i + 1];
    if (args[i].rfind("--user=", 0) == 0) user = args[i].substr(7);
  }
  return user;
}

bool asks_help(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "-h" || a == "--help" || a == "--version") return true;
  }
  return false;
}

// A parse error about a flag the config file placed names the file, line and key.
bool report_config_error(const CLI::ParseError& e, const std::vector<ConfigSetting>& settings,
                         const std::vector<std::string>& given) {
  const std::string what = e.what();
  const ConfigSetting* best = nullptr;
  for (const ConfigSetting& s : settings) {
    if (std::find(given.begin(), given.end(), s.key) != given.end()) continue;
    const std::string flag = "--" + s.key;
    for (size_t at = what.find(flag); at != std::string::npos; at = what.find(flag, at + 1)) {
      size_t end = at + flag.size();
      bool whole = end == what.size() ||
                   !(std::isalnum(static_cast<unsigned char>(what[end])) || what[end] == '-');
      if (whole && (best == nullptr || s.key.size() > best->key.size())) best = &s;
    }
  }
  if (best == nullptr) return false;
  std::fprintf(stderr, "smtpblast: %s: key '%s': %s\n", best->source.describe().c_str(),
               best->key.c_str(), what.c_str());
  return true;
}

// A flag given twice takes its last value (scripts append overrides); repeatable flags
// (--suppress, --field, --dkim-key, ...) keep every value.
void last_wins(CLI::App& cmd) {
  for (CLI::Option* o : cmd.get_options()) {
    if (o->get_items_expected_max() <= 1) o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  for (CLI::App* sub : cmd.get_subcommands({})) last_wins(*sub);
}

// `json_mode`: called when a config file turns --json on (the command line's is seen first).
int run_verb(int argc, char** argv, const std::function<void()>& json_mode) {
  // A peer that closes its end must show up as a write error on that connection, not kill
  // the process.
  std::signal(SIGPIPE, SIG_IGN);
  // A file-size limit (ulimit -f) must be a write error the task store reports, not death.
  std::signal(SIGXFSZ, SIG_IGN);
  auto ca = take_config_args(argc, argv);
  if (!ca.ok()) {
    std::fprintf(stderr, "smtpblast: %s\n", ca.error().message.c_str());
    return kExitUsage;
  }
  CLI::App app{
      "smtpblast: send one mailing (a template x a recipient list) as fast as the "
      "receiving side allows, and never lose track of a recipient"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "smtpblast 0.1.0");
  std::string config_help, profile_help;  // parsed by take_config_args; here for --help
  app.add_option("--config", config_help,
                 "read settings from this TOML file (default: ./smtpblast.toml and "
                 "$XDG_CONFIG_HOME/smtpblast/config.toml, if present); flags win over it");
  app.add_option("--profile", profile_help,
                 "use the config file's [profile.NAME] settings (relay, TLS, credentials, "
                 "limits, DKIM, from)");
  app.footer(
      "Every flag of every verb can live in a config file (TOML; keys: flag names without "
      "dashes): --config FILE, else ./smtpblast.toml and $XDG_CONFIG_HOME/smtpblast/config.toml "
      "(~/.config when unset), if present; --profile NAME picks a [profile.NAME]. `smtpblast "
      "config show [VERB] [flags]` prints what a verb would use and why. README: \"Config file "
      "and profiles\".");

  std::vector<std::string> args = std::move(ca->args);
  std::vector<bool> add = verbs_to_add(args, ca->config_path);
  std::vector<std::unique_ptr<Verb>> verbs;
  std::vector<CLI::App*> cmds;
  for (size_t i = 0; i < std::size(kVerbTable); ++i) {
    verbs.push_back(add[i] ? kVerbTable[i].make() : nullptr);
    cmds.push_back(add[i] ? verbs.back()->add(app) : app.add_subcommand(kVerbTable[i].name));
  }
  last_wins(app);

  // `config show [VERB] [flags]` parses VERB's flags as VERB would, then prints them.
  const bool show =
      args.size() >= 3 && args[1] == "config" && args[2] == "show" && !asks_help(args);
  if (show) {
    std::string verb = args.size() > 3 && args[3].rfind("-", 0) != 0 ? args[3] : "send";
    size_t rest = args.size() > 3 && args[3].rfind("-", 0) != 0 ? 4 : 3;
    std::vector<std::string> v = {args[0], verb};
    v.insert(v.end(), args.begin() + static_cast<long>(rest), args.end());
    args = std::move(v);
    if (args[1] == "config") {
      std::fprintf(stderr, "smtpblast: config show: give the verb whose settings to show\n");
      return kExitUsage;
    }
  }
  std::vector<char*> cargv;
  for (std::string& a : args) cargv.push_back(a.data());
  if (std::string verb = unknown_verb(static_cast<int>(cargv.size()), cargv.data(), app);
      !verb.empty()) {
    // Listed from the table, so a new verb cannot be missing from the message.
    std::string names;
    for (const CLI::App* c : cmds) names += (names.empty() ? "" : ", ") + c->get_name();
    std::fprintf(stderr, "smtpblast: unknown command %s (commands: %s; smtpblast --help)\n",
                 verb.c_str(), names.c_str());
    return kExitUsage;
  }
  // The config file's settings become flags before the command line's (which win).
  CLI::App* verb_cmd = nullptr;
  for (CLI::App* c : cmds) {
    if (args.size() > 1 && c->get_name() == args[1]) verb_cmd = c;
  }
  VerbConfig cfg;
  std::vector<std::string> given = flags_given(args, 2);
  if (verb_cmd != nullptr && args[1] != "config" && !asks_help(args)) {
    auto paths = config_paths(ca->config_path);
    if (!paths.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", paths.error().message.c_str());
      return kExitUsage;
    }
    auto loaded = load_verb_config(*paths, app, *verb_cmd, ca->profile, user_given(args));
    if (!loaded.ok()) {
      std::fprintf(stderr, "smtpblast: %s\n", loaded.error().message.c_str());
      return kExitUsage;
    }
    cfg = std::move(loaded).value();
    std::vector<std::string> placed = setting_args(cfg.settings, given);
    args.insert(args.begin() + 2, placed.begin(), placed.end());
    if (std::find(placed.begin(), placed.end(), "--json") != placed.end()) json_mode();
    cargv.clear();
    for (std::string& a : args) cargv.push_back(a.data());
  }
  if (show) {  // the defaults are shown; a required flag may be left for the real run
    for (CLI::Option* o : verb_cmd->get_options()) o->capture_default_str()->required(false);
  }
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() != 0 && report_config_error(e, cfg.settings, given)) return kExitUsage;
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (show) return show_config(*verb_cmd, cfg, given);
  for (size_t i = 0; i < verbs.size(); ++i) {
    if (*cmds[i] && verbs[i] != nullptr) return verbs[i]->run();
  }
  return 2;
}

}  // namespace

// --json: a verb that failed before printing its own JSON result still answers with one
// JSON object on stdout (errors keep going to stderr as text too).
int run_cli(int argc, char** argv) {
  JsonErrorTee tee;
  bool json = false;
  auto json_mode = [&] {
    if (!json) tee.start();
    json = true;
  };
  if (argv_has(argc, argv, "--json")) json_mode();
  int rc = run_verb(argc, argv, json_mode);
  if (!json) return rc;
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
