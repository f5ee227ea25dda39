// Old home of read_whole_file, kept so cli/check.cc and cli/mailing.cc build until the merge.
#pragma once

#include <string>

#include "base/result.h"

namespace sb {

// Declared here rather than by including base/text.h: check.cc and mailing.cc still hold
// their own is_ascii/domain_of copies, which text.h's would make ambiguous.
Result<std::string> read_file(const std::string& path);

// sb::read_file (base/text.h) under its old name. The lead removes this header at merge once
// check.cc and mailing.cc (owned by other helpers) include base/text.h and call read_file.
inline Result<std::string> read_whole_file(const std::string& path) { return read_file(path); }

}  // namespace sb
