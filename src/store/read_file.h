// Reads a whole small input file (a template, a key) with an error that says why it failed.
#pragma once

#include <string>

#include "loop/result.h"

namespace sb {

// The file's bytes, or a kInput error "cannot read PATH: REASON" where the reason is what the
// user can fix: "no such file", "it is a directory", "permission denied" (with the file's
// owner and mode), or the system's message.
Result<std::string> read_whole_file(const std::string& path);

}  // namespace sb
