// Old name of the ASCII comparison, kept so cli/app.cc builds until the merge.
#pragma once

#include <string_view>

namespace sb {

// Declared here rather than by including base/text.h, so a file with its own copies of the
// text helpers does not see two of each.
bool iequals(std::string_view a, std::string_view b);

// sb::iequals (base/text.h) under its old name. The lead removes this header at merge once
// cli/app.cc (owned by another helper) includes base/text.h and calls iequals.
inline bool iequals_ascii(std::string_view a, std::string_view b) { return iequals(a, b); }

}  // namespace sb
