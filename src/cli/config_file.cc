// The config file: reading, checking against the verbs' flags, layering, flags from settings.
#include "cli/config_file.h"

#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

namespace sb {

bool inline_secret_key(const std::string& key) {
  return key == "password" || key == "unsubscribe-secret";
}

namespace {

// Keys that are not flags a file may set: the parser's own, and the flags that exist only to
// refuse a secret on the command line (a file is no better place for one).
bool reserved_key(const std::string& key) {
  return key == "help" || key == "version" || key == "config";
}

// kSend...: doctor takes send's command line, so it reads [send] too, below its own [doctor].
enum class Layer { kTop, kSend, kVerb, kProfile, kProfileSend, kProfileVerb, kUser };

struct Candidate {
  Layer layer;
  size_t file;
  ConfigSetting setting;
};

struct Doc {
  std::string path;
  toml::table table;
};

Error config_error(const std::string& file, uint32_t line, const std::string& what) {
  return make_error(ErrDomain::kConfig, file + ":" + std::to_string(line) + ": " + what);
}

const CLI::Option* flag_of(const CLI::App& cmd, const std::string& key) {
  if (key.empty() || key[0] == '-' || reserved_key(key)) return nullptr;
  const CLI::Option* o = cmd.get_option_no_throw("--" + key);
  // doctor accepts send's flags and ignores them (group ""): not doctor's settings.
  if (o != nullptr && o->get_group().empty()) return nullptr;
  return o;
}

// The flag of the first verb that has it (null: none has).
const CLI::Option* any_verbs_flag(const CLI::App& app, const std::string& key) {
  for (const CLI::App* v : app.get_subcommands({})) {
    if (const CLI::Option* o = flag_of(*v, key)) return o;
  }
  return nullptr;
}

const CLI::App* verb_named(const CLI::App& app, const std::string& name) {
  for (const CLI::App* v : app.get_subcommands({})) {
    if (v->get_name() == name) return v;
  }
  return nullptr;
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "a list";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "true/false";
    default: return "a date or time";
  }
}

// A string, integer or float as the command line would give it; false for anything else.
bool scalar_text(const toml::node& n, std::string* out) {
  if (auto s = n.value_exact<std::string>()) {
    *out = *s;
    // A file's ~ is not expanded by a shell: do it here.
    if (out->rfind("~/", 0) == 0) {
      if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
        *out = home + out->substr(1);
      }
    }
    return true;
  }
  if (auto i = n.value_exact<int64_t>()) {
    *out = std::to_string(*i);
    return true;
  }
  if (auto d = n.value_exact<double>()) {
    std::ostringstream os;
    os << *d;
    *out = os.str();
    return true;
  }
  return false;
}

// `node` as the value of `opt` (flag: true/false; option: one value; repeatable: a list).
// nullopt-like: false in *set for an off flag.
Result<ConfigSetting> to_setting(const std::string& key, const toml::node& node,
                                 const CLI::Option& opt, const ConfigSource& src, bool* set) {
  ConfigSetting s;
  s.key = key;
  s.source = src;
  *set = true;
  const std::string where = "key '" + key + "'" + (src.section.empty() ? "" : " in " + src.section);
  const int max = opt.get_items_expected_max();
  if (max == 0) {
    auto b = node.value_exact<bool>();
    if (!b)
      return config_error(
          src.file, src.line,
          where + ": --" + key + " is a flag: give true or false, not " + type_name(node));
    s.flag = *b;
    *set = *b;
    return s;
  }
  if (const toml::array* arr = node.as_array()) {
    if (max <= 1) {
      return config_error(src.file, src.line,
                          where + ": --" + key + " takes one value, not a list");
    }
    for (const toml::node& el : *arr) {
      std::string v;
      if (!scalar_text(el, &v)) {
        return config_error(
            src.file, src.line,
            where + ": the list holds " + type_name(el) + "; give strings or numbers");
      }
      s.values.push_back(std::move(v));
    }
    return s;
  }
  std::string v;
  if (!scalar_text(node, &v)) {
    return config_error(
        src.file, src.line,
        where + ": --" + key + " takes a string or a number, not " + type_name(node));
  }
  s.values.push_back(std::move(v));
  return s;
}

class Loader {
 public:
  Loader(const CLI::App& app, const CLI::App& verb, std::vector<Doc>& docs)
      : app_(app), verb_(verb), docs_(docs) {}

  // Checks every section of every file; keeps the candidates for verb_ and `profile`.
  Status walk(const std::string& profile) {
    profile_ = profile;
    for (size_t i = 0; i < docs_.size(); ++i) {
      file_ = i;
      if (Status st = walk_root(docs_[i].table); !st.ok()) return st;
    }
    return {};
  }

  std::vector<Candidate>& candidates() { return candidates_; }
  const std::map<std::string, ConfigSource>& profiles() const { return profiles_; }
  // The last `profile = "NAME"` of the files.
  const std::string& default_profile() const { return default_profile_; }
  const ConfigSource& default_profile_source() const { return default_profile_source_; }
  // [profile.P.users."U"] tables of the profile in use, by user, in file order.
  const std::vector<std::pair<std::string, std::pair<size_t, const toml::table*>>>& users() const {
    return users_;
  }

  // The keys of a users."U" table, as the top layer.
  Status walk_user(size_t file, const std::string& user, const toml::table& t) {
    file_ = file;
    return walk_flags(t, Layer::kUser, "[profile." + profile_ + ".users.\"" + user + "\"]");
  }

 private:
  ConfigSource source(const toml::node& n, const std::string& section) const {
    return ConfigSource{docs_[file_].path, static_cast<uint32_t>(n.source().begin.line), section};
  }

  Status walk_root(const toml::table& t) {
    for (auto&& [k, node] : t) {
      const std::string key(k.str());
      if (key == "default-profile") {
        auto name = node.value_exact<std::string>();
        if (!name) {
          return config_error(docs_[file_].path, node.source().begin.line,
                              "key 'default-profile': give the name of a [profile.NAME]");
        }
        default_profile_ = *name;
        default_profile_source_ = source(node, "");
        continue;
      }
      // [provider.NAME]: SMS providers, checked by cli/sms_provider.cc when a verb uses one.
      if (key == "provider") continue;
      if (key == "profile") {
        const toml::table* profiles = node.as_table();
        if (profiles == nullptr) {
          return config_error(docs_[file_].path, node.source().begin.line,
                              "key 'profile': profiles are [profile.NAME] sections (the one to "
                              "use without --profile: default-profile = \"NAME\")");
        }
        for (auto&& [pk, pnode] : *profiles) {
          const std::string pname(pk.str());
          const toml::table* pt = pnode.as_table();
          if (pt == nullptr) {
            return config_error(
                docs_[file_].path, pnode.source().begin.line,
                "profile." + pname + ": a profile is a [profile." + pname + "] section");
          }
          profiles_.emplace(pname, source(pnode, "[profile." + pname + "]"));
          if (Status st = walk_profile(pname, *pt); !st.ok()) return st;
        }
        continue;
      }
      if (Status st = walk_entry(key, node, Layer::kTop, Layer::kVerb, "", true); !st.ok())
        return st;
    }
    return {};
  }

  Status walk_profile(const std::string& pname, const toml::table& t) {
    const bool used = pname == profile_;
    const std::string section = "[profile." + pname + "]";
    for (auto&& [k, node] : t) {
      const std::string key(k.str());
      if (key == "users") {
        const toml::table* users = node.as_table();
        if (users == nullptr) {
          return config_error(docs_[file_].path, node.source().begin.line,
                              "key 'users' in " + section + ": give [profile." + pname +
                                  ".users.\"NAME\"] sections, one per --user");
        }
        for (auto&& [uk, unode] : *users) {
          const toml::table* ut = unode.as_table();
          const std::string uname(uk.str());
          if (ut == nullptr) {
            return config_error(docs_[file_].path, unode.source().begin.line,
                                "users." + uname + " in " + section + ": give a [profile." + pname +
                                    ".users.\"" + uname + "\"] section");
          }
          // Checked now (any verb), kept for the layering once the user is known.
          std::vector<Candidate> saved;
          saved.swap(candidates_);
          Status st =
              walk_flags(*ut, Layer::kUser, "[profile." + pname + ".users.\"" + uname + "\"]");
          candidates_.swap(saved);
          if (!st.ok()) return st;
          if (used) users_.push_back({uname, {file_, ut}});
        }
        continue;
      }
      std::vector<Candidate> saved;
      if (!used) saved.swap(candidates_);
      Status st = walk_entry(key, node, Layer::kProfile, Layer::kProfileVerb, section, false);
      if (!used) candidates_.swap(saved);
      if (!st.ok()) return st;
    }
    return {};
  }

  // A key at the top of the file or of a profile: a flag, or a [VERB] section.
  Status walk_entry(const std::string& key, const toml::node& node, Layer flag_layer,
                    Layer verb_layer, const std::string& section, bool top) {
    const std::string prefix = section.empty() ? "" : section.substr(1, section.size() - 2) + ".";
    if (const CLI::App* v = verb_named(app_, key); v != nullptr && node.is_table()) {
      const std::string vsection = "[" + prefix + key + "]";
      std::vector<Candidate> saved;
      const bool send_for_doctor = verb_.get_name() == "doctor" && key == "send";
      const bool mine = v == &verb_ || send_for_doctor;
      if (!mine) saved.swap(candidates_);
      if (send_for_doctor)
        verb_layer = verb_layer == Layer::kVerb ? Layer::kSend : Layer::kProfileSend;
      Status st = walk_verb_flags(*node.as_table(), *v, verb_layer, vsection);
      if (!mine) candidates_.swap(saved);
      return st;
    }
    if (node.is_table() && any_verbs_flag(app_, key) == nullptr) {
      return config_error(docs_[file_].path, node.source().begin.line,
                          "unknown section [" + prefix + key +
                              "]: sections are named after a verb" +
                              (top ? " or [profile.NAME]" : ""));
    }
    return walk_flag(key, node, flag_layer, section);
  }

  Status walk_flags(const toml::table& t, Layer layer, const std::string& section) {
    for (auto&& [k, node] : t) {
      if (Status st = walk_flag(std::string(k.str()), node, layer, section); !st.ok()) return st;
    }
    return {};
  }

  // A key outside a verb section: the flag of whichever verbs have it.
  Status walk_flag(const std::string& key, const toml::node& node, Layer layer,
                   const std::string& section) {
    const uint32_t line = node.source().begin.line;
    const std::string where = "key '" + key + "'" + (section.empty() ? "" : " in " + section);
    if (inline_secret_key(key)) {
      return config_error(docs_[file_].path, line,
                          where + ": secrets are not written in config files; give " +
                              (key == "password" ? "password-file = \"PATH\" (or oauth-token-file, "
                                                   "oauth-token-cmd)"
                                                 : "unsubscribe-secret-file = \"PATH\""));
    }
    const CLI::Option* mine = flag_of(verb_, key);
    if (mine == nullptr) {
      const CLI::Option* other = any_verbs_flag(app_, key);
      if (other == nullptr) {
        return config_error(docs_[file_].path, line,
                            "unknown " + where + ": no verb has a flag --" + key);
      }
      // Another verb's setting: its type is checked all the same, then it is left out.
      std::vector<Candidate> saved;
      saved.swap(candidates_);
      Status st = keep(key, node, *other, layer, section);
      candidates_.swap(saved);
      return st;
    }
    return keep(key, node, *mine, layer, section);
  }

  Status walk_verb_flags(const toml::table& t, const CLI::App& v, Layer layer,
                         const std::string& section) {
    for (auto&& [k, node] : t) {
      const std::string key(k.str());
      const uint32_t line = node.source().begin.line;
      if (inline_secret_key(key)) return walk_flag(key, node, layer, section);
      const CLI::Option* o = flag_of(v, key);
      if (o == nullptr) {
        return config_error(docs_[file_].path, line,
                            "unknown key '" + key + "' in " + section + ": " + v.get_name() +
                                " has no flag --" + key);
      }
      if (Status st = keep(key, node, *o, layer, section); !st.ok()) return st;
    }
    return {};
  }

  Status keep(const std::string& key, const toml::node& node, const CLI::Option& o, Layer layer,
              const std::string& section) {
    bool set = false;
    auto s = to_setting(key, node, o, source(node, section), &set);
    if (!s.ok()) return s.error();
    // An off flag still overrides a lower layer's on: kept, with no value and flag false.
    candidates_.push_back(Candidate{layer, file_, std::move(s).value()});
    return {};
  }

  const CLI::App& app_;
  const CLI::App& verb_;
  std::vector<Doc>& docs_;
  size_t file_ = 0;
  std::string profile_;
  std::vector<Candidate> candidates_;
  std::map<std::string, ConfigSource> profiles_;
  std::string default_profile_;
  ConfigSource default_profile_source_;
  std::vector<std::pair<std::string, std::pair<size_t, const toml::table*>>> users_;
};

// Highest layer wins, then the later file; returns one setting per key (off flags dropped).
std::vector<ConfigSetting> merge(std::vector<Candidate> c) {
  std::stable_sort(c.begin(), c.end(), [](const Candidate& a, const Candidate& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.file < b.file;
  });
  std::map<std::string, size_t> at;
  std::vector<ConfigSetting> out;
  for (Candidate& x : c) {
    auto it = at.find(x.setting.key);
    if (it == at.end()) {
      at.emplace(x.setting.key, out.size());
      out.push_back(std::move(x.setting));
    } else {
      out[it->second] = std::move(x.setting);
    }
  }
  std::erase_if(out, [](const ConfigSetting& s) { return s.values.empty() && !s.flag; });
  return out;
}

}  // namespace

Status check_config_owner(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return make_error(ErrDomain::kConfig, path + ": cannot read: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrDomain::kConfig, path + ": not a file");
  // The file can name commands smtpblast runs (oauth-token-cmd): only its user may write it.
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 || (st.st_uid != ::getuid() && st.st_uid != 0)) {
    return make_error(ErrDomain::kConfig,
                      path +
                          ": another user can write this config file, and it may name "
                          "commands to run; make it yours and chmod go-w it");
  }
  return {};
}

namespace {

Result<Doc> read_doc(const std::string& path) {
  if (Status st = check_config_owner(path); !st.ok()) return st.error();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) {
    return make_error(ErrDomain::kConfig, path + ": cannot read: " + std::strerror(errno));
  }
  try {
    return Doc{path, toml::parse(text.str(), path)};
  } catch (const toml::parse_error& e) {
    return config_error(path, e.source().begin.line, std::string(e.description()));
  }
}

}  // namespace

std::string ConfigSource::describe() const {
  std::string s = file + ":" + std::to_string(line);
  if (!section.empty()) s += " " + section;
  return s;
}

Result<ConfigArgs> take_config_args(int argc, char** argv) {
  ConfigArgs out;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (i > 0 && a == "--") {  // the rest are not flags
      for (; i < argc; ++i) out.args.emplace_back(argv[i]);
      break;
    }
    std::string* target = nullptr;
    std::string name;
    for (const char* f : {"--config", "--profile"}) {
      std::string flag = f;
      if (i > 0 && (a == flag || a.rfind(flag + "=", 0) == 0)) {
        target = flag == "--config" ? &out.config_path : &out.profile;
        name = flag;
      }
    }
    if (target == nullptr) {
      out.args.push_back(std::move(a));
      continue;
    }
    if (a.size() > name.size()) {
      *target = a.substr(name.size() + 1);
    } else if (i + 1 < argc) {
      *target = argv[++i];
    } else {
      return make_error(ErrDomain::kConfig,
                        name + " needs a value (" + (name == "--config" ? "FILE" : "NAME") + ")");
    }
    if (target->empty()) return make_error(ErrDomain::kConfig, name + ": empty value");
  }
  return out;
}

Result<std::vector<std::string>> config_paths(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    if (::access(explicit_path.c_str(), R_OK) != 0) {
      return make_error(ErrDomain::kConfig,
                        "--config " + explicit_path + ": cannot read: " + std::strerror(errno));
    }
    return std::vector<std::string>{explicit_path};
  }
  std::vector<std::string> out;
  std::string user;
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg != nullptr && xdg[0] == '/') {
    user = std::string(xdg) + "/smtpblast/config.toml";
  } else if (home != nullptr && *home != '\0') {
    user = std::string(home) + "/.config/smtpblast/config.toml";
  }
  struct stat st;
  if (!user.empty() && ::stat(user.c_str(), &st) == 0) out.push_back(user);
  if (::stat("smtpblast.toml", &st) == 0) out.push_back("smtpblast.toml");
  return out;
}

Result<VerbConfig> load_verb_config(const std::vector<std::string>& paths, const CLI::App& app,
                                    const CLI::App& verb, const std::string& profile_flag,
                                    const std::string& user_flag) {
  VerbConfig out;
  out.files = paths;
  std::vector<Doc> docs;
  for (const std::string& p : paths) {
    auto d = read_doc(p);
    if (!d.ok()) return d.error();
    docs.push_back(std::move(d).value());
  }
  // First pass: the default profile and the list of profiles (no profile's settings kept).
  Loader probe(app, verb, docs);
  if (Status st = probe.walk(""); !st.ok()) return st.error();
  std::string profile = profile_flag.empty() ? probe.default_profile() : profile_flag;
  std::string from = profile_flag.empty() ? probe.default_profile_source().describe() : "--profile";
  if (profile.empty()) {
    out.settings = merge(std::move(probe.candidates()));
    return out;
  }
  if (probe.profiles().count(profile) == 0) {
    std::string known;
    for (const auto& [name, src] : probe.profiles()) known += (known.empty() ? "" : ", ") + name;
    std::string files;
    for (const std::string& p : paths) files += (files.empty() ? "" : ", ") + p;
    std::string what = "no [profile." + profile + "] in " +
                       (files.empty() ? "any config file (none found)" : files) +
                       (known.empty() ? "" : " (profiles: " + known + ")");
    if (profile_flag.empty()) {
      const ConfigSource& s = probe.default_profile_source();
      return config_error(s.file, s.line, "key 'default-profile': " + what);
    }
    return make_error(ErrDomain::kConfig, "--profile " + profile + ": " + what);
  }
  Loader loader(app, verb, docs);
  if (Status st = loader.walk(profile); !st.ok()) return st.error();
  out.profile = profile;
  out.profile_from = from;
  // The user picks per-user credentials: the command line's, else the layers' --user.
  std::string user = user_flag;
  if (user.empty()) {
    for (const ConfigSetting& s : merge(loader.candidates())) {
      if (s.key == "user" && !s.values.empty()) user = s.values.back();
    }
  }
  for (const auto& [name, at] : loader.users()) {
    if (name != user) continue;
    if (Status st = loader.walk_user(at.first, name, *at.second); !st.ok()) return st.error();
  }
  out.settings = merge(std::move(loader.candidates()));
  return out;
}

std::vector<std::string> flags_given(const std::vector<std::string>& args, size_t first) {
  std::vector<std::string> out;
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") break;
    if (a.size() < 3 || a.rfind("--", 0) != 0) continue;
    out.push_back(
        a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2));
  }
  return out;
}

std::vector<std::string> setting_args(const std::vector<ConfigSetting>& settings,
                                      const std::vector<std::string>& given) {
  std::vector<std::string> out;
  for (const ConfigSetting& s : settings) {
    if (std::find(given.begin(), given.end(), s.key) != given.end()) continue;
    if (s.flag) out.push_back("--" + s.key);
    for (const std::string& v : s.values) out.push_back("--" + s.key + "=" + v);
  }
  return out;
}

std::string redact_setting(const std::string& key, const std::string& value) {
  if (inline_secret_key(key)) return value.empty() ? value : "<redacted>";
  // A command may carry a client secret in its arguments: the program name is enough to see.
  if (key.size() > 4 && key.compare(key.size() - 4, 4, "-cmd") == 0) {
    size_t sp = value.find_first_of(" \t");
    return sp == std::string::npos ? value : value.substr(0, sp) + " <redacted>";
  }
  // scheme://user:password@host
  size_t scheme = value.find("://");
  if (scheme != std::string::npos) {
    size_t at = value.find('@', scheme + 3);
    size_t colon = value.find(':', scheme + 3);
    size_t slash = value.find('/', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at &&
        (slash == std::string::npos || at < slash)) {
      return value.substr(0, colon + 1) + "<redacted>" + value.substr(at);
    }
  }
  return value;
}

}  // namespace sb
