// `smtpblast config show`: a verb's effective settings and their sources (config_cmd.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/config_file.h"

namespace sb {

// Prints `verb`'s settings after a parse (flags placed by the config file included): one
// `key = value  # source` line per flag. `given`: the flags of the command line itself.
int show_config(const CLI::App& verb, const VerbConfig& cfg, const std::vector<std::string>& given);

}  // namespace sb
