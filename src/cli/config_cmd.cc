// `smtpblast config show [VERB] [flags]`: the settings a verb would run with, and where each
// comes from (a flag, a config file's line, a preset, the default), secrets redacted.
#include "cli/config_cmd.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>

#include "cli/verb.h"
#include "throttle/presets.h"

namespace sb {

namespace {

class ConfigVerb : public Verb {
 public:
  CLI::App* add(CLI::App& app) override {
    auto* config = app.add_subcommand(
        "config",
        "the config file: `config show [VERB] [flags]` prints the settings VERB (default "
        "send) would use and where each comes from");
    config->require_subcommand(1);
    auto* show = config->add_subcommand(
        "show",
        "print the settings of VERB (default send) given these flags, --config and "
        "--profile: value and source (flag, FILE:LINE, preset, default); secrets redacted");
    show->allow_extras();
    show->footer(
        "Config files: --config FILE, else $XDG_CONFIG_HOME/smtpblast/config.toml (~/.config when "
        "unset) and ./smtpblast.toml, the second winning. Keys are long flag names without "
        "dashes: at the top (every verb with that flag), in [VERB] sections, and in "
        "[profile.NAME] sections picked with --profile NAME (or default-profile = \"NAME\"). The "
        "command line wins over the files. See README \"Config file\".");
    return config;
  }

  // `config show` runs before parsing (app.cc); parsing only reaches here for help.
  int run() override { return 2; }
};

std::string toml_value(const std::string& v) {
  static const std::regex number("-?[0-9]+(\\.[0-9]+)?");
  if (std::regex_match(v, number)) return v;
  return nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct Line {
  std::string text;
  std::string source;
};

}  // namespace

std::unique_ptr<Verb> make_config_verb() { return std::make_unique<ConfigVerb>(); }

int show_config(const CLI::App& verb, const VerbConfig& cfg,
                const std::vector<std::string>& given) {
  std::string files;
  for (const std::string& f : cfg.files) files += (files.empty() ? "" : ", ") + f;
  std::printf("# smtpblast %s: the settings in effect\n", verb.get_name().c_str());
  std::printf("# config files: %s\n", files.empty() ? "none" : files.c_str());
  if (!cfg.profile.empty()) {
    std::printf("# profile: %s (%s)\n", cfg.profile.c_str(), cfg.profile_from.c_str());
  }
  // A preset fills the relay, its TLS mode and its limits where nothing else did.
  std::optional<Preset> preset;
  if (const CLI::Option* p = verb.get_option_no_throw("--preset"); p != nullptr && p->count() > 0) {
    if (auto r = find_preset(p->results().back()); r.ok()) preset = *r;
  }
  std::vector<Line> lines;
  for (const CLI::Option* o : verb.get_options()) {
    const std::string& name = o->get_name();
    if (name.rfind("--", 0) != 0 || name == "--help" || o->get_group().empty()) continue;
    const std::string key = name.substr(2);
    if (inline_secret_key(key)) continue;
    const bool flag = o->get_items_expected_max() == 0;
    const bool multi = o->get_items_expected_max() > 1;
    Line l;
    std::vector<std::string> values;
    if (o->count() > 0) {
      bool from_flag = std::find(given.begin(), given.end(), key) != given.end();
      l.source = "flag";
      if (!from_flag) {
        for (const ConfigSetting& s : cfg.settings) {
          if (s.key == key) l.source = s.source.describe();
        }
      }
      values = o->results();
      if (!multi && !values.empty()) values.erase(values.begin(), values.end() - 1);
      if (flag) values = {"true"};
    } else if (preset &&
               (key == "relay" || key == "tls" || key == "rate" || key == "daily-limit")) {
      l.source = "preset " + preset->name;
      if (key == "relay") values = {preset->host + ":" + std::to_string(preset->port)};
      if (key == "tls") values = {preset->tls};
      if (key == "rate" && !preset->rate.empty()) values = {preset->rate};
      if (key == "daily-limit" && preset->daily_limit != 0) {
        values = {std::to_string(preset->daily_limit)};
      }
      if (values.empty()) l.source = "default";
    } else {
      l.source = "default";
      if (flag) {
        values = {"false"};
      } else if (!o->get_default_str().empty() && !multi) {
        values = {o->get_default_str()};
      }
    }
    std::string shown;
    if (flag) {
      shown = values.empty() ? "false" : values.back();
    } else if (multi) {
      shown = "[";
      for (size_t i = 0; i < values.size(); ++i) {
        shown += (i ? ", " : "") + toml_value(redact_setting(key, values[i]));
      }
      shown += "]";
    } else if (values.empty()) {
      shown = "\"\"";
      l.source += " (unset)";
    } else {
      shown = toml_value(redact_setting(key, values.back()));
    }
    l.text = key + " = " + shown;
    lines.push_back(std::move(l));
  }
  size_t width = 0;
  for (const Line& l : lines) width = std::max(width, std::min<size_t>(l.text.size(), 48));
  for (const Line& l : lines) {
    std::printf("%-*s  # %s\n", static_cast<int>(width), l.text.c_str(), l.source.c_str());
  }
  return 0;
}

}  // namespace sb
