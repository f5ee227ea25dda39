// SMS providers: the [provider.NAME] tables of the config file (or of --provider-config FILE),
// checked key by key, with presets for widely used HTTP SMS APIs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "smsgw/provider.h"

namespace sb {

// The presets' names, for help and errors.
std::vector<std::string> http_preset_names();

// Every [provider.NAME] table of the given TOML files (lowest precedence first; a later file's
// table replaces an earlier one of the same name). An unknown key, a wrong type or a missing
// required key is an error naming the file, line and key (exit 2).
Result<std::map<std::string, ProviderConfig>> load_providers(const std::vector<std::string>& paths);

// Parses one document's text (tests): `file` names it in errors.
Result<std::map<std::string, ProviderConfig>> parse_providers(const std::string& text,
                                                              const std::string& file);

// The provider `name` from --provider-config FILE (when given) or the config files: an error
// lists the providers defined when there is none of that name.
Result<ProviderConfig> find_provider(const std::string& name, const std::string& provider_config);

}  // namespace sb
