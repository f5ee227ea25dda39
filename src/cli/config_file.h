// The config file (TOML): any verb's flags kept in a file, per verb and per profile; they
// become flags placed before the command line's own, which therefore win.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace sb {

// Where a setting was written: for `config show` and for errors ("FILE:LINE [section]").
struct ConfigSource {
  std::string file;
  uint32_t line = 0;
  std::string section;  // "" (top level), "[send]", "[profile.o365]", ...
  std::string describe() const;
};

// One flag of a verb set by a config file.
struct ConfigSetting {
  std::string key;                  // the long flag's name without its dashes
  std::vector<std::string> values;  // an option's value (several for a repeatable one)
  bool flag = false;                // a flag that is on (an off flag sets nothing)
  ConfigSource source;
};

// The command line with --config FILE and --profile NAME taken out: they are global and may
// stand before or after the verb.
struct ConfigArgs {
  std::string config_path;        // "": the default places (config_paths)
  std::string profile;            // "": the files' `default-profile = "NAME"`, if any
  std::vector<std::string> args;  // argv[0], the verb and the rest, in order
};
Result<ConfigArgs> take_config_args(int argc, char** argv);

// The files to read, lowest precedence first: `explicit_path` alone (it must exist), else
// those of $XDG_CONFIG_HOME/smtpblast/config.toml (~/.config when unset) and ./smtpblast.toml
// that exist. A file another user could write is refused: it can name commands to run.
Result<std::vector<std::string>> config_paths(const std::string& explicit_path);

// A config file only its user (or root) may write: it can name commands to run.
Status check_config_owner(const std::string& path);

// What the files set for `verb` (a subcommand of `app`, which holds every verb).
struct VerbConfig {
  std::vector<ConfigSetting> settings;  // one per key, the winning source
  std::vector<std::string> files;       // the files read
  std::string profile;                  // the profile used ("" none)
  std::string profile_from;             // "--profile", or where default-profile is
};

// Reads and checks every file (all sections, all profiles, so a typo shows whatever the verb).
// Precedence, lowest first: top level, [VERB] (doctor: [send], then [doctor]), [profile.P],
// [profile.P.VERB], [profile.P.users."USER"] (USER: `user_flag`, else the --user the layers
// below set); a later file beats an earlier one within a layer. Errors name the file, line
// and key.
Result<VerbConfig> load_verb_config(const std::vector<std::string>& paths, const CLI::App& app,
                                    const CLI::App& verb, const std::string& profile_flag,
                                    const std::string& user_flag);

// The long flags (names without dashes) that `args` (after the verb) gives.
std::vector<std::string> flags_given(const std::vector<std::string>& args, size_t first);

// The settings as flags ("--key=value", "--flag"), skipping keys in `given`.
std::vector<std::string> setting_args(const std::vector<ConfigSetting>& settings,
                                      const std::vector<std::string>& given);

// The flags that exist only to refuse a secret on the command line (--password, ...): never
// settings, in a file or in `config show`.
bool inline_secret_key(const std::string& key);

// A value as `config show` may print it: a command's arguments and a URL's password hidden.
std::string redact_setting(const std::string& key, const std::string& value);

}  // namespace sb
